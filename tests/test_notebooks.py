"""Every study notebook executed through papermill (the report runner) with tiny parameters."""

import json

import nbformat
import pandas as pd
import pytest

from analysis.report.runner import NOTEBOOK_DIR, list_notebooks, run_report
from analysis.studies.findings import VERDICTS

EXPECTED = [
    "01_rm_vs_policy_accuracy",
    "02_preflamp_decoupling",
    "03_icl_vs_rgd_scale",
    "04_inspect_generations",
    "05_rm_selection",
]


def test_notebooks_are_clean_and_parameterized():
    books = list_notebooks(NOTEBOOK_DIR)
    assert [b.stem for b in books] == EXPECTED
    for b in books:
        nb = nbformat.read(b, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, b.name
        for name in ("preset", "overrides", "config_path", "output_dir", "cache_dir"):
            assert f"{name}:" in tagged[0].source, (b.name, name)
        assert all(
            not c.get("outputs") and c.get("execution_count") is None
            for c in nb.cells
            if c.cell_type == "code"
        )


def test_every_parameter_is_documented_for_papermill():
    """`papermill --help-notebook` must list every parameter with its help text (no '=' in comments)."""
    import papermill as pm

    extra = {
        "01": {"datasets", "methods", "seeds", "budgets", "w_values", "k"},
        "02": {"methods", "rgd_w", "generation_w", "icl_k", "k", "second_settings"},
        "03": {"models", "icl_k", "methods"},
        "04": {"run_dir", "reports_root", "user"},
        "05": {"selection_n", "selection_args_cells"},
    }
    for b in list_notebooks(NOTEBOOK_DIR):
        params = pm.inspect_notebook(str(b))
        want = {"preset", "overrides", "config_path", "output_dir", "cache_dir"} | extra[b.name[:2]]
        assert set(params) == want, b.name
        assert all(p["help"] for p in params.values()), b.name


def test_notebooks_match_their_generator():
    """notebooks/_build.py is the source of truth: the committed .ipynb files equal its output."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("nb_build", NOTEBOOK_DIR / "_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, make in mod.BOOKS.items():
        assert nbformat.writes(make()).strip() == (NOTEBOOK_DIR / name).read_text().strip(), (
            f"rerun notebooks/_build.py ({name})"
        )


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from analysis.models.tiny import build_tiny_model

    tmp = tmp_path_factory.mktemp("nbreport")
    model, tok = build_tiny_model("llama", seed=1)
    model.save_pretrained(tmp / "tiny")
    tok.save_pretrained(tmp / "tiny")
    overrides = {
        "policy_model": str(tmp / "tiny"),
        "models": [str(tmp / "tiny")],
        "n_users": 3,
        "n_test_items": 1,
        "seeds": [0],
        "budgets": [5, 30],
        "methods": ["shared_bt", "per_user_bt", "lore"],
        "w_values": [0.0, 1.0],
        "icl_k": [1],
        "max_new_tokens": 4,
        "n_boot": 50,
        "threads": 1,
        "k": 3,
        # the embedded preset (real authors + synthetic world) at test sizes
        "max_real_users": 4,
        "max_real_profile": 10,
        "synthetic_profile": [12, 20],
        "attribute_prompts": 30,
        "pair_test_frac": 0.2,
        "inspector_w": [2.0],  # one extra ARGS weight for the inspector (the preset has none)
        "selection_args_cells": 3,  # study 5's ARGS path (the preset runs none)
    }
    run = run_report(
        "embedded", overrides=overrides, output_root=tmp / "reports", run_id="tiny", progress=False
    )
    return run


def test_report_outputs_exist(report):
    status = json.loads((report / "status.json").read_text())
    assert [v["status"] for v in status["notebooks"].values()] == ["ok"] * 5
    for stem in EXPECTED:
        assert (report / f"{stem}.ipynb").exists() and (report / f"{stem}.html").exists()
    for fig in (
        "study1_tau_scatter",
        "study1_tau_by_w",
        "study2_decoupling",
        "study3_scale",
        "study5_selection",
    ):
        for ext in ("png", "pdf"):
            assert (report / "figures" / f"{fig}.{ext}").stat().st_size > 1000, (fig, ext)
    index = (report / "index.html").read_text()
    assert "study2_decoupling.png" in index and "study1_tau.csv" in index
    assert "study5_selection.png" in index and "4. Beyond the paper: which proxy selects the RM" in index


def test_report_tables_have_expected_columns_and_ranges(report):
    t = report / "tables"
    rms = pd.read_csv(t / "study1_rms.csv")
    # 4 datasets (the real authors first) x 3 methods x 2 budgets, plus one normalize_reward=False
    # sensitivity RM per method
    assert (
        len(rms) == 4 * 3 * 2 + 4 * 3
        and rms["sensitivity"].sum() == 4 * 3
        and rms["rm_acc"].between(0, 1).all()
    )
    assert {"rouge_stemming", "policy_model", "seeds", "n_boot"} <= set(rms.columns)
    cards = pd.read_csv(t / "study1_cards.csv")
    assert list(cards["dataset"]) == list(rms["dataset"].drop_duplicates()) and (cards["n_test"] > 0).all()
    assert (cards["n_train"] + cards["n_val"] + cards["n_test"] == cards["n_pairs"]).all()
    tau = pd.read_csv(t / "study1_tau.csv")
    assert {"dataset", "variant", "length_norm", "w", "tau", "tau_lo", "tau_hi", "p_value", "n_rms"} <= set(
        tau.columns
    )
    assert tau["tau"].dropna().between(-1, 1).all() and tau["n_rms"].eq(6).all()
    assert {"rel_rm", "rel_policy", "tau_corrected", "interval"} <= set(tau.columns)
    summ = pd.read_csv(t / "study2_summary.csv")
    assert set(summ["kind"]) == {"base", "base_sampled", "icl", "bon", "rgd"}
    assert summ["rouge1"].between(0, 1).all()
    # study 2 on the real authors and, labelled, on the synthetic world; ICL parity is stated
    assert set(summ["dataset"]) == {"news_category", "synthetic"} == set(summ["setting"])
    assert set(summ.loc[summ["kind"] == "icl", "icl_pool"]) == {"train"}
    assert summ.loc[summ["kind"] == "rgd", "rm_acc"].between(0, 1).all()
    gens = pd.read_csv(t / "study2_generations.csv")
    assert {
        "user_id",
        "test_id",
        "system",
        "prompt",
        "text",
        "reference",
        "rouge1",
        "rougeL",
        "reward",
        "dataset",
    } <= set(gens.columns)
    rgd = gens[gens["kind"] == "rgd"]
    assert set(rgd.loc[rgd["dataset"] == "news_category", "w"]) == {1.0, 2.0}  # rgd_w + inspector_w
    assert set(rgd.loc[rgd["dataset"] == "synthetic", "w"]) == {1.0}  # second settings: rgd_w only
    scale = pd.read_csv(t / "study3_scale.csv")
    assert (
        set(scale["system"]) == {"base", "base_sampled", "rgd_best", "icl_k1"}
        and scale["rouge1"].between(0, 1).all()
    )
    tests = pd.read_csv(t / "study3_tests.csv")
    assert {"comparison", "diff", "ci_low", "ci_high", "wilcoxon_p", "n_users"} <= set(tests.columns)
    for n in (1, 2, 3, 5):
        f = pd.read_csv(t / f"study{n}_findings.csv")
        assert len(f) == 4 and set(f["verdict"]) <= set(VERDICTS)
    final = pd.read_csv(t / "study3_findings.csv")
    assert "not measured" not in set(final["verdict"][:3])  # notebook 03 sees studies 1-3 of the run
    final = pd.read_csv(t / "study5_findings.csv")
    assert "not measured" not in set(final["verdict"])  # notebook 05 sees every study of the run
    # study 5: every RM of the real authors' population (3 methods x 2 budgets) on every target
    s5 = pd.read_csv(t / "study5_rms.csv")
    assert len(s5) == 3 * 2 and set(s5["dataset"]) == {"news_category_preflamp"}
    assert {"rm_acc", "policy_acc", "reward_spread", "rouge1", "rouge1_lo", "selection_n"} <= set(s5.columns)
    sel = pd.read_csv(t / "study5_selection.csv")
    assert {"proxy", "tau", "regret_best", "regret_best_lo", "regret_random", "system", "n_boot"} <= set(
        sel.columns
    )
    assert (sel["regret_best"] <= 0).all() and "rm_acc" in set(sel["proxy"])
    comps = pd.read_csv(t / "study5_comparisons.csv")
    assert "policy_acc vs rm_acc" in set(comps["comparison"]) and set(comps["system"]) == {"bon", "args"}
    assert (
        s5["rouge1_args"].notna().sum() == 3 and (report / "figures" / "study5_selection_args.png").exists()
    )


def test_inspector_notebook_rendered_a_view(report):
    nb = nbformat.read(report / "04_inspect_generations.ipynb", as_version=4)
    html = "".join(
        str(o.get("data", {}).get("text/html", "")) for c in nb.cells for o in c.get("outputs", [])
    )
    assert "Real completion" in html and "ICL prompt the model saw" in html
    users = set(pd.read_csv(report / "tables" / "study2_generations.csv")["user_id"].astype(str))
    assert any(u in html for u in users)  # the first user of the run: a real author by default
