"""ROUGE metrics, the per-method table and the ``evaluate`` command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.evaluation.generations import compare_methods, format_table, method_table, score_generations
from analysis.metrics.intervals import summarize_by_user
from analysis.metrics.rouge import rouge_by_user, rouge_scores, rouge_summary


@pytest.mark.parametrize("stem", [True, False])
def test_rouge_identity_and_disjoint(stem):
    text = "City council approves the new bridge budget"
    s = rouge_scores(
        [text, text, "alpha beta"], [text, "Storms flood valley towns", "gamma delta"], use_stemmer=stem
    )
    assert s["rouge1"].tolist() == [1.0, 0.0, 0.0]
    assert s["rougeL"].tolist() == [1.0, 0.0, 0.0]


def test_stemming_setting_matters_and_missing_reference_is_nan():
    on = rouge_scores(["running dogs"], ["run dog"], use_stemmer=True)["rouge1"][0]
    off = rouge_scores(["running dogs"], ["run dog"], use_stemmer=False)["rouge1"][0]
    assert (on, off) == (1.0, 0.0)
    s = rouge_scores(["a b", ""], [None, "a b"])
    assert np.isnan(s["rouge1"][0]) and s["rouge1"][1] == 0.0


def test_rougeL_uses_longest_common_subsequence():
    # reference "a b c d", prediction "a c b d": LCS = 3 ("a b d"), unigram overlap = 4
    s = rouge_scores(["a c b d"], ["a b c d"], use_stemmer=False)
    assert s["rouge1"][0] == pytest.approx(1.0)
    assert s["rougeL"][0] == pytest.approx(0.75)


def test_per_user_then_overall_hand_computed():
    # user A: "a b" vs "a b c d": P = 1, R = 1/2, F = 2/3; "x" vs "y": 0 -> A = 1/3
    # user B: identical -> 1.  Over users: (1/3 + 1) / 2 = 2/3 (per generation it would be 5/9)
    users = ["A", "A", "B"]
    preds = ["a b", "x", "same words here"]
    refs = ["a b c d", "y", "same words here"]
    s = rouge_summary(users, preds, refs, use_stemmer=False, n_boot=200)
    assert s["rouge1"]["mean"] == pytest.approx(2 / 3)
    assert (s["rouge1"]["n_users"], s["rouge1"]["n"], s["stemming"]) == (2, 3, False)
    assert rouge_by_user(users, preds, refs) == pytest.approx({"A": 1 / 3, "B": 1.0})


def _rows(n_users, seed=0, method="m", quality=0.5):
    """Per user 3 generations whose ROUGE-1 varies with the user (a random share of reference words)."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(200)]
    rows = []
    for u in range(n_users):
        keep = np.clip(quality + rng.normal(0, 0.2), 0, 1)
        for j in range(3):
            ref = list(rng.choice(vocab, 10, replace=False))
            pred = [w if rng.random() < keep else "zz" for w in ref]
            rows.append({"user_id": f"u{u}", "test_id": f"u{u}/{j}", "method": method, "params": {"k": 1},
                         "text": " ".join(pred), "reference": " ".join(ref)})  # fmt: skip
    return rows


def test_bootstrap_interval_contains_mean_and_shrinks_with_users(two_level_sd):
    widths = []
    for n in (8, 128):
        df = score_generations(_rows(n))
        s = summarize_by_user(df["user_id"], df["rouge1"], n_boot=1000)
        mean, sd = two_level_sd(df["user_id"], df["rouge1"])
        assert s["n_users"] == n and s["mean"] == pytest.approx(mean)
        assert (s["ci_high"] - s["ci_low"]) / (2 * 1.96 * sd) == pytest.approx(1.0, abs=0.2)
        assert abs((s["ci_high"] + s["ci_low"]) / 2 - mean) < 0.3 * sd
        widths.append(s["ci_high"] - s["ci_low"])
    assert widths[1] < widths[0] / 2  # ~ 1 / sqrt(16) = 1/4 expected


def test_paired_comparison_of_a_method_with_itself_and_with_a_worse_one():
    good = _rows(20, method="icl", quality=0.8)
    same = [dict(r, method="copy") for r in good]
    worse = [dict(r, method="base", text="unrelated words entirely") for r in good]
    df = score_generations(good + same + worse)
    c = compare_methods(df, "icl", "copy", n_boot=500)
    assert (c["diff"], c["ci_low"], c["ci_high"], c["wilcoxon_p"], c["n_users"]) == (0.0, 0.0, 0.0, 1.0, 20)
    d = compare_methods(df, "icl", "base", metric="rougeL", n_boot=500)
    assert d["diff"] > 0.5 and d["ci_low"] > 0 and d["wilcoxon_p"] < 0.001


def test_method_table_one_row_per_setting():
    rows = _rows(5, method="icl") + [dict(r, params={"k": 4}) for r in _rows(5, method="icl", quality=0.9)]
    rows += [dict(r, method="base", params={}, text=r["reference"]) for r in _rows(4)]
    table = method_table(rows, n_boot=200, use_stemmer=False)
    assert table[["method", "params"]].values.tolist() == [
        ["icl", '{"k":1}'],
        ["icl", '{"k":4}'],
        ["base", "{}"],
    ]
    base = table.iloc[2]
    assert [base[c] for c in ("rouge1", "rougeL", "users", "n", "stemming")] == [1.0, 1.0, 4, 12, False]
    assert (table["rouge1_ci_low"] <= table["rouge1"]).all()
    assert (table["rouge1"] <= table["rouge1_ci_high"]).all()
    text = format_table(table)
    assert "ROUGE-1" in text and "stemming off" in text
    with pytest.raises(ValueError, match="2 settings"):
        compare_methods(score_generations(rows), "icl", "base")
    c = compare_methods(score_generations(rows), 'icl {"k": 4}', "base", n_boot=100)
    assert c["n_users"] == 4


def test_cli_evaluate_prints_table_and_writes_csv(tmp_path, capsys):
    from analysis.cli import main

    gen = tmp_path / "gen.jsonl"
    rows = _rows(6, method="icl") + [dict(r, method="base", params={}) for r in _rows(6, seed=1)]
    gen.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "table.csv"
    argv = ["evaluate", "--generations", str(gen), "--csv", str(out), "--no-stem", "--compare", "icl", "base"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ROUGE-L" in printed and "stemming off" in printed and "Wilcoxon" in printed
    table = pd.read_csv(out)
    assert table["method"].tolist() == ["icl", "base"] and not table["stemming"].any()
    expected = method_table(rows, use_stemmer=False)
    assert np.allclose(table["rouge1"], expected["rouge1"])
    assert np.allclose(table["rougeL_ci_high"], expected["rougeL_ci_high"])
    assert main(["evaluate", "--generations", str(tmp_path / "missing.jsonl")]) == 2
    assert "error:" in capsys.readouterr().err


def test_rows_without_params_are_split_by_their_setting_fields():
    rows = [dict(r, method="args", w=w) for w in (0.5, 1.0) for r in _rows(3)]
    for r in rows:
        del r["params"]
    table = method_table(rows, n_boot=50)
    assert table["params"].tolist() == ['{"w":0.5}', '{"w":1.0}']
    assert table["users"].tolist() == [3, 3]


def _f(overlap, n_pred, n_ref):
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r) if overlap else 0.0


def test_rouge_of_generated_texts_against_hand_counted_values():
    """Counted by hand (lower-case [a-z0-9]+ tokens; Porter stems only for tokens longer than 3):

    1. ref "The cats are running fast!" / gen "A cat runs fast": without stemming only "fast" is
       shared (1 of 4 generated, 1 of 5 reference tokens); stemmed cats/cat -> cat and
       running/runs -> run, so 3 shared (cat, run, fast), and they are in order (LCS 3).
    2. ref "police said the storm hit" / gen "the storm hit police": 4 shared unigrams but the
       longest common subsequence is "the storm hit" (3), so ROUGE-1 > ROUGE-L.
    3. ref "Council votes on 2 new parks" / gen "council vote: 2 parks, 2 roads": unigram counts
       are clipped (two "2" generated, one in the reference): shared council, 2, parks (3 of 6
       and 3 of 6); stemmed votes/vote -> vote adds one (4); LCS council (vote) 2 parks.
    """
    refs = ["The cats are running fast!", "police said the storm hit", "Council votes on 2 new parks"]
    gens = ["A cat runs fast", "the storm hit police", "council vote: 2 parks, 2 roads"]
    plain = rouge_scores(gens, refs, use_stemmer=False)
    stem = rouge_scores(gens, refs, use_stemmer=True)
    np.testing.assert_allclose(plain["rouge1"], [_f(1, 4, 5), _f(4, 4, 5), _f(3, 6, 6)], atol=1e-12)
    np.testing.assert_allclose(plain["rougeL"], [_f(1, 4, 5), _f(3, 4, 5), _f(3, 6, 6)], atol=1e-12)
    np.testing.assert_allclose(stem["rouge1"], [_f(3, 4, 5), _f(4, 4, 5), _f(4, 6, 6)], atol=1e-12)
    np.testing.assert_allclose(stem["rougeL"], [_f(3, 4, 5), _f(3, 4, 5), _f(4, 6, 6)], atol=1e-12)
