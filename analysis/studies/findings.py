"""The "findings" table: a verdict on each of the paper's three claims (and one question beyond the
paper), decided from intervals.

Every verdict is ``supported``, ``not supported`` or ``inconclusive`` (``not measured`` when the
study did not run, ``not testable`` when the run cannot speak to the claim, with the measured
quantity that fell short); the rule that gave it is printed beside it in the table. Point
estimates never decide, and only real datasets do (:func:`analysis.studies.datasets.is_real`):
a synthetic world enters as a labelled known-answer check (what it must show, and
``check passed`` / ``check failed``), never into a claim's verdict.

1. *Weak link between RM accuracy and policy accuracy*, per real dataset and policy-accuracy
   variant (``score``: the paper's v1; ``policy``: v2's policy accuracy on the RGD-adapted LLM),
   on Kendall's tau-b at ``w = cfg.rgd_w`` without length normalisation and its 95% interval over
   the trained population (test set x seeds in cells, :func:`analysis.metrics.tau.honest_tau`).
   Testable only when at least ``MIN_MID_SHARE`` = half of the RMs have policy accuracy inside
   (0.05, 0.95) (off the floor and ceiling) and both split-half reliabilities are at least
   ``MIN_RELIABILITY`` = 0.7. Two-sided: supported when the interval lies inside
   (-``WEAK_TAU``, ``WEAK_TAU``) = (-0.4, 0.4); not supported when it lies entirely above 0.4
   (or entirely below -0.4: an inverse link); else inconclusive. Overall: supported / not
   supported when every testable real (dataset, variant) agrees; not testable when none is
   testable; else inconclusive.
2. *Decoupling on Pref-LaMP* (the real setting): the RGD (ARGS) systems with the highest and
   lowest RM accuracy must be ``MIN_RM_GAP`` = 0.10 apart in RM accuracy by the lower bound of a
   paired 95% bootstrap of the gap on the same test pairs (users, then pairs), each must change
   at least ``MIN_CHANGED`` = 20% of base greedy's outputs, and the two must differ from each
   other on at least 20% of the targets; otherwise not testable. Then a paired equivalence test
   on ROUGE-1 (TOST, margin +/- ``MARGIN`` = 0.02): the two one-sided 5% tests both reject exactly
   when the 90% two-level bootstrap interval of the paired difference (users, then items;
   :func:`analysis.metrics.intervals.paired_comparison`) lies inside (-0.02, 0.02): supported; entirely
   outside the margin: not supported; else inconclusive.
3. *ICL beats every RGD method at scale*, for models >= 3B: supported when every such model's
   best-ICL minus best-RGD ROUGE-1 95% interval is above 0, not supported when one is below 0,
   else inconclusive; with no model >= 3B it is not testable (numbers still shown).
4. *Beyond the paper: which proxy selects the RM* (study 5, :mod:`analysis.studies.rm_selection`):
   "policy accuracy selects better than RM accuracy" on the real dataset's RM population, from the
   paired difference ROUGE-1(policy accuracy's pick) - ROUGE-1(RM accuracy's pick) of best-of-n
   over the shared samples, 95% interval of the joint bootstrap (users, then their preference pairs
   and generation targets): above 0: supported; below 0: not supported; else inconclusive. A
   synthetic population is not testable (numbers still shown).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

WEAK_TAU = 0.4
MIN_RELIABILITY = 0.7
MIN_MID_SHARE = 0.5
PA_FLOOR = 0.05  # policy accuracy within this of 0 or 1 is on the floor / ceiling
TAU_LEVEL = 0.95  # claim 1's interval (the tau table's tau_lo, tau_hi)
MARGIN = 0.02
MIN_CHANGED = 0.20
MIN_RM_GAP = 0.10
RM_GAP_ALPHA = 0.05  # the paired RM-accuracy gap's two-sided 95% interval
TOST_ALPHA = 0.10  # two one-sided 5% tests = the 90% interval inside the margin
SCALE_B = 3.0
COLUMNS = ["claim", "paper", "rule", "this_run", "verdict"]
CLAIM_VERDICTS = ("supported", "not supported", "inconclusive", "not testable", "not measured")
CHECKS = ("check passed", "check failed")  # a synthetic dataset's known-answer check
VERDICTS = CLAIM_VERDICTS + CHECKS
VARIANTS = {"score": "score variant, paper v1", "policy": "policy variant, paper v2"}


def _f(x, d: int = 3) -> str:
    if x is None:
        return "nan"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "nan"
    return "nan" if math.isnan(x) else f"{x:.{d}f}"


def _num(r, col: str) -> float:
    """Column ``col`` of row ``r`` (a namedtuple or Series) as a float; NaN when absent."""
    v = getattr(r, col, None) if not isinstance(r, pd.Series) else r.get(col)
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _overall(verdicts: list[str]) -> str:
    """Supported / not supported when every testable verdict agrees; not testable when none is
    testable; else inconclusive."""
    testable = [v for v in verdicts if v != "not testable"]
    if not testable:
        return "not testable"
    if all(v == "supported" for v in testable):
        return "supported"
    if all(v == "not supported" for v in testable):
        return "not supported"
    return "inconclusive"


def _is_real(name) -> bool:
    from analysis.studies.datasets import is_real

    return is_real(name)


def claim1_testability(r) -> list[str]:
    """Why a tau-table row cannot test claim 1 (empty: it can): policy accuracy on a floor or
    ceiling (``pa_mid_share`` < ``MIN_MID_SHARE``), or a split-half reliability below
    ``MIN_RELIABILITY``; each reason names the measured quantity."""
    reasons = []
    share = _num(r, "pa_mid_share")
    if math.isnan(share):
        reasons.append("share of RMs with policy accuracy in (0.05, 0.95) not measured")
    elif not share >= MIN_MID_SHARE:
        reasons.append(
            f"only {share:.1%} of RMs have policy accuracy in ({PA_FLOOR:g}, {1 - PA_FLOOR:g}) "
            f"(< {MIN_MID_SHARE:.0%})"
        )
    for col, what in (("rel_rm", "RM accuracy"), ("rel_policy", "policy accuracy")):
        rel = _num(r, col)
        if math.isnan(rel):
            reasons.append(f"split-half reliability of {what} ({col}) not measured")
        elif not rel >= MIN_RELIABILITY:
            reasons.append(f"split-half reliability of {what} {col}={rel:.3f} < {MIN_RELIABILITY:g}")
    return reasons


def claim1_verdict(r) -> tuple[str, str]:
    """``(verdict, reason)`` of one real dataset's tau row (see the module docstring)."""
    reasons = claim1_testability(r)
    if reasons:
        return "not testable", ", ".join(reasons)
    tau, lo, hi = _num(r, "tau"), _num(r, "tau_lo"), _num(r, "tau_hi")
    if math.isnan(tau) or math.isnan(lo) or math.isnan(hi):
        return "inconclusive", "tau or its interval undefined (ties)"
    if -WEAK_TAU < lo and hi < WEAK_TAU:
        return "supported", ""
    if lo > WEAK_TAU:
        return "not supported", ""
    if hi < -WEAK_TAU:
        return "not supported", "inverse link"
    return "inconclusive", f"interval reaches past +/-{WEAK_TAU:g}"


def _tau_numbers(r) -> str:
    text = f"tau={_f(r.tau, 2)} [{_f(r.tau_lo, 2)}, {_f(r.tau_hi, 2)}]"
    if not math.isnan(_num(r, "cluster_lo")):
        k = _num(r, "n_clusters")
        text += f", generalise over methods [{_f(r.cluster_lo, 2)}, {_f(r.cluster_hi, 2)}]" + (
            f" ({int(k)} methods)" if not math.isnan(k) else ""
        )
    if not math.isnan(_num(r, "naive_lo")):
        text += f", RMs only [{_f(r.naive_lo, 2)}, {_f(r.naive_hi, 2)}]"
    if not math.isnan(_num(r, "tau_corrected")):
        text += f", corrected={_f(r.tau_corrected, 2)}"
    text += f", rel_rm={_f(_num(r, 'rel_rm'), 2)}, rel_policy={_f(_num(r, 'rel_policy'), 2)}"
    share = _num(r, "pa_mid_share")
    text += f", policy acc in (0.05, 0.95): {'nan' if math.isnan(share) else f'{share:.0%}'} of RMs"
    text += f", p={_f(_num(r, 'p_value'))}, n={int(_num(r, 'n_rms'))} RMs"
    return text


def known_answer_check(ds: str, tau: pd.DataFrame, rms: pd.DataFrame | None) -> tuple[str, str]:
    """``(text, check passed | check failed)`` of a synthetic study-1 dataset: what it must show.

    - at w = 0 the score variant is the base model's ranking accuracy, the same for every RM, so
      tau there is undefined (NaN) (design section 2's required test), when w = 0 was run;
    - with the RM table, the planted preference is learnable: the best RM's 95% lower bound of
      RM accuracy is above chance (0.5).
    """
    musts, ok = [], True
    t0 = tau[(tau["dataset"] == ds) & (tau["variant"] == "score") & (tau["w"].astype(float).abs() < 1e-9)]
    if len(t0):
        const = bool(t0["tau"].isna().all())
        ok &= const
        musts.append(f"tau at w=0 (score variant) undefined: {'yes' if const else 'no'}")
    if rms is not None and "rm_acc_lo" in rms.columns and "dataset" in rms.columns:
        g = rms[rms["dataset"] == ds]
        if "sensitivity" in g.columns:
            g = g[~g["sensitivity"].fillna(False).astype(bool)]
        if len(g):
            best = float(g["rm_acc_lo"].max())
            ok &= best > 0.5
            musts.append(
                f"best RM's RM-accuracy lower bound {best:.2f} > 0.5: {'yes' if best > 0.5 else 'no'}"
            )
    if not musts:
        return "no known-answer quantity in this run's tables", "check failed"
    return "must show " + ", ".join(musts), "check passed" if ok else "check failed"


def _beside_headline(r, tau: pd.DataFrame, points: pd.DataFrame | None, w: float) -> str:
    """Numbers shown in a claim-1 part, not part of its verdict (", "-separated, before the part's
    ``-> verdict``, so the report still splits the row by dataset): tau of the length-normalised
    score (same dataset, variant and w) and, with study 1's ``points``, the median over RMs of the
    policy-accuracy gain over w = 0 (``policy_acc_gain``)."""
    text = ""
    ln = tau[
        (tau["dataset"].astype(str) == str(r.dataset))
        & (tau["variant"].astype(str) == str(r.variant))
        & tau["length_norm"].astype(bool)
        & ((tau["w"].astype(float) - w).abs() < 1e-9)
    ]
    if len(ln):
        q = ln.iloc[0]
        text += f", length-normalised: tau={_f(q['tau'], 2)} [{_f(q['tau_lo'], 2)}, {_f(q['tau_hi'], 2)}]"
    if points is not None and "policy_acc_gain" in points.columns:
        g = points[
            (points["dataset"].astype(str) == str(r.dataset))
            & (points["variant"].astype(str) == str(r.variant))
            & ~points["length_norm"].astype(bool)
            & ((points["w"].astype(float) - w).abs() < 1e-9)
        ]
        if "sensitivity" in g.columns:
            g = g[~g["sensitivity"].fillna(False).astype(bool)]
        gain = g["policy_acc_gain"].astype(float).dropna()
        if len(gain):
            up = float((g["policy_acc_gain_lo"].astype(float) > 0).mean())
            text += (
                f", policy acc - policy acc at w=0: median {float(gain.median()):+.3f} over {len(gain)} RMs "
                f"({up:.0%} with 95% CI above 0)"
            )
    return text


def claim1(
    tau: pd.DataFrame | None, w: float, rms: pd.DataFrame | None = None, points: pd.DataFrame | None = None
) -> dict:
    """Claim 1's row (module docstring): one ``<dataset> (<variant>): <numbers> -> <verdict>`` part
    per real dataset and variant at ``w`` (no length normalisation), one known-answer part per
    synthetic dataset. Beside each real part, outside the verdict: tau of the length-normalised
    score and, with study 1's ``points``, the median policy-accuracy gain over w = 0."""
    row = {
        "claim": "1. RM accuracy weakly predicts policy accuracy",
        "paper": (
            "v1: Kendall tau 0.08-0.31 on 3 datasets (policy accuracy of the base LLM: score variant); "
            "v2 defines policy accuracy on the RGD-adapted LLM (policy variant)"
        ),
        "rule": (
            f"per real dataset and variant, tau (w={w:g}) {TAU_LEVEL:.0%} CI over the trained population "
            f"(test set x seeds in cells): inside (-{WEAK_TAU:g}, {WEAK_TAU:g}): supported; entirely above "
            f"{WEAK_TAU:g} (or below -{WEAK_TAU:g}: inverse link): not supported; else inconclusive. Not "
            f"testable when < {MIN_MID_SHARE:.0%} of RMs have policy accuracy in ({PA_FLOOR:g}, "
            f"{1 - PA_FLOOR:g}) or a split-half reliability < {MIN_RELIABILITY:g}. Overall: every testable "
            "real dataset and variant agrees. Synthetic datasets are known-answer checks, never in the "
            "verdict. 'generalise over methods' resamples whole methods (would the link hold for other "
            "methods?); 'RMs only' treats accuracies as exact (too narrow)"
        ),
    }
    if tau is None or tau.empty:
        return {**row, "this_run": "study 1 not run", "verdict": "not measured"}
    sel = (
        tau["variant"].isin(list(VARIANTS))
        & ~tau["length_norm"].astype(bool)
        & ((tau["w"].astype(float) - w).abs() < 1e-9)
    )
    t = tau[sel]
    if t.empty:
        return {
            **row,
            "this_run": f"no tau at w={w:g} without length normalisation",
            "verdict": "not measured",
        }
    parts, verdicts = [], []
    for r in t.itertuples():
        if _is_real(r.dataset):
            v, why = claim1_verdict(r)
            verdicts.append(v)
            parts.append(
                f"{r.dataset} ({VARIANTS[r.variant]}): {_tau_numbers(r)}{_beside_headline(r, tau, points, w)}"
                f"{f', {why}' if why else ''} -> {v}"
            )
    for ds in dict.fromkeys(tau["dataset"].astype(str)):
        if not _is_real(ds):
            text, v = known_answer_check(ds, tau, rms)
            kind = "synthetic, known-answer check" if ds.startswith("synthetic") else "not a real dataset"
            parts.append(f"{ds} ({kind}): {text} -> {v}")
    verdict = _overall(verdicts)
    if not verdicts:
        parts.append("no real dataset in study 1: no verdict")
    return {**row, "this_run": "; ".join(parts), "verdict": verdict}


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


def differ_share(generations: pd.DataFrame, a: str, b: str) -> float:
    """Share of the targets (model, user, test item) both systems generated for on which the two
    texts differ; NaN when they share none."""
    keys = ["model", "user_id", "test_id"]
    ga = generations[generations["system"] == a][[*keys, "text"]]
    gb = generations[generations["system"] == b][[*keys, "text"]]
    m = ga.merge(gb, on=keys, suffixes=("_a", "_b"))
    if m.empty:
        return float("nan")
    return float((m["text_a"].fillna("").astype(str) != m["text_b"].fillna("").astype(str)).mean())


def rm_gap(rm_pairs: pd.DataFrame, method_hi: str, method_lo: str, n_boot: int = 2000) -> dict:
    """Paired RM-accuracy gap (``method_hi`` - ``method_lo``) on the test pairs both RMs scored:
    :func:`analysis.metrics.intervals.paired_comparison` of their per-pair correctness, two-level (users,
    then pairs) 95% interval. ``rm_pairs``: one row per (method, user_id, pair_id) with
    ``correct`` (1, 0, 0.5 for a tie)."""
    from analysis.metrics.intervals import paired_comparison, per_user_items

    def items(m):
        g = rm_pairs[rm_pairs["method"].astype(str) == str(m)]
        return per_user_items(
            list(g["user_id"].astype(str)), list(g["pair_id"].astype(str)), g["correct"].to_numpy(float)
        )

    return paired_comparison(items(method_hi), items(method_lo), n_boot=n_boot, alpha=RM_GAP_ALPHA)


def _in_setting(frame: pd.DataFrame | None, setting: str) -> pd.DataFrame | None:
    """The rows of ``frame`` in ``setting`` (all of them when it has no setting column)."""
    c = _setting_of(frame)
    return frame[frame[c].astype(str) == setting] if frame is not None and c else frame


def _setting_of(frame: pd.DataFrame | None) -> str | None:
    if frame is None:
        return None
    return "setting" if "setting" in frame.columns else "dataset" if "dataset" in frame.columns else None


def claim2(
    summary: pd.DataFrame | None,
    generations: pd.DataFrame | None = None,
    rm_pairs: pd.DataFrame | None = None,
    n_boot: int = 2000,
) -> dict:
    """Claim 2's row (module docstring) from study 2's ``summary`` (one row per system with kind,
    method, rm_acc and the setting), its per-generation table and its RMs' per-pair correctness
    (``rm_pairs``: setting/dataset, method, user_id, pair_id, correct)."""
    from analysis.metrics.intervals import paired_comparison, per_user_items

    row = {
        "claim": "2. Large RM-accuracy gaps give nearly the same ROUGE (Pref-LaMP)",
        "paper": "methods ~20 points apart in RM accuracy, nearly equal ROUGE",
        "rule": (
            f"real setting; RGD systems with highest vs lowest RM accuracy; testable when their paired "
            f"RM-accuracy gap on the same test pairs has a {1 - RM_GAP_ALPHA:.0%} lower bound >= "
            f"{MIN_RM_GAP:g}, "
            f"each changes >= {MIN_CHANGED:.0%} of base greedy outputs and the two differ on >= "
            f"{MIN_CHANGED:.0%} of targets. TOST on paired ROUGE-1 (margin +/-{MARGIN}): "
            f"{1 - TOST_ALPHA:.0%} two-level bootstrap CI of the difference over users then items inside "
            "the margin: supported; entirely outside: not supported; else inconclusive"
        ),
    }
    if summary is None or summary.empty:
        return {**row, "this_run": "study 2 not run", "verdict": "not measured"}
    col = _setting_of(summary)
    settings = list(dict.fromkeys(summary[col].astype(str))) if col else []
    real = [s for s in settings if _is_real(s)]
    if not real:
        seen = ", ".join(settings) if settings else "unnamed"
        return {**row, "this_run": f"no real setting (settings: {seen})", "verdict": "not testable"}
    setting = real[0]
    summary = summary[summary[col].astype(str) == setting]
    generations, rm_pairs = (_in_setting(f, setting) for f in (generations, rm_pairs))
    r = summary[summary["kind"] == "rgd"].dropna(subset=["rm_acc"])
    if len(r) < 2:
        return {**row, "this_run": f"{setting}: fewer than 2 RGD methods", "verdict": "not testable"}
    hi, lo = r.loc[r["rm_acc"].idxmax()], r.loc[r["rm_acc"].idxmin()]
    text = (
        f"{setting}: {hi.get('system', 'high')}: RM acc {_f(hi['rm_acc'], 2)}, ROUGE-1 {_f(hi['rouge1'])}; "
        f"{lo.get('system', 'low')}: RM acc {_f(lo['rm_acc'], 2)}, ROUGE-1 {_f(lo['rouge1'])}"
    )
    if generations is None or generations.empty or "system" not in r.columns:
        return {
            **row,
            "this_run": text + "; no per-generation table: no paired test",
            "verdict": "not measured",
        }
    if rm_pairs is None or rm_pairs.empty or "method" not in r.columns:
        return {
            **row,
            "this_run": text + "; no per-pair RM correctness: no paired RM-accuracy gap",
            "verdict": "not measured",
        }
    g = rm_gap(rm_pairs, hi["method"], lo["method"], n_boot=n_boot)
    text += (
        f"; paired RM-accuracy gap {_f(g['diff'], 3)}, {1 - RM_GAP_ALPHA:.0%} CI [{_f(g['ci_low'], 3)}, "
        f"{_f(g['ci_high'], 3)}]"
    )

    def items(system):
        gg = generations[generations["system"] == system]
        return per_user_items(list(gg["user_id"]), list(gg["test_id"]), gg["rouge1"].to_numpy(float))

    items_hi = items(hi["system"])
    c = paired_comparison(items_hi, items(lo["system"]), n_boot=n_boot, alpha=TOST_ALPHA)
    rouge = (
        f"ROUGE-1 diff {_f(c['diff'])}, {1 - TOST_ALPHA:.0%} CI [{_f(c['ci_low'])}, {_f(c['ci_high'])}], "
        f"{c['n_users']} users, {sum(map(len, items_hi.values()))} targets"
    )
    if not g["ci_low"] >= MIN_RM_GAP:
        return {
            **row,
            "this_run": text + f" (lower bound < {MIN_RM_GAP:g}: no RM-accuracy gap to decouple from), "
            f"for information, not a verdict: {rouge}",
            "verdict": "not testable",
        }
    ch_hi = changed_share(generations, [hi["system"]])
    ch_lo = changed_share(generations, [lo["system"]])
    between = differ_share(generations, hi["system"], lo["system"])
    text += (
        f"; changed from base greedy: {_f(ch_hi * 100, 0)}% / {_f(ch_lo * 100, 0)}%, "
        f"differ from each other on {_f(between * 100, 0)}% of targets"
    )
    short = [
        what
        for what, share in (
            (f"{hi['system']} changed", ch_hi),
            (f"{lo['system']} changed", ch_lo),
            ("the two differ", between),
        )
        if not share >= MIN_CHANGED
    ]
    if short:
        return {
            **row,
            "this_run": text + f" ({', '.join(short)} on < {MIN_CHANGED:.0%}: RGD changed almost nothing)",
            "verdict": "not testable",
        }

    text += f"; {rouge}"
    return {**row, "this_run": text, "verdict": tost_verdict(c["ci_low"], c["ci_high"])}


def tost_verdict(ci_low: float, ci_high: float) -> str:
    """Claim 2's equivalence verdict from the 90% interval of the paired ROUGE-1 difference."""
    if np.isnan(ci_low) or np.isnan(ci_high):
        return "inconclusive"
    if -MARGIN < ci_low and ci_high < MARGIN:
        return "supported"
    if ci_low > MARGIN or ci_high < -MARGIN:
        return "not supported"
    return "inconclusive"


def claim3(tests: pd.DataFrame | None) -> dict:
    row = {
        "claim": "3. ICL beats every RGD method at scale",
        "paper": "v1: +3-5 ROUGE-1 at 7B, ICL wins from 3B up; v2: about 3 ROUGE-1 points at 7B",
        "rule": (
            f"best ICL - best RGD ROUGE-1 (both chosen on half of the users, compared on the other "
            f"half), paired 95% CI over users then items, for every model >= "
            f"{SCALE_B:g}B: all above 0: supported; one below 0: not supported; else inconclusive"
        ),
    }
    if tests is None or tests.empty:
        return {**row, "this_run": "study 3 not run", "verdict": "not measured"}
    t = tests[tests["comparison"] == "best ICL vs best RGD"]
    parts = [
        f"{r.model} ({r.size_b:.3g}B): diff={_f(r.diff)} [{_f(r.ci_low)}, {_f(r.ci_high)}], "
        f"Wilcoxon p={_f(r.wilcoxon_p)}"
        + (
            f" (chosen on {int(r.selected_on_users)} users, compared on {int(r.n_users)})"
            if "selected_on_users" in t.columns and r.selected_on_users == r.selected_on_users
            else ""
        )
        for r in t.itertuples()
    ]
    if "dataset" in t.columns and not all(_is_real(d) for d in t["dataset"].astype(str)):
        return {
            **row,
            "this_run": "; ".join(parts) + " (not a real dataset: a synthetic world decides no claim)",
            "verdict": "not testable",
        }
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


def claim4(selection: pd.DataFrame | None, comparisons: pd.DataFrame | None) -> dict:
    """Finding 4's row (module docstring) from study 5's ``selection`` (one row per system and
    proxy) and ``comparisons`` (one row per system and pair of proxies: diff, ci_low, ci_high)."""
    row = {
        "claim": "4. Beyond the paper: which proxy selects the RM",
        "paper": (
            "not measured in the paper (it argues RM accuracy fails as a selection criterion); "
            "here: policy accuracy selects better than RM accuracy"
        ),
        "rule": (
            "best-of-n over shared samples, every RM of the real population; ROUGE-1 of the RM picked "
            "by policy accuracy (score, w = rgd_w) minus that of the RM picked by RM accuracy, both on "
            "the held-out preference pairs; 95% CI of a joint bootstrap (users, then their pairs and "
            "generation targets): above 0: supported; below 0: not supported; else inconclusive"
        ),
    }
    if comparisons is None or comparisons.empty or selection is None or selection.empty:
        return {**row, "this_run": "study 5 not run", "verdict": "not measured"}
    sys_col = comparisons["system"].astype(str) if "system" in comparisons.columns else "bon"
    c = comparisons[(comparisons["comparison"] == "policy_acc vs rm_acc") & (sys_col == "bon")]
    if c.empty:
        return {**row, "this_run": "no policy-accuracy vs RM-accuracy comparison", "verdict": "not measured"}
    c = c.iloc[0]
    sel = selection[selection["system"].astype(str) == "bon"] if "system" in selection.columns else selection
    by = sel.set_index("proxy")
    ds = str(c.get("dataset", "")) or "study 5"

    def pick(p: str) -> str:
        if p not in by.index:
            return f"{p}: not measured"
        r = by.loc[p]
        n = int(_num(r, "n_selected"))
        picked = r["selected"] if n <= 2 else f"{n} tied RMs"
        return (
            f"{p} picks {picked} (ROUGE-1 {_f(r['rouge1_selected'])}, regret vs best "
            f"{_f(r['regret_best'])} [{_f(r['regret_best_lo'])}, {_f(r['regret_best_hi'])}], vs random "
            f"{_f(r['regret_random'])} [{_f(r['regret_random_lo'])}, {_f(r['regret_random_hi'])}], "
            f"tau {_f(r['tau'], 2)} [{_f(r['tau_lo'], 2)}, {_f(r['tau_hi'], 2)}])"
        )

    text = (
        f"{ds}: diff {_f(c['diff'])} [{_f(c['ci_low'])}, {_f(c['ci_high'])}], "
        f"{pick('policy_acc')}, {pick('rm_acc')}, best RM {by.iloc[0]['best_rm']} "
        f"(ROUGE-1 {_f(by.iloc[0]['rouge1_best'])}), n = {int(_num(c, 'n_rms'))} RMs, "
        f"{int(_num(c, 'n_targets'))} targets, {int(_num(c, 'n_users'))} users"
    )
    if not _is_real(ds):
        return {**row, "this_run": f"{text} (not a real dataset)", "verdict": "not testable"}
    lo, hi = _num(c, "ci_low"), _num(c, "ci_high")
    verdict = "supported" if lo > 0 else "not supported" if hi < 0 else "inconclusive"
    return {**row, "this_run": text, "verdict": verdict}


def findings(
    *,
    tau: pd.DataFrame | None = None,
    rms: pd.DataFrame | None = None,
    decoupling: pd.DataFrame | None = None,
    generations: pd.DataFrame | None = None,
    rm_pairs: pd.DataFrame | None = None,
    scale_tests: pd.DataFrame | None = None,
    selection: pd.DataFrame | None = None,
    selection_comparisons: pd.DataFrame | None = None,
    w: float = 1.0,
    tables_dir=None,
    points: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per claim. Frames not given are read from ``tables_dir`` (an earlier notebook's
    CSVs of the same run: ``study1_tau.csv``, ``study1_rms.csv``, ``study2_summary.csv``,
    ``study2_generations.csv``, ``study2_rm_pairs.csv``, ``study3_tests.csv``, ``study1_points.csv``,
    ``study5_selection.csv``, ``study5_comparisons.csv``) when present.
    ``rms`` (study 1's RM table) feeds the synthetic datasets' known-answer checks;
    ``points`` (study 1's points) the median policy-accuracy gain over w = 0 shown beside claim 1;
    ``generations`` (study 2's per-generation table) and ``rm_pairs`` (its RMs' per-pair
    correctness) feed claim 2's paired tests and change shares."""
    from pathlib import Path

    def read(name):
        p = Path(tables_dir) / f"{name}.csv" if tables_dir else None
        return pd.read_csv(p) if p is not None and p.exists() else None

    tau = tau if tau is not None else read("study1_tau")
    rms = rms if rms is not None else read("study1_rms")
    decoupling = decoupling if decoupling is not None else read("study2_summary")
    generations = generations if generations is not None else read("study2_generations")
    rm_pairs = rm_pairs if rm_pairs is not None else read("study2_rm_pairs")
    scale_tests = scale_tests if scale_tests is not None else read("study3_tests")
    points = points if points is not None else read("study1_points")
    if generations is not None and "w" in generations.columns:  # the RGD rows at the reported weight
        rgd = generations["kind"] == "rgd"
        generations = generations[~rgd | np.isclose(generations["w"].astype(float), w)]
    selection = selection if selection is not None else read("study5_selection")
    if selection_comparisons is None:
        selection_comparisons = read("study5_comparisons")
    rows = [
        claim1(tau, w, rms, points),
        claim2(decoupling, generations, rm_pairs),
        claim3(scale_tests),
        claim4(selection, selection_comparisons),
    ]
    return pd.DataFrame(rows, columns=COLUMNS)
