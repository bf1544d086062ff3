"""Precision sensitivity: study 1 on the real dataset in float32 and in bfloat16, tau by tau.

``dtype: auto`` runs float32 on every CPU; this measures what bfloat16 (``--set dtype=bfloat16``)
would change. Study 1 (:func:`analysis.studies.rm_vs_policy_accuracy`, what notebook 01 runs) is
run twice on the same config, once per dtype, each with its own fresh temporary cache (the
Pref-LaMP negatives, the features, the RMs and policy accuracy are all recomputed in that dtype),
on one CPU thread. Printed: each run's headline tau (score variant, w = ``rgd_w``) with its
interval, the largest change of any tau (every dataset x variant x length norm x w), claim 1's
verdict of each run (:func:`analysis.studies.findings.claim1` on its tau table) per dataset and
overall, and last ``precision_verdict_changes=<n>``: how many of those verdicts differ.

    python benchmarks/bench_precision.py                       # the embedded preset's sizes
    python benchmarks/bench_precision.py --set seeds=[0] --set budgets=[25,150] --set max_real_users=12
"""

from __future__ import annotations

import argparse
import math
import re
import tempfile
import time
import warnings

import torch

DTYPES = ("float32", "bfloat16")
_PART = re.compile(r"^(?P<name>[^:;]+?): .* -> (?P<verdict>[a-z ]+)$")


def dataset_verdicts(finding: dict) -> dict[str, str]:
    """Claim 1's verdict per dataset (its ``this_run`` has one ``<dataset>: ... -> <verdict>``
    part per dataset) plus the overall one under ``"overall"``.

    >>> dataset_verdicts({"this_run": "a: tau=0.1 -> supported; b: tau=0.5 -> inconclusive",
    ...                   "verdict": "inconclusive"})
    {'a': 'supported', 'b': 'inconclusive', 'overall': 'inconclusive'}
    """
    out = {}
    for part in str(finding.get("this_run", "")).split("; "):
        m = _PART.match(part.strip())
        if m:
            out[m["name"].strip()] = m["verdict"].strip()
    out["overall"] = str(finding.get("verdict", ""))
    return out


def largest_tau_change(a, b) -> tuple[float, str]:
    """Largest |tau_b - tau_a| over the rows both tau tables share, and which row; a tau defined in
    one run and undefined (NaN: all ties) in the other counts as an infinite change."""
    keys = ["dataset", "variant", "length_norm", "w"]
    m = a[[*keys, "tau"]].merge(b[[*keys, "tau"]], on=keys, suffixes=("_a", "_b"))
    best, where = -1.0, "no tau defined in either run"
    for r in m.itertuples():
        na, nb = math.isnan(r.tau_a), math.isnan(r.tau_b)
        if na and nb:
            continue
        d = math.inf if na != nb else abs(r.tau_b - r.tau_a)
        if d > best:
            best = d
            where = f"{r.dataset} {r.variant} length_norm={bool(r.length_norm)} w={r.w:g}: "
            where += f"{r.tau_a:.3f} -> {r.tau_b:.3f}"
    return max(best, 0.0), where


def main(argv=None) -> None:
    from analysis.config.parse import load_config, parse_set
    from analysis.studies import rm_vs_policy_accuracy
    from analysis.studies.findings import claim1

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="embedded")
    ap.add_argument("--datasets", default="news_category_preflamp", help="comma-separated study-1 datasets")
    ap.add_argument("--set", action="append", default=[], help="config override key=value (YAML value)")
    args = ap.parse_args(argv)
    overrides = {"threads": 1, **parse_set(args.set)}
    datasets = args.datasets.split(",")
    runs: dict[str, dict] = {}
    for dtype in DTYPES:
        cfg = load_config(args.preset, {**overrides, "dtype": dtype, "datasets": datasets})
        torch.set_num_threads(cfg.threads)
        with tempfile.TemporaryDirectory(prefix=f"bench-precision-{dtype}-") as cache:
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = rm_vs_policy_accuracy(cfg, cache, datasets=datasets, progress=False)
            seconds = time.perf_counter() - t0
        tau = res["tau"]
        finding = claim1(tau, cfg.rgd_w)
        runs[dtype] = {"tau": tau, "verdicts": dataset_verdicts(finding), "finding": finding}
        n_rms = int((~res["rms"]["sensitivity"]).sum())
        print(
            f"{dtype}: study 1 on {','.join(datasets)} in {seconds:.0f} s, {n_rms} RMs, "
            f"{len(caught)} warning(s){': ' + str(caught[0].message)[:80] if caught else ''}",
            flush=True,
        )
        print(f"{dtype}: claim 1: {finding['this_run']} -> overall {finding['verdict']}", flush=True)
    print(
        f"config: preset={args.preset} overrides={overrides} rgd_w={cfg.rgd_w} torch={torch.__version__} "
        f"cpu_capability={torch.backends.cpu.get_cpu_capability()}"
    )
    change, where = largest_tau_change(runs["float32"]["tau"], runs["bfloat16"]["tau"])
    print(f"largest tau change float32 -> bfloat16: {change:.3f} ({where})")
    a, b = runs["float32"]["verdicts"], runs["bfloat16"]["verdicts"]
    changed = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    for k in changed:
        print(f"verdict changed: {k}: {a.get(k, 'missing')} (float32) -> {b.get(k, 'missing')} (bfloat16)")
    print(
        f"any verdict changed: {'yes' if changed else 'no'} ({len(a)} verdicts compared: per dataset and overall)"
    )
    print(f"precision_verdict_changes={len(changed)}")


if __name__ == "__main__":
    main()
