"""analysis.report.session.open_run: the notebooks' one-call set-up, and where interactive runs write."""

import nbformat
import pytest

from analysis.errors import ConfigError
from analysis.report import session
from analysis.report.runner import NOTEBOOK_DIR
from analysis.report.session import open_run


@pytest.fixture
def reports(tmp_path, monkeypatch):
    root = tmp_path / "reports"
    monkeypatch.setattr(session, "reports_root", lambda: root)
    return root


def test_default_output_is_a_fresh_interactive_folder_under_reports(reports):
    a = open_run(quiet=True)
    b = open_run(quiet=True)
    assert a.out.parent == reports and a.out.name.startswith("interactive-") and a.out != b.out
    assert (a.out / "figures").is_dir() and (a.out / "tables").is_dir()
    assert a.cache == str(reports / "cache")  # interactive runs share the study cache
    assert "notebooks" not in a.out.parts


def test_real_reports_root_is_the_checkouts_reports_folder():
    assert session.reports_root() == NOTEBOOK_DIR.parent / "reports"


def test_explicit_folders_params_and_overrides(tmp_path, reports, capsys):
    run = open_run(
        "embedded",
        {"seeds": [3], "k": 4},
        output_dir=str(tmp_path / "run"),
        params={"k": None, "methods": ["lore"], "budgets": [7]},
    )
    assert run.out == tmp_path / "run" and run.cache == str(tmp_path / "run" / "cache")
    assert (run.cfg.seeds, run.cfg.k, run.cfg.methods, run.cfg.budgets) == ([3], 4, ["lore"], [7])
    assert f"fingerprint={run.cfg.fingerprint()}" in capsys.readouterr().out
    assert open_run(output_dir=str(tmp_path / "r2"), cache_dir="c", quiet=True).cache == "c"
    cfg_cache = open_run(output_dir=str(tmp_path / "r3"), overrides={"cache_dir": "cc"}, quiet=True)
    assert cfg_cache.cache == "cc"
    with pytest.raises(ConfigError, match="'methods\\[0\\]'"):
        open_run(params={"methods": ["nope"]}, quiet=True)


def test_the_summary_line_names_the_dtype_and_labels_a_bf16_cpu_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ANALYSIS_CPU_BF16", "1")  # a native-bf16 CPU: auto is float32 all the same
    open_run(output_dir=str(tmp_path / "a"))
    out = capsys.readouterr().out
    assert " dtype=float32 " in out and "NOTE" not in out
    open_run(overrides={"dtype": "bfloat16"}, output_dir=str(tmp_path / "b"))
    out = capsys.readouterr().out
    assert " dtype=bfloat16 " in out and "NOTE: This run computed in bfloat16 on the CPU" in out
    assert "not comparable with float32 runs" in out


def test_run_writes_tables_and_figures_with_settings(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    run = open_run(output_dir=str(tmp_path), quiet=True)
    path = run.table(pd.DataFrame({"a": [1]}), "t", {"extra": "x"})
    df = pd.read_csv(path)
    assert df.loc[0, "a"] == 1 and df.loc[0, "extra"] == "x" and "policy_model" in df.columns
    fig, _ = plt.subplots()
    assert run.figure(fig, "f")["png"].exists()


@pytest.mark.parametrize(
    "name", ["01_rm_vs_policy_accuracy", "02_preflamp_decoupling", "03_icl_vs_rgd_scale"]
)
def test_study_notebook_set_up_is_one_open_run_call(name, reports):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    params, setup = nb.cells[1], nb.cells[2]
    assert "parameters" in params.metadata["tags"]
    assert setup.source.count("open_run(") == 1 and "mkdir" not in setup.source
    # imports, the one open_run call, and the stage timer (its import and call: report timings)
    lines = [ln for ln in setup.source.splitlines() if "time_stages" not in ln]
    assert len(lines) <= 10
    ns: dict = {}
    exec(params.source, ns)  # the defaults, as an interactive user would run them
    ns["overrides"] = {"seeds": [1]}
    exec(setup.source, ns)
    assert ns["cfg"].seeds == [1] and ns["out"].parent == reports and ns["cache"] == str(reports / "cache")
