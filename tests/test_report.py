"""The report runner: papermill into reports/<run-id>/, html, provenance, latest, failure handling;
the index.html page (findings first), the timings, and two runs giving byte-identical tables."""

import html
import json

import nbformat
import pytest

from analysis.cli import main
from analysis.report.runner import list_notebooks, run_report


def _notebook(path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'preset: str = "embedded"  # preset name\noverrides: dict = {}  # config overrides\n'
        'config_path: str = ""\noutput_dir: str = "."  # run folder\ncache_dir: str = ""'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture()
def books(tmp_path):
    d = tmp_path / "nbs"
    d.mkdir()
    _notebook(
        d / "01_a.ipynb",
        "import pathlib\npathlib.Path(output_dir, 'tables', 'a.csv').write_text('x\\n1\\n')\nprint(overrides)",
    )
    _notebook(d / "02_b.ipynb", "print('b', preset)")
    return d


def test_report_runs_notebooks_in_order_with_outputs(tmp_path, books, monkeypatch):
    import analysis.report.runner as report

    warmed = []
    real_warm = report.warm_html_export
    monkeypatch.setattr(report, "warm_html_export", lambda: warmed.append(real_warm()))
    run = run_report(
        overrides={"seeds": [5]}, output_root=tmp_path / "reports", notebook_dir=books, progress=False
    )
    assert len(warmed) == 1  # nbconvert loaded once, while the first notebook starts
    assert (run / "01_a.ipynb").exists() and (run / "02_b.ipynb").exists()
    assert (run / "01_a.html").exists() and (run / "index.html").exists()
    assert (tmp_path / "reports" / "latest").resolve() == run
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["config"]["seeds"] == [5] and "torch" in prov["versions"] and prov["git_commit"]
    executed = nbformat.read(run / "01_a.ipynb", as_version=4)
    assert "{'seeds': [5]}" in "".join(
        o.get("text", "") for c in executed.cells for o in c.get("outputs", [])
    )
    assert "a.csv" in (run / "index.html").read_text()


def test_failed_notebook_stops_run_and_keeps_earlier_outputs(tmp_path, books):
    _notebook(books / "02_b.ipynb", "raise RuntimeError('boom in notebook')")
    _notebook(books / "03_c.ipynb", "print('never')")
    with pytest.raises(RuntimeError, match="02_b.ipynb failed"):
        run_report(output_root=tmp_path / "r", notebook_dir=books, progress=False, run_id="x")
    run = tmp_path / "r" / "x"
    status = json.loads((run / "status.json").read_text())
    assert status["notebooks"]["01_a.ipynb"]["status"] == "ok"
    assert status["notebooks"]["02_b.ipynb"]["status"] == "failed"
    assert "boom in notebook" in status["notebooks"]["02_b.ipynb"]["error"]
    assert status["notebooks"]["03_c.ipynb"]["status"] == "pending" and not (run / "03_c.ipynb").exists()
    # fix the notebook and resume: 01 is skipped, 02 and 03 run
    _notebook(books / "02_b.ipynb", "print('fixed')")
    run_report(output_root=tmp_path / "r", notebook_dir=books, progress=False, run_id="x", resume=True)
    status = json.loads((run / "status.json").read_text())
    assert all(v["status"] == "ok" for v in status["notebooks"].values())


_WAIT = (
    "import pathlib, time\n"
    "from analysis.report import schedule as cpu_share\n"
    "def wait(cond, what):\n"
    "    t = time.time()\n"
    "    while not cond():\n"
    "        assert time.time() - t < 120, what\n"
    "        time.sleep(0.1)\n"
)


def test_a_notebook_that_hands_off_runs_alongside_the_next(tmp_path, books):
    """01 calls cpu_share.handoff(): 02 starts while 01 still runs, both on one thread; 02's
    wait_for_inputs() returns once 01 has called inputs_ready(), its claim_cpu() once 01 has ended
    (then all threads); 03 starts only after both ended (02 never hands off), and waits for nothing."""
    _notebook(
        books / "01_a.ipynb",
        _WAIT + "import torch\ntorch.set_num_threads(2)\nassert cpu_share.handoff()\n"
        "assert torch.get_num_threads() == 1 and cpu_share.thread_limit(2) == 1\n"
        "wait(lambda: pathlib.Path(output_dir, 'b_started').exists(), '02 did not start alongside 01')\n"
        "time.sleep(1)\n"
        "pathlib.Path(output_dir, 'a_ready').write_text('1')\n"
        "assert cpu_share.inputs_ready()\n"
        "wait(lambda: pathlib.Path(output_dir, 'b_done').exists(), '02 did not go on')\n"
        "pathlib.Path(output_dir, 'a_done').write_text('1')",
    )
    _notebook(
        books / "02_b.ipynb",
        _WAIT + "import torch\ntorch.set_num_threads(2)\nassert cpu_share.share_cpu()\n"
        "assert torch.get_num_threads() == 1 and cpu_share.thread_limit(2) == 1\n"
        "pathlib.Path(output_dir, 'b_started').write_text('1')\n"
        "assert not pathlib.Path(output_dir, 'a_ready').exists()\n"
        "assert cpu_share.wait_for_inputs(timeout=120)  # returns once 01 is ready\n"
        "assert pathlib.Path(output_dir, 'a_ready').exists() and torch.get_num_threads() == 1\n"
        "pathlib.Path(output_dir, 'b_done').write_text('1')\n"
        "assert cpu_share.claim_cpu(timeout=120)  # returns once 01 has ended\n"
        "assert pathlib.Path(output_dir, 'a_done').exists()\n"
        "assert torch.get_num_threads() == 2 and cpu_share.thread_limit(2) == 2",
    )
    _notebook(
        books / "03_c.ipynb",
        "import pathlib\nfrom analysis.report import schedule as cpu_share\n"
        "assert pathlib.Path(output_dir, 'a_done').exists() and pathlib.Path(output_dir, 'b_done').exists()\n"
        "assert cpu_share.wait_for_inputs(timeout=5)  # nothing runs next to it: returns at once",
    )
    run = run_report(output_root=tmp_path / "r", notebook_dir=books, progress=False, run_id="x")
    status = json.loads((run / "status.json").read_text())
    assert [v["status"] for v in status["notebooks"].values()] == ["ok"] * 3


def test_a_failure_after_the_handoff_lets_the_running_notebook_end_and_starts_nothing(tmp_path, books):
    _notebook(
        books / "01_a.ipynb",
        _WAIT + "cpu_share.handoff()\n"
        "wait(lambda: pathlib.Path(output_dir, 'b_started').exists(), '02 did not start')\n"
        "raise RuntimeError('boom after the hand-off')",
    )
    _notebook(
        books / "02_b.ipynb",
        "import pathlib, time\npathlib.Path(output_dir, 'b_started').write_text('1')\ntime.sleep(2)",
    )
    _notebook(books / "03_c.ipynb", "print('never')")
    with pytest.raises(RuntimeError, match="01_a.ipynb failed"):
        run_report(output_root=tmp_path / "r", notebook_dir=books, progress=False, run_id="x")
    status = json.loads((tmp_path / "r" / "x" / "status.json").read_text())
    assert [v["status"] for v in status["notebooks"].values()] == ["failed", "ok", "pending"]
    assert "boom after the hand-off" in status["notebooks"]["01_a.ipynb"]["error"]


def test_only_filters_and_rejects_unknown(books):
    assert [b.name for b in list_notebooks(books, ["02"])] == ["02_b.ipynb"]
    with pytest.raises(ValueError, match="no notebook matches"):
        list_notebooks(books, ["09"])


def test_bad_override_is_one_error_line_before_any_work(tmp_path, capsys):
    rc = main(["report", "--set", "seedz=[1]", "--output", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'seedz'") and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_info_lists_presets_and_embedded_models(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "embedded:" in out and "paper:" in out and "smollm2-135m-instruct: installed" in out


def test_paper_report_without_lamp_path_is_one_error_line(tmp_path, capsys):
    rc = main(["report", "--preset", "paper", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "data_paths.lamp is not set" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- the page and the timings


def test_run_writes_timings_and_a_page_that_shows_the_run_in_progress(tmp_path, books):
    """index.html exists while a notebook runs (and says so); afterwards status/provenance carry
    per-notebook, per-section and per-phase seconds and the total."""
    _notebook(
        books / "02_b.ipynb",
        "page = open('index.html').read()\n"
        "assert 'In progress: 02_b is running; 1 of 2 notebooks done' in page, page[:3000]\n"
        "assert 'http-equiv=\"refresh\"' in page\n"
        "from analysis.report.timings import time_stages\n"
        "timer = time_stages(output_dir)\n"
        "with timer.phase('train RMs'):\n"
        "    pass",
    )
    run = run_report(output_root=tmp_path / "r", notebook_dir=books, progress=False, run_id="x")
    status = json.loads((run / "status.json").read_text())
    b = status["notebooks"]["02_b.ipynb"]
    assert b["status"] == "ok" and b["seconds"] > 0 and status["total_seconds"] >= b["seconds"]
    assert {"parameters", "set-up"} <= set(b["stages"]) and list(b["phases"]) == ["train RMs"]
    assert sum(b["stages"].values()) == pytest.approx(b["seconds"], abs=0.2)  # the rest is kernel time
    assert "phases" not in status["notebooks"]["01_a.ipynb"]  # 01 never called time_stages
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["total_seconds"] == status["total_seconds"]
    assert prov["stage_seconds"]["02_b.ipynb"]["study_phases"] == b["phases"]
    page = (run / "index.html").read_text()
    assert "Finished in" in page and "refresh" not in page and "train RMs" in page


def _findings_csv(path, rows) -> None:
    import pandas as pd

    cols = ["claim", "paper", "rule", "this_run", "verdict"]
    pd.DataFrame(rows, columns=cols).assign(preset="embedded").to_csv(path, index=False)


C1 = "1. RM accuracy weakly predicts policy accuracy"
C2 = "2. Large RM-accuracy gaps give nearly the same ROUGE (Pref-LaMP)"


def test_findings_rows_split_datasets_and_take_the_latest_study(tmp_path):
    from analysis.report.page import findings_rows

    t = tmp_path / "tables"
    t.mkdir()
    c1 = (
        "real: tau=0.12 [-0.05, 0.30], p=0.2, n=80 -> supported; "
        "synthetic: tau=0.35 [0.10, 0.55], p=0.01, n=80 -> inconclusive"
    )
    _findings_csv(
        t / "study1_findings.csv",
        [
            [C1, "tau 0.08-0.31", "rule 1", c1, "inconclusive"],
            [C2, "p2", "rule 2", "study 2 not run", "not measured"],
        ],
    )
    _findings_csv(
        t / "study2_findings.csv",
        [
            [C1, "tau 0.08-0.31", "rule 1", "study 1 not run", "not measured"],  # must not hide study 1's
            [C2, "p2", "rule 2", "a: RM acc 0.9; b: RM acc 0.6; ROUGE-1 diff 0.001", "supported"],
        ],
    )
    (t / "study2_summary.csv").write_text("system,dataset\nbase,news_category\nicl_k1,news_category\n")
    rows, sources = findings_rows(t)
    assert sources == ["study1_findings.csv", "study2_findings.csv"]
    got = [(r["claim"][:2], r["dataset"], r["verdict"], r["first"]) for r in rows]
    assert got == [
        ("1.", "all datasets", "inconclusive", True),
        ("1.", "real", "supported", False),
        ("1.", "synthetic", "inconclusive", False),
        ("2.", "news_category", "supported", True),
    ]
    assert (
        rows[1]["this_run"] == "tau=0.12 [-0.05, 0.30], p=0.2, n=80"
        and rows[1]["source"] == "study1_findings.csv"
    )
    assert rows[3]["source"] == "study2_findings.csv" and "ROUGE-1 diff 0.001" in rows[3]["this_run"]


def test_one_row_claim_names_the_setting_it_was_measured_on(tmp_path):
    """Study 2's tables hold the main and the second setting; claim 2 is measured on the main one
    only and says so at the start of ``this_run``: the page names that setting, not both."""
    from analysis.report.page import findings_rows

    t = tmp_path / "tables"
    t.mkdir()
    run = "news_category: rgd_a: RM acc 0.96; rgd_b: RM acc 0.82; ROUGE-1 diff -0.008, 34 users"
    _findings_csv(t / "study2_findings.csv", [[C2, "p2", "rule 2", run, "inconclusive"]])
    (t / "study2_summary.csv").write_text("system,dataset\nbase,news_category\nbase,synthetic\n")
    rows, _ = findings_rows(t)
    assert [(r["dataset"], r["this_run"]) for r in rows] == [("news_category", run)]


def test_findings_csv_with_a_setting_column_gives_a_row_per_setting(tmp_path):
    import pandas as pd

    from analysis.report.page import findings_rows

    t = tmp_path / "tables"
    t.mkdir()
    pd.DataFrame(
        {
            "claim": [C2, C2],
            "setting": ["real authors", "synthetic"],
            "paper": "p2",
            "rule": "r",
            "this_run": ["diff 0.01 [-0.01, 0.015]", "diff 0.05 [0.03, 0.07]"],
            "verdict": ["supported", "not supported"],
        }
    ).to_csv(t / "study2_findings.csv", index=False)
    rows, _ = findings_rows(t)
    assert [(r["dataset"], r["verdict"], r["first"]) for r in rows] == [
        ("real authors", "supported", True),
        ("synthetic", "not supported", False),
    ]


def test_page_shows_findings_first_then_captioned_figures_and_settings(tmp_path):
    import matplotlib.pyplot as plt

    from analysis.report.page import write_index
    from analysis.report.plots import FIGURE_CAPTIONS, save_figure

    run = tmp_path / "run"
    (run / "tables").mkdir(parents=True)
    _findings_csv(
        run / "tables" / "study1_findings.csv",
        [[C1, "tau <b>0.08</b>", "rule", "real: tau=0.12 [-0.05, 0.30], n=80 -> supported", "supported"]],
    )
    for name in ("study2_decoupling", "study1_tau_scatter", "zz_extra"):
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.plot([0, 1])
        save_figure(fig, run, name)
        plt.close(fig)
    (run / "provenance.json").write_text(
        json.dumps(
            {
                "config": {"policy_model": "smollm2-135m-instruct", "seeds": [0, 1], "seed": 0, "k": 10},
                "dtype": {"used": "bfloat16", "setting": "auto", "device": "cpu"},
                "rouge_stemming": True,
                "code_version": "abc123def456",
            }
        )
    )
    status = {
        "preset": "embedded",
        "git_commit": "0123456789abcdef",
        "started": "2026-11-27T18:00:00",
        "notebooks": {"01_x.ipynb": {"status": "ok", "seconds": 3.0}, "02_y.ipynb": {"status": "running"}},
    }
    page = write_index(run, status).read_text()
    order = [page.index(s) for s in ('class="findings"', 'id="figures"', 'id="notebooks"', 'id="settings"')]
    assert order == sorted(order)
    assert "tau &lt;b&gt;0.08&lt;/b&gt;" in page  # CSV text is escaped
    assert '<span class="verdict v-supported">supported</span>' in page
    figs = [
        page.index(f'src="figures/{n}.png"') for n in ("study1_tau_scatter", "study2_decoupling", "zz_extra")
    ]
    assert figs == sorted(figs)  # by study, main figure first, unknown names last
    for name in ("study2_decoupling", "study1_tau_scatter"):
        assert html.escape(FIGURE_CAPTIONS[name]) in page, name
    for value in ("smollm2-135m-instruct", "bfloat16 (setting: auto", "abc123def456", "0123456789abcdef"):
        assert value in page, value
    assert "In progress: 02_y is running; 1 of 2 notebooks done" in page and 'http-equiv="refresh"' in page
    assert not list(run.glob(".index.html*"))  # written atomically: no temp file left


def test_cell_stages_sum_papermill_durations_under_headings(tmp_path):
    from analysis.report.timings import cell_stages

    nb = nbformat.v4.new_notebook()
    cells = [
        nbformat.v4.new_markdown_cell("# 01 · title"),
        nbformat.v4.new_code_cell("params"),
        nbformat.v4.new_code_cell("imports"),
        nbformat.v4.new_markdown_cell("## Train `RMs`\n\ntext"),
        nbformat.v4.new_code_cell("a"),
        nbformat.v4.new_code_cell("b"),
        nbformat.v4.new_markdown_cell("## Figure"),
        nbformat.v4.new_code_cell("never ran"),
    ]
    cells[1].metadata["tags"] = ["parameters"]
    for cell, secs in zip([cells[i] for i in (1, 2, 4, 5)], (0.5, 2.0, 3.0, 4.5), strict=True):
        cell.metadata["papermill"] = {"duration": secs}
    nb.cells = cells
    nbformat.write(nb, tmp_path / "x.ipynb")
    assert cell_stages(tmp_path / "x.ipynb") == {"parameters": 0.5, "set-up": 2.0, "Train RMs": 7.5}


def test_stage_timer_counts_self_time_and_restores_functions(tmp_path, monkeypatch):
    import sys
    import types

    from analysis.report import timings

    clock = iter([0.0, 1.0, 3.0, 4.0, 10.0, 10.5])  # enter A, enter B, exit B, exit A, enter B, exit B
    monkeypatch.setattr(timings.time, "perf_counter", lambda: next(clock))
    mod = types.ModuleType("fake_study")

    def inner():
        return "inner"

    def outer():
        return mod.train_rm()  # looked up at call time, as the studies do

    mod.features, mod.train_rm = outer, inner
    monkeypatch.setitem(sys.modules, "fake_study", mod)
    timer = timings.StageTimer(tmp_path / "t.json", modules=["fake_study"]).start()
    assert mod.features is not outer and mod.features() == "inner"
    assert mod.train_rm() == "inner"
    timer.stop()
    assert mod.features is outer and mod.train_rm is inner
    got = json.loads((tmp_path / "t.json").read_text())
    # features: 0-1 and 3-4 (self), train_rm: 1-3 and 10-10.5
    assert got == {"phases": {"train RMs": 2.5, "features": 2.0}, "calls": {"train RMs": 2, "features": 1}}


def test_every_phase_name_exists_in_the_timed_modules(tmp_path):
    """Each PHASES entry wraps a real function of the study modules (a renamed function would
    silently drop out of the report's timings), including study 1's per-RM policy accuracy."""
    import importlib

    from analysis.evaluation import policy_accuracy
    from analysis.report import timings

    mods = [importlib.import_module(m) for m in timings.STUDY_MODULES]
    for name in timings.PHASES:
        assert any(callable(getattr(m, name, None)) for m in mods), name
    timer = timings.StageTimer(tmp_path / "t.json").start()
    try:
        assert hasattr(policy_accuracy.policy_accuracy, "__stage_timer_original__")
    finally:
        timer.stop()
    assert not hasattr(policy_accuracy.policy_accuracy, "__stage_timer_original__")


def test_two_runs_give_byte_identical_tables(tmp_path):
    """Determinism: notebook 02 (RMs, ARGS / best-of-n / ICL generations, ROUGE, bootstrap
    intervals, paired tests, findings) on a tiny model, run twice with a fresh cache each and a
    fresh kernel each (so another hash seed too), writes the same bytes into every table."""
    from analysis.models.tiny import build_tiny_model

    model, tok = build_tiny_model("llama", seed=1)
    model.save_pretrained(tmp_path / "tiny")  # one model path: it is a settings column of every table
    tok.save_pretrained(tmp_path / "tiny")
    overrides = {
        "policy_model": str(tmp_path / "tiny"),
        "models": [str(tmp_path / "tiny")],
        "n_users": 2,
        "n_test_items": 1,
        "seeds": [0],
        "budgets": [5],
        "methods": ["shared_bt", "lore"],
        "icl_k": [1],
        "max_new_tokens": 3,
        "n_boot": 20,
        "threads": 1,
        "k": 2,
    }
    runs = [
        run_report(
            overrides=overrides,
            output_root=tmp_path / name,  # cache: <root>/cache, empty for each run
            run_id="run",
            only=["02"],
            progress=False,
            html_export=False,
        )
        for name in ("first", "second")
    ]
    tables = sorted(p.name for p in (runs[0] / "tables").glob("*.csv"))
    assert "study2_generations.csv" in tables and "study2_findings.csv" in tables
    assert sorted(p.name for p in (runs[1] / "tables").glob("*.csv")) == tables
    differ = [
        t for t in tables if (runs[0] / "tables" / t).read_bytes() != (runs[1] / "tables" / t).read_bytes()
    ]
    assert not differ, f"tables differ between two identical runs: {differ}"
