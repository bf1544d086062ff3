"""The "findings" table: a verdict on each of the paper's three claims, decided from intervals.

Every verdict is ``supported``, ``not supported`` or ``inconclusive`` (``not measured`` when the
study did not run, ``not testable`` when the run cannot speak to the claim); the rule that gave
it is printed beside it in the table. Point estimates never decide.

1. *Weak link between RM accuracy and policy accuracy*, per dataset, on Kendall's tau-b (score
   variant, ``w = cfg.rgd_w``, no length normalisation) and its 95% interval (test-set x RM
   cluster bootstrap, :func:`analysis.metrics.tau.honest_tau`): supported when the upper bound
   is below ``WEAK_TAU`` = 0.4, not supported when the lower bound is above it, else
   inconclusive. Over datasets: supported / not supported when every dataset agrees, else
   inconclusive.
2. *Decoupling on Pref-LaMP*: the RGD (ARGS) systems with the highest and lowest RM accuracy
   are compared on ROUGE-1 with a paired equivalence test (TOST, margin +/- ``MARGIN`` = 0.02):
   the two one-sided 5% tests both reject exactly when the 90% two-level bootstrap interval of
   the paired difference (users, then items; :func:`analysis.metrics.intervals.paired_comparison`) lies
   inside (-0.02, 0.02): supported. Not supported when that interval lies entirely outside the
   margin; else inconclusive. Before that: if under ``MIN_CHANGED`` = 20% of the RGD generations
   differ from base greedy, RGD changed almost nothing and the verdict is inconclusive (with that
   reason); if the two RM-accuracy intervals overlap there is no RM-accuracy gap to decouple
   from: inconclusive.
3. *ICL beats every RGD method at scale*, for models >= 3B: supported when every such model's
   best-ICL minus best-RGD ROUGE-1 95% interval is above 0, not supported when one is below 0,
   else inconclusive; with no model >= 3B it is not testable (numbers still shown).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

WEAK_TAU = 0.4
MARGIN = 0.02
MIN_CHANGED = 0.20
SCALE_B = 3.0
COLUMNS = ["claim", "paper", "rule", "this_run", "verdict"]
VERDICTS = ("supported", "not supported", "inconclusive", "not testable", "not measured")


def _f(x, d: int = 3) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def _overall(verdicts: list[str]) -> str:
    if verdicts and all(v == "supported" for v in verdicts):
        return "supported"
    if verdicts and all(v == "not supported" for v in verdicts):
        return "not supported"
    return "inconclusive"


def claim1(tau: pd.DataFrame | None, w: float) -> dict:
    row = {
        "claim": "1. RM accuracy weakly predicts policy accuracy",
        "paper": "Kendall tau 0.08-0.31 on 3 datasets",
        "rule": (
            f"per dataset, tau (score variant, w={w:g}) 95% CI: supported if upper < {WEAK_TAU}, "
            f"not supported if lower > {WEAK_TAU}, else inconclusive; overall: all datasets agree"
        ),
    }
    if tau is None or tau.empty:
        return {**row, "this_run": "study 1 not run", "verdict": "not measured"}
    t = tau[(tau["variant"] == "score") & (~tau["length_norm"].astype(bool)) & ((tau["w"] - w).abs() < 1e-9)]
    if t.empty:
        return {**row, "this_run": f"no score-variant tau at w={w:g}", "verdict": "not measured"}
    parts, verdicts = [], []
    for r in t.itertuples():
        if math.isnan(r.tau) or math.isnan(r.tau_hi):  # all ties: untestable on this dataset
            v = "inconclusive"
        elif r.tau_hi < WEAK_TAU:
            v = "supported"
        elif r.tau_lo > WEAK_TAU:
            v = "not supported"
        else:
            v = "inconclusive"
        verdicts.append(v)
        extra = f", corrected={_f(r.tau_corrected, 2)}" if "tau_corrected" in t.columns else ""
        parts.append(
            f"{r.dataset}: tau={_f(r.tau, 2)} [{_f(r.tau_lo, 2)}, {_f(r.tau_hi, 2)}]{extra}, p={_f(r.p_value)}, "
            f"n={int(r.n_rms)} -> {v}"
        )
    return {**row, "this_run": "; ".join(parts), "verdict": _overall(verdicts)}


def changed_share(generations: pd.DataFrame, systems) -> float:
    """Share of the given RGD systems' generations whose text differs from base greedy's
    (same model, user and test item); NaN when no base generation matches."""
    g = generations
    base = g[g["kind"] == "base"][["model", "user_id", "test_id", "text"]].rename(
        columns={"text": "base_text"}
    )
    r = g[g["system"].isin(list(systems))].merge(base, on=["model", "user_id", "test_id"], how="inner")
    if r.empty:
        return float("nan")
    return float((r["text"].fillna("").astype(str) != r["base_text"].fillna("").astype(str)).mean())


def claim2(summary: pd.DataFrame | None, generations: pd.DataFrame | None = None, n_boot: int = 2000) -> dict:
    from analysis.metrics.intervals import paired_comparison, per_user_items

    row = {
        "claim": "2. Large RM-accuracy gaps give nearly the same ROUGE (Pref-LaMP)",
        "paper": "methods ~20 points apart in RM accuracy, nearly equal ROUGE",
        "rule": (
            f"RGD systems with highest vs lowest RM accuracy: TOST on paired ROUGE-1 (margin +/-{MARGIN}; "
            f"90% two-level bootstrap CI of the difference over users then items inside the margin: "
            f"supported; entirely outside: not supported; else inconclusive); inconclusive if < "
            f"{MIN_CHANGED:.0%} of RGD generations differ from base greedy or the RM-accuracy CIs overlap"
        ),
    }
    if summary is None or summary.empty:
        return {**row, "this_run": "study 2 not run", "verdict": "not measured"}
    # one setting: the main one (real authors), written first; the second settings (e.g. the synthetic
    # world) share the tables and must not be pooled with it
    col = "setting" if "setting" in summary.columns else "dataset" if "dataset" in summary.columns else None
    setting = str(summary[col].iloc[0]) if col else None
    if setting is not None:
        summary = summary[summary[col].astype(str) == setting]
        if generations is not None and "dataset" in generations.columns:
            generations = generations[generations["dataset"].astype(str) == setting]
    r = summary[summary["kind"] == "rgd"].dropna(subset=["rm_acc"])
    if len(r) < 2:
        return {**row, "this_run": "fewer than 2 RGD methods", "verdict": "not measured"}
    hi, lo = r.loc[r["rm_acc"].idxmax()], r.loc[r["rm_acc"].idxmin()]
    text = (
        (f"{setting}: " if setting else "")
        + f"{hi.get('system', 'high')}: RM acc {_f(hi['rm_acc'], 2)} [{_f(hi.get('rm_acc_lo'), 2)}, "
        f"{_f(hi.get('rm_acc_hi'), 2)}], ROUGE-1 {_f(hi['rouge1'])}; {lo.get('system', 'low')}: RM acc "
        f"{_f(lo['rm_acc'], 2)} [{_f(lo.get('rm_acc_lo'), 2)}, {_f(lo.get('rm_acc_hi'), 2)}], "
        f"ROUGE-1 {_f(lo['rouge1'])}"
    )
    if generations is None or generations.empty or "system" not in r.columns:
        return {
            **row,
            "this_run": text + "; no per-generation table: no paired test",
            "verdict": "not measured",
        }
    rgd_systems = list(r["system"])
    share = changed_share(generations, rgd_systems)
    text += f"; {_f(share * 100, 0)}% of RGD generations differ from base greedy"
    if not share >= MIN_CHANGED:
        return {**row, "this_run": text + " (RGD changed almost nothing)", "verdict": "inconclusive"}
    if "rm_acc_lo" in r.columns and not (hi["rm_acc_lo"] > lo["rm_acc_hi"]):
        return {**row, "this_run": text + "; RM-accuracy intervals overlap", "verdict": "inconclusive"}

    def items(system):
        g = generations[generations["system"] == system]
        return per_user_items(list(g["user_id"]), list(g["test_id"]), g["rouge1"].to_numpy(float))

    c = paired_comparison(items(hi["system"]), items(lo["system"]), n_boot=n_boot, alpha=0.10)
    text += f"; ROUGE-1 diff {_f(c['diff'])}, 90% CI [{_f(c['ci_low'])}, {_f(c['ci_high'])}], {c['n_users']} users"
    if np.isnan(c["ci_low"]):
        verdict = "inconclusive"
    elif -MARGIN < c["ci_low"] and c["ci_high"] < MARGIN:
        verdict = "supported"
    elif c["ci_low"] > MARGIN or c["ci_high"] < -MARGIN:
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    return {**row, "this_run": text, "verdict": verdict}


def claim3(tests: pd.DataFrame | None) -> dict:
    row = {
        "claim": "3. ICL beats every RGD method at scale",
        "paper": "+3-5 ROUGE-1 at 7B; ICL wins from 3B up",
        "rule": (
            f"best ICL - best RGD ROUGE-1, paired 95% CI over users then items, for every model >= "
            f"{SCALE_B:g}B: all above 0: supported; one below 0: not supported; else inconclusive"
        ),
    }
    if tests is None or tests.empty:
        return {**row, "this_run": "study 3 not run", "verdict": "not measured"}
    t = tests[tests["comparison"] == "best ICL vs best RGD"]
    parts = [
        f"{r.model} ({r.size_b:.3g}B): diff={_f(r.diff)} [{_f(r.ci_low)}, {_f(r.ci_high)}], "
        f"Wilcoxon p={_f(r.wilcoxon_p)}"
        for r in t.itertuples()
    ]
    big = t[t["size_b"] >= SCALE_B]
    if big.empty:
        return {
            **row,
            "this_run": "; ".join(parts) + f" (no model >= {SCALE_B:g}B)",
            "verdict": "not testable",
        }
    if all(r.ci_low > 0 for r in big.itertuples()):
        verdict = "supported"
    elif any(r.ci_high < 0 for r in big.itertuples()):
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    return {**row, "this_run": "; ".join(parts), "verdict": verdict}


def findings(
    *,
    tau: pd.DataFrame | None = None,
    decoupling: pd.DataFrame | None = None,
    generations: pd.DataFrame | None = None,
    scale_tests: pd.DataFrame | None = None,
    w: float = 1.0,
    tables_dir=None,
) -> pd.DataFrame:
    """One row per claim. Frames not given are read from ``tables_dir`` (an earlier notebook's
    CSVs of the same run: ``study1_tau.csv``, ``study2_summary.csv``, ``study2_generations.csv``,
    ``study3_tests.csv``) when present. ``generations`` (study 2's per-generation table) feeds the
    paired equivalence test and the share of RGD text that differs from base greedy (claim 2)."""
    from pathlib import Path

    def read(name):
        p = Path(tables_dir) / f"{name}.csv" if tables_dir else None
        return pd.read_csv(p) if p is not None and p.exists() else None

    tau = tau if tau is not None else read("study1_tau")
    decoupling = decoupling if decoupling is not None else read("study2_summary")
    generations = generations if generations is not None else read("study2_generations")
    scale_tests = scale_tests if scale_tests is not None else read("study3_tests")
    if generations is not None and "w" in generations.columns:  # the RGD rows at the reported weight
        rgd = generations["kind"] == "rgd"
        generations = generations[~rgd | np.isclose(generations["w"].astype(float), w)]
    rows = [claim1(tau, w), claim2(decoupling, generations), claim3(scale_tests)]
    return pd.DataFrame(rows, columns=COLUMNS)
