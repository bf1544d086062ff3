"""The "findings" table: did each of the paper's three claims hold in this run, with the numbers.

Decision rules (stated in the table itself, so a reader can disagree with them):

1. *Weak link between RM accuracy and policy accuracy* holds on a dataset when Kendall's tau-b
   (score variant, ``w = cfg.rgd_w``, no length normalisation) is below ``WEAK_TAU`` = 0.4
   (the paper measured 0.08-0.31).
2. *Decoupling on Pref-LaMP* holds when the RGD methods' RM accuracies span at least
   ``MIN_RM_SPREAD`` = 10 points while their ROUGE-1 spans less than a quarter of that.
3. *ICL beats every RGD method at scale* holds for a model when best-ICL minus best-RGD ROUGE-1
   is positive with a paired bootstrap interval above 0; the paper's claim is about models of
   3B parameters and up, so with no such model it is reported "not testable" (numbers still shown).

A claim whose study did not run yet is "not measured".
"""

from __future__ import annotations

import math

import pandas as pd

WEAK_TAU = 0.4
MIN_RM_SPREAD = 0.10
SCALE_B = 3.0
COLUMNS = ["claim", "paper", "rule", "this_run", "held"]


def _f(x, d: int = 3) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def claim1(tau: pd.DataFrame | None, w: float) -> dict:
    row = {
        "claim": "1. RM accuracy weakly predicts policy accuracy",
        "paper": "Kendall tau 0.08-0.31 on 3 datasets",
        "rule": f"tau (score variant, w={w:g}) < {WEAK_TAU} on every dataset",
    }
    if tau is None or tau.empty:
        return {**row, "this_run": "study 1 not run", "held": "not measured"}
    t = tau[(tau["variant"] == "score") & (~tau["length_norm"].astype(bool)) & ((tau["w"] - w).abs() < 1e-9)]
    if t.empty:
        return {**row, "this_run": f"no score-variant tau at w={w:g}", "held": "not measured"}
    parts = [
        f"{r.dataset}: tau={_f(r.tau, 2)} [{_f(r.tau_lo, 2)}, {_f(r.tau_hi, 2)}], p={_f(r.p_value)}, "
        f"n={int(r.n_rms)}"
        for r in t.itertuples()
    ]
    ok = [r.tau < WEAK_TAU for r in t.itertuples() if not math.isnan(r.tau)]  # NaN tau: all ties, untestable
    if not ok:
        return {**row, "this_run": "; ".join(parts), "held": "not testable"}
    held = "yes" if all(ok) else ("partly" if any(ok) else "no")
    return {**row, "this_run": "; ".join(parts), "held": held}


def claim2(summary: pd.DataFrame | None) -> dict:
    row = {
        "claim": "2. Large RM-accuracy gaps give nearly the same ROUGE (Pref-LaMP)",
        "paper": "methods ~20 points apart in RM accuracy, nearly equal ROUGE",
        "rule": f"RM-acc spread >= {MIN_RM_SPREAD:.2f} and ROUGE-1 spread < spread/4",
    }
    if summary is None or summary.empty:
        return {**row, "this_run": "study 2 not run", "held": "not measured"}
    r = summary[summary["kind"] == "rgd"]
    if len(r) < 2:
        return {**row, "this_run": "fewer than 2 RGD methods", "held": "not measured"}
    acc_spread = float(r["rm_acc"].max() - r["rm_acc"].min())
    rouge_spread = float(r["rouge1"].max() - r["rouge1"].min())
    text = (
        f"RM acc {_f(r['rm_acc'].min(), 2)}-{_f(r['rm_acc'].max(), 2)} (spread {_f(acc_spread, 2)}); "
        f"ROUGE-1 {_f(r['rouge1'].min())}-{_f(r['rouge1'].max())} (spread {_f(rouge_spread)})"
    )
    if acc_spread < MIN_RM_SPREAD:
        return {**row, "this_run": text + "; RM accuracies too close to test", "held": "not testable"}
    held = "yes" if rouge_spread < acc_spread / 4 else "no"
    return {**row, "this_run": text, "held": held}


def claim3(tests: pd.DataFrame | None) -> dict:
    row = {
        "claim": "3. ICL beats every RGD method at scale",
        "paper": "+3-5 ROUGE-1 at 7B; ICL wins from 3B up",
        "rule": f"best ICL - best RGD > 0 with 95% CI above 0, for models >= {SCALE_B:g}B",
    }
    if tests is None or tests.empty:
        return {**row, "this_run": "study 3 not run", "held": "not measured"}
    t = tests[tests["comparison"] == "best ICL vs best RGD"]
    parts = [
        f"{r.model} ({r.size_b:.3g}B): diff={_f(r.diff)} [{_f(r.ci_low)}, {_f(r.ci_high)}], "
        f"Wilcoxon p={_f(r.wilcoxon_p)}"
        for r in t.itertuples()
    ]
    big = t[t["size_b"] >= SCALE_B]
    if big.empty:
        return {**row, "this_run": "; ".join(parts) + f" (no model >= {SCALE_B:g}B)", "held": "not testable"}
    ok = [r.ci_low > 0 for r in big.itertuples()]
    return {
        **row,
        "this_run": "; ".join(parts),
        "held": "yes" if all(ok) else ("partly" if any(ok) else "no"),
    }


def findings(
    *,
    tau: pd.DataFrame | None = None,
    decoupling: pd.DataFrame | None = None,
    scale_tests: pd.DataFrame | None = None,
    w: float = 1.0,
    tables_dir=None,
) -> pd.DataFrame:
    """One row per claim. Frames not given are read from ``tables_dir`` (an earlier notebook's
    CSVs of the same run: ``study1_tau.csv``, ``study2_summary.csv``, ``study3_tests.csv``) when present."""
    from pathlib import Path

    def read(name):
        p = Path(tables_dir) / f"{name}.csv" if tables_dir else None
        return pd.read_csv(p) if p is not None and p.exists() else None

    tau = tau if tau is not None else read("study1_tau")
    decoupling = decoupling if decoupling is not None else read("study2_summary")
    scale_tests = scale_tests if scale_tests is not None else read("study3_tests")
    return pd.DataFrame([claim1(tau, w), claim2(decoupling), claim3(scale_tests)], columns=COLUMNS)
