"""The generation inspector: selection logic without a browser, HTML rendering, the widget wrapper."""

import numpy as np
import pandas as pd
import pytest

from analysis.widgets import Inspector, InspectorWidget, list_runs


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


def test_widget_updates_html_on_selection(run):
    w = InspectorWidget(run_dir=run)
    assert w.user.value == "user00" and "base user00/a" in w.out.value
    w.user.value = "user01"
    assert w.item.value == "user01/a" and "base user01/a" in w.out.value
    w.method.value = "pal"
    w.w.value = 2.0
    assert "pal w2 user01/a" in w.out.value and "lore w" not in w.out.value
    w.item.value = "user01/b"
    assert "pal w2 user01/b" in w.out.value
