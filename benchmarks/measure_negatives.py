"""Measure which Pref-LaMP negatives take study 1's policy accuracy off its floor on the real dataset.

For each negatives kind (``analysis.data.preflamp.NEGATIVES``) study 1 runs on
``news_category_preflamp`` alone with the embedded preset (its full RM population, float32, one
torch thread) and ``real_negatives=<kind>``; one table row per kind gives the headline setting
(score variant, ``w = rgd_w``, no length normalisation): the share of RMs whose policy accuracy
lies in (0.05, 0.95) (``pa_mid_share``), the split-half reliabilities ``rel_rm`` and
``rel_policy``, Kendall's tau with its interval (test set x seeds in cells), the RMs' median
policy accuracy at ``w = rgd_w`` and at ``w = 0`` (the base likelihood alone) and the test pairs.
The last line is ``chosen_negatives=<kind>``: the kind with the largest share among those with
both reliabilities >= 0.7, else the largest share. Kinds run one after another (each a few
minutes on a 2-core CPU); their generations and study results are cached in ``--cache-dir``.

    PYTHONPATH=$PWD python benchmarks/measure_negatives.py [--kinds base,base_sample,icl_other,other_user]
        [--cache-dir DIR] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MIN_RELIABILITY = 0.7
DATASET = "news_category_preflamp"


def choose(rows: list[dict]) -> str:
    """The kind with the largest ``pa_mid_share`` among those whose ``rel_rm`` and ``rel_policy``
    are both >= 0.7, else the largest share overall (ties: the earlier kind)."""
    reliable = [r for r in rows if min(r["rel_rm"], r["rel_policy"]) >= MIN_RELIABILITY]
    pool = reliable or rows
    return max(pool, key=lambda r: r["pa_mid_share"])["kind"]


def measure(kind: str, cache_dir: str, overrides: dict) -> dict:
    """Study 1 on :data:`DATASET` with ``real_negatives=kind``: the headline tau row and sizes."""
    from analysis.config.parse import load_config
    from analysis.studies import rm_vs_policy_accuracy

    cfg = load_config(
        "embedded",
        {"dtype": "float32", "threads": 1, **overrides, "datasets": [DATASET], "real_negatives": kind},
    )
    t0 = time.perf_counter()
    res = rm_vs_policy_accuracy(cfg, cache_dir, datasets=[DATASET], progress=False)
    seconds = time.perf_counter() - t0
    tau, pts = res["tau"], res["points"]
    head = tau[(tau["variant"] == "score") & (tau["w"] == cfg.rgd_w) & ~tau["length_norm"].astype(bool)]
    r = head.iloc[0]
    pts = pts[
        (pts["variant"] == "score") & ~pts["length_norm"].astype(bool) & ~pts["sensitivity"].astype(bool)
    ]
    at = {w: pts[pts["w"] == w]["policy_acc"] for w in (cfg.rgd_w, 0.0)}
    card = res["cards"].iloc[0]
    return {
        "kind": kind,
        "n_rms": int(r["n_rms"]),
        "n_test_pairs": int(card["n_test"]),
        "pa_mid_share": float(r["pa_mid_share"]),
        "rel_rm": float(r["rel_rm"]),
        "rel_policy": float(r["rel_policy"]),
        "tau": float(r["tau"]),
        "tau_lo": float(r["tau_lo"]),
        "tau_hi": float(r["tau_hi"]),
        "pa_median": float(at[cfg.rgd_w].median()),
        "pa_median_w0": float(at[0.0].median()) if len(at[0.0]) else float("nan"),
        "seconds": seconds,
    }


def main() -> None:
    import torch

    from analysis.config.parse import parse_set
    from analysis.data.preflamp import NEGATIVES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="base,base_sample,icl_other,other_user", help="comma-separated kinds")
    ap.add_argument(
        "--cache-dir",
        default=os.path.join(tempfile.gettempdir(), "measure-negatives"),
        help="study cache (outside the repository; reused by a rerun)",
    )
    ap.add_argument("--set", action="append", default=[], help="config override key=value")
    args = ap.parse_args()
    torch.set_num_threads(1)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    for k in kinds:
        if k not in NEGATIVES:
            from analysis.errors import lookup

            lookup(NEGATIVES, k, "negatives kind")
    cols = (
        "kind",
        "n_rms",
        "n_test_pairs",
        "pa_mid_share",
        "rel_rm",
        "rel_policy",
        "tau",
        "tau_lo",
        "tau_hi",
    )
    cols += ("pa_median", "pa_median_w0", "seconds")
    print(" | ".join(cols), flush=True)
    rows = []
    for kind in kinds:
        r = measure(kind, args.cache_dir, parse_set(args.set))
        rows.append(r)
        print(
            " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols),
            flush=True,
        )
    print(f"chosen_negatives={choose(rows)}")


if __name__ == "__main__":
    main()
