"""The generation inspector: selection logic without a browser, HTML rendering, the widget wrapper."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis.inspect.run_picker import default_run, item_label, pick_run, run_choices, run_state
from analysis.inspect.widgets import Inspector, InspectorWidget, list_runs


def _rows():
    rows = []
    for u in ("user00", "user01"):
        for item in ("a", "b"):
            tid = f"{u}/{item}"
            common = {
                "dataset": "synthetic",
                "model": "tiny",
                "user_id": u,
                "test_id": tid,
                "input": f"input of {tid}",
                "reference": f"real <{u}> {item}",
            }
            rows.append(
                {
                    **common,
                    "system": "base",
                    "kind": "base",
                    "method": "",
                    "icl_k": np.nan,
                    "w": np.nan,
                    "prompt": f"P0 {tid}",
                    "text": f"base {tid}",
                    "rouge1": 0.1,
                    "rougeL": 0.1,
                    "reward": np.nan,
                    "oracle_reward": 0.2,
                }
            )
            for k in (1, 4):
                rows.append(
                    {
                        **common,
                        "system": f"icl_k{k}",
                        "kind": "icl",
                        "method": "icl",
                        "icl_k": k,
                        "w": np.nan,
                        "prompt": f"ICL{k} prompt {tid}",
                        "text": f"icl{k} {tid}",
                        "rouge1": 0.5,
                        "rougeL": 0.4,
                        "reward": np.nan,
                        "oracle_reward": 0.9,
                    }
                )
            for m in ("lore", "pal"):
                for w in (1.0, 2.0):
                    rows.append(
                        {
                            **common,
                            "system": f"rgd_{m}_w{w:g}",
                            "kind": "rgd",
                            "method": m,
                            "icl_k": np.nan,
                            "w": w,
                            "prompt": f"P0 {tid}",
                            "text": f"{m} w{w:g} {tid}",
                            "rouge1": 0.2,
                            "rougeL": 0.2,
                            "reward": 1.5 * w,
                            "oracle_reward": 0.3,
                        }
                    )
    return pd.DataFrame(rows)


@pytest.fixture()
def run(tmp_path):
    run = tmp_path / "reports" / "20260101-000000-embedded"
    (run / "tables").mkdir(parents=True)
    _rows().to_csv(run / "tables" / "study2_generations.csv", index=False)
    # study 3 repeats the policy model's generations: the inspector keeps one copy
    _rows().to_csv(run / "tables" / "study3_generations.csv", index=False)
    pd.DataFrame(
        [
            {
                "user_id": "user01",
                "item_id": f"i{i}",
                "date": f"2024-01-0{i}",
                "input": f"old input {i}",
                "output": f"old headline {i}",
            }
            for i in range(1, 8)
        ]
    ).to_csv(run / "tables" / "study2_profiles.csv", index=False)
    return run


def test_choices(run):
    ins = Inspector(run)
    assert len(ins.gens) == 2 * 2 * 7
    assert ins.datasets() == ["synthetic | tiny"]
    assert ins.users("synthetic | tiny") == ["user00", "user01"]
    assert ins.test_items("synthetic | tiny", "user01") == ["user01/a", "user01/b"]
    assert ins.methods("synthetic | tiny") == ["all", "lore", "pal"]
    assert ins.w_values("synthetic | tiny", "pal") == [1.0, 2.0]
    assert list_runs(run.parent) == [run]


def test_targets_are_keyed_by_user_and_test_id(tmp_path):
    """Real authors' test ids are article links: co-authors (multi_author 'each') share one, and
    each author has several targets; the inspector keeps every (user, target) once."""
    rows = _rows()
    rows["test_id"] = rows["test_id"].str.split("/").str[1]  # 'a', 'b' for both users
    run = tmp_path / "run"
    (run / "tables").mkdir(parents=True)
    rows.to_csv(run / "tables" / "study2_generations.csv", index=False)
    rows.to_csv(run / "tables" / "study3_generations.csv", index=False)
    ins = Inspector(run)
    assert len(ins.gens) == 2 * 2 * 7
    assert (
        ins.test_items("synthetic | tiny", "user00")
        == ins.test_items("synthetic | tiny", "user01")
        == ["a", "b"]
    )
    v = ins.view("synthetic | tiny", "user00", test_id="b")
    assert v["reference"] == "real <user00> b" and {g["text"] for g in v["generations"]} >= {"base user00/b"}


def test_view_selects_method_w_and_shows_icl_prompt(run):
    ins = Inspector(run)
    v = ins.view("synthetic | tiny", "user01", test_id="user01/b", method="pal", w=2.0, n_profile=3)
    assert [g["system"] for g in v["generations"]] == ["base", "icl_k1", "icl_k4", "rgd_pal_w2"]
    pal = v["generations"][-1]
    assert pal["text"] == "pal w2 user01/b" and pal["reward"] == 3.0
    assert v["icl_prompt"] == "ICL4 prompt user01/b"  # the largest k's prompt
    assert v["input"] == "input of user01/b" and v["reference"] == "real <user01> b"
    assert [p["output"] for p in v["profile"]] == ["old headline 7", "old headline 6", "old headline 5"]
    assert v["n_profile"] == 7
    everything = ins.view("synthetic | tiny", "user00", method="all", w=1.0)
    assert [g["system"] for g in everything["generations"]][-2:] == ["rgd_lore_w1", "rgd_pal_w1"]
    assert everything["test_id"] == "user00/a"


def test_html_is_escaped_and_complete(run):
    ins = Inspector(run)
    html = Inspector.to_html(ins.view("synthetic | tiny", "user01", method="lore", w=1.0))
    assert "real &lt;user01&gt; a" in html and "<user01>" not in html
    assert "lore w1 user01/a" in html and "ICL4 prompt user01/a" in html and "old headline 7" in html
    assert "ROUGE-1" in html


def test_bad_selection_errors(run, tmp_path):
    ins = Inspector(run)
    with pytest.raises(ValueError, match="no generations for user"):
        ins.view("synthetic | tiny", "nobody")
    with pytest.raises(ValueError, match="unknown dataset"):
        ins.users("lamp | x")
    with pytest.raises(FileNotFoundError, match="no generation tables"):
        Inspector(tmp_path)


def _shown(w) -> str:
    return w.out.value + w.table.value + w.prompt.children[0].value


def test_widget_updates_html_on_selection(run):
    w = InspectorWidget(run_dir=run)
    assert w.user.value == "user00" and "base user00/a" in _shown(w)
    w.user.value = "user01"
    assert w.item.value == "user01/a" and "base user01/a" in _shown(w)
    w.method.value = "pal"
    w.w.value = 2.0
    assert "pal w2 user01/a" in _shown(w) and "lore w" not in _shown(w)
    w.item.value = "user01/b"
    assert "pal w2 user01/b" in _shown(w) and "ICL4 prompt user01/b" in _shown(w)
    assert "user01/a" not in _shown(w)  # no stale row of the previous item


def test_widget_keeps_open_sections_and_selection_across_changes(run):
    w = InspectorWidget(run_dir=run)
    assert w.prompt.selected_index is None and w.profile.selected_index == 0
    w.prompt.selected_index = 0  # the user opens "ICL prompt the model saw"
    w.method.value = "pal"
    w.w.value = 2.0
    w.user.value = "user01"
    assert w.prompt.selected_index == 0 and w.prompt.children[0].value.count("ICL4 prompt user01/a") == 1
    assert (w.method.value, w.w.value) == ("pal", 2.0)  # a new user keeps method and w
    assert w.profile.get_title(0) == "Profile examples (5 of 7)"


def test_widget_widths_fit_the_longest_value(run):
    w = InspectorWidget(run_dir=run, reports_root=run.parent)
    assert w.run.layout.width == f"calc(90px + {len(run.name) + 4}ch)"
    assert w.dataset.layout.width == f"calc(90px + {len('synthetic | tiny') + 4}ch)"
    assert w.item.options[1] == ("2: user00/b", "user00/b")


def test_oracle_and_reward_columns_explain_blanks(run):
    ins = Inspector(run)
    ins.gens["oracle_reward"] = math.nan  # real users: no oracle
    ins.gens["dataset"] = "pref-lamp"
    v = ins.view("pref-lamp | tiny", "user00", method="lore", w=1.0)
    notes = Inspector.notes(v)
    assert any(n.startswith("oracle:") and "pref-lamp has real users" in n for n in notes)
    assert any(n.startswith("reward:") for n in notes)  # base/ICL rows have no RM reward
    assert not any(n.startswith("ROUGE") for n in notes)
    html = Inspector.table_html(v)
    assert html.count(">n/a<") == 3 * 1 + 4  # base/icl1/icl4 reward, plus every oracle cell
    full = Inspector(run).view("synthetic | tiny", "user00", method="lore", w=1.0)
    assert not any(n.startswith("oracle:") for n in Inspector.notes(full))


def _status(run, states):
    nbs = {f"0{i + 1}_x.ipynb": {"status": s} for i, s in enumerate(states)}
    (run / "status.json").write_text(json.dumps({"notebooks": nbs}))


def _copy_run(run, name):
    import shutil

    return shutil.copytree(run, run.parent / name)


def test_run_discovery_falls_back_to_newest_finished_run(run):
    root = run.parent
    newer = _copy_run(run, "20260102-000000-embedded")
    newest = _copy_run(run, "20260103-000000-embedded")
    _status(run, ["ok", "ok"])
    _status(newer, ["ok", "ok", "ok", "ok"])
    _status(newest, ["ok", "running", "pending"])
    (root / "latest").symlink_to(newest.name)
    assert [run_state(p) for p in (run, newer, newest)] == ["finished", "finished", "running"]
    assert run_state(root / "nothing") == "unknown"
    assert list_runs(root) == [newest, newer, run]  # latest is not listed a second time
    assert default_run(root) == newer.resolve()  # latest is still running: newest finished
    (root / "latest").unlink()
    (root / "latest").symlink_to(run.name)
    assert default_run(root) == run.resolve()  # latest finished: it wins
    _status(newer, ["ok", "failed"])
    assert run_state(newer) == "failed"
    labels = [lab for lab, _ in run_choices(root)]
    assert labels == [
        "20260103-000000-embedded  (running)",
        "20260102-000000-embedded  (failed)",
        "20260101-000000-embedded  (latest)",
    ]
    assert [v for _, v in run_choices(root, root / "latest")] == [
        str(p.resolve()) for p in (newest, newer, run)
    ]


def test_pick_run_prefers_explicit_then_own_run_then_default(run, tmp_path):
    root = run.parent
    _status(run, ["ok", "running"])  # the report is executing notebook 04 of this run
    assert pick_run(output_dir=str(run), reports_root=root) == run.resolve()
    with pytest.raises(FileNotFoundError, match="no finished run with generation tables"):
        pick_run(output_dir=".", reports_root=root)  # interactive: the only run is not finished
    _status(run, ["ok", "ok"])
    assert pick_run(output_dir=".", reports_root=root) == run.resolve()
    assert pick_run(run_dir=str(run), output_dir=str(tmp_path)) == run.resolve()
    with pytest.raises(FileNotFoundError, match="run_dir='/nowhere'"):
        pick_run(run_dir="/nowhere")


def test_item_labels_are_short():
    url = "https://www.example-news.com/2019/05/politics/some-very-long-article-slug-about-things-2019.html"
    label = item_label(url)
    assert label.startswith("example-news.com/…/some-very-long-article") and label.endswith("…")
    assert len(label) == 48
    assert item_label("user01/a") == "user01/a"
    assert item_label("https://x.org") == "x.org"
