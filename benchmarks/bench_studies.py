"""Time the studies of the embedded preset stage by stage (issue 12: the report must fit 10 minutes).

Runs study 1 per dataset and study 2 per setting on a fresh cache (so nothing is reused) and
prints, per stage, the wall time and the sizes that drive it: RMs, held-out pairs, the split-half
reliability of RM accuracy (``rel_rm``) and of policy accuracy (``rel_policy``) of the headline
setting. Last line: ``studies_seconds=<x>``.

    PYTHONPATH=$PWD python benchmarks/bench_studies.py [--datasets a,b] [--settings news_category,synthetic]
        [--set key=value ...] [--skip-study2]      (--datasets none: study 2 only)
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch


def main() -> None:
    from analysis.config.parse import load_config, parse_set
    from analysis.studies import preflamp_decoupling, rm_vs_policy_accuracy

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--datasets",
        default="",
        help="comma-separated study-1 datasets (default: the preset's; 'none': skip study 1)",
    )
    ap.add_argument("--settings", default="news_category,synthetic", help="study-2 preflamp sources")
    ap.add_argument("--set", action="append", default=[], help="config override key=value")
    ap.add_argument("--skip-study2", action="store_true")
    ap.add_argument("--cache", default="", help="cache dir (default: a fresh temporary one)")
    args = ap.parse_args()
    cfg = load_config("embedded", parse_set(args.set))
    torch.set_num_threads(cfg.threads)
    cache = args.cache or tempfile.mkdtemp(prefix="bench-studies-")
    total = 0.0
    study1 = [] if args.datasets == "none" else args.datasets.split(",") if args.datasets else cfg.datasets
    for ds in study1:
        t0 = time.perf_counter()
        res = rm_vs_policy_accuracy(cfg, cache, datasets=[ds], progress=False)
        dt = time.perf_counter() - t0
        total += dt
        rms, tau = res["rms"], res["tau"]
        main_rms = rms[~rms["sensitivity"]]
        head = tau[(tau["variant"] == "score") & (tau["w"] == cfg.rgd_w)]
        print(
            f"study1 {ds}: {dt:.1f}s  rms={len(main_rms)} test_pairs={int(main_rms['n_test_pairs'].max())} "
            + " ".join(
                f"[ln={int(r.length_norm)} tau={r.tau:.3f} ({r.tau_lo:.3f}, {r.tau_hi:.3f}) "
                f"rel_rm={r.rel_rm:.3f} rel_policy={r.rel_policy:.3f}]"
                for r in head.itertuples()
            ),
            flush=True,
        )
    if not args.skip_study2:
        for source in args.settings.split(","):
            t0 = time.perf_counter()
            res = preflamp_decoupling(dataclasses.replace(cfg, preflamp_source=source), cache, progress=False)
            dt = time.perf_counter() - t0
            total += dt
            s = res["summary"]
            print(f"study2 {source}: {dt:.1f}s  users={int(s['n_users'].max())}", flush=True)
            print(s[["label", "rm_acc", "rouge1", "rouge1_lo", "rouge1_hi"]].round(3).to_string(), flush=True)
    print(f"studies_seconds={total:.1f}")


if __name__ == "__main__":
    main()
