"""Study 1: RM accuracy vs policy accuracy across a population of RMs (design section 2, claim 1).

For each dataset, a population of RMs (methods x seeds x training budgets) is trained on the
train split of its preference pairs (early stopping on val). On the held-out test pairs each RM
gets

- RM accuracy ``mean 1[r_u(x, y_w) > r_u(x, y_l)]`` (per user, then over users, bootstrap CI);
- policy accuracy for each variant (``score``, ``policy``), with and without length
  normalisation, at each ``w`` in ``cfg.w_values`` (:mod:`analysis.policy_accuracy`).

Across the population, Kendall's tau-b between the two (bootstrap interval resampling RMs, scipy
p-value) is computed per (dataset, variant, length_norm, w). A population below ~20 RMs gives an
unstable tau; the study warns when that happens.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.config import StudyConfig
from analysis.studies.cache import StudyCache
from analysis.studies.datasets import study1_dataset
from analysis.studies.models import get_model, model_key
from analysis.studies.rms import check_splits, feature_key, features, rm_accuracy_row, train_rm

log = logging.getLogger(__name__)
MIN_STABLE_POPULATION = 20
TIE_DECIMALS = 9


def policy_accuracy_table(
    model, tok, rms: dict, test_pairs, cfg: StudyConfig, progress: bool = True
) -> pd.DataFrame:
    """Policy accuracy of every RM: one row per (rm_id, variant, length_norm, w) with policy_acc,
    policy_acc_lo, policy_acc_hi. The RM-independent data (log-probs, prefix features, top-k
    candidates) is prepared once per dataset (:func:`analysis.policy_accuracy.prepare_pa_data`)."""
    from analysis.policy_accuracy import policy_accuracy, prepare_pa_data

    data = prepare_pa_data(
        model,
        tok,
        test_pairs,
        layer=cfg.feature_layer,
        k=cfg.k,
        policy=True,
        batch_size=cfg.batch_size,
        progress=progress,
    )
    rows = []
    for rm_id, rm in tqdm(rms.items(), desc="policy accuracy", disable=not progress):
        res = policy_accuracy(rm, data, ws=list(cfg.w_values), n_boot=cfg.n_boot, seed=cfg.seed, tok=tok)
        s = res.summary.rename(
            columns={"mean": "policy_acc", "ci_low": "policy_acc_lo", "ci_high": "policy_acc_hi"}
        )
        s.insert(0, "rm_id", rm_id)
        rows.append(
            s[["rm_id", "variant", "length_norm", "w", "policy_acc", "policy_acc_lo", "policy_acc_hi"]]
        )
    return pd.concat(rows, ignore_index=True)


def tau_table(points: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """Kendall's tau-b of rm_acc vs policy_acc per (dataset, variant, length_norm, w)."""
    from analysis.metrics import kendall_tau_ci

    rows = []
    for (ds, variant, ln, w), g in points.groupby(["dataset", "variant", "length_norm", "w"], sort=False):
        # accuracies are ratios of small counts: round so that equal accuracies reached by different
        # summation orders (1e-16 apart) are exact ties for tau-b, in memory and after a cache round trip
        x, y = (np.round(g[c].to_numpy(float), TIE_DECIMALS) for c in ("rm_acc", "policy_acc"))
        t = kendall_tau_ci(x, y, n_boot=cfg.n_boot, seed=cfg.seed)
        rows.append(
            {
                "dataset": ds,
                "variant": variant,
                "length_norm": bool(ln),
                "w": float(w),
                "tau": t["tau"],
                "tau_lo": t["ci_low"],
                "tau_hi": t["ci_high"],
                "p_value": t["p_value"],
                "n_rms": t["n"],
                "stable_population": t["n"] >= MIN_STABLE_POPULATION,
            }
        )
    return pd.DataFrame(rows)


def rm_vs_policy_accuracy(
    cfg: StudyConfig,
    cache_dir: str | None = None,
    *,
    datasets: list[str] | None = None,
    progress: bool = True,
) -> dict[str, pd.DataFrame]:
    """Run study 1. Returns tidy frames:

    - ``rms``: one row per (dataset, rm_id): method, seed, budget, steps_run, n_train_pairs,
      rm_acc, rm_acc_lo, rm_acc_hi, n_users, n_test_pairs.
    - ``points``: one row per (dataset, rm_id, variant, length_norm, w): the rms columns plus
      policy_acc, policy_acc_lo, policy_acc_hi.
    - ``tau``: one row per (dataset, variant, length_norm, w): tau, tau_lo, tau_hi, p_value, n_rms,
      stable_population.
    - ``pairs``: pairs per user and split for each dataset (the overfitting context, design 9).

    Every intermediate (pairs, features, fitted RMs, per-RM results) is cached under
    ``cache_dir``; a rerun after an interruption resumes.
    """
    from analysis.rewards.evaluate import pairs_per_user_table

    cache = StudyCache(cache_dir)
    model, tok = get_model(cfg)
    all_rms, all_points, all_pairs = [], [], []
    for ds in datasets or cfg.datasets:
        data = study1_dataset(cfg, ds, model, tok, cache)
        feats = features(cfg, model, tok, data.pairs, cache)
        check_splits(feats, ds)
        fkey = feature_key(cfg, model, tok, data.pairs)
        test = feats.subset("test")
        combos = [(m, s, b) for m in cfg.methods for s in cfg.seeds for b in cfg.budgets]
        if len(combos) < MIN_STABLE_POPULATION:
            warnings.warn(
                f"{ds}: a population of {len(combos)} RMs gives an unstable Kendall tau "
                f"(use >= {MIN_STABLE_POPULATION}: more methods, seeds or budgets)",
                stacklevel=2,
            )
        key = {
            "study": 1,
            "feat": fkey,
            "combos": combos,
            "w": list(cfg.w_values),
            "k": cfg.k,
            "model": model_key(model),
            "n_boot": cfg.n_boot,
            "seed": cfg.seed,
            "v": 1,
        }

        def run(feats=feats, test=test, combos=combos, fkey=fkey, ds=ds, data=data):
            rms, rows = {}, []
            for m, s, b in tqdm(combos, desc=f"{ds}: RM population", disable=not progress):
                rm = train_rm(feats, m, s, b, cache, fkey, cfg.rm_bootstrap)
                rm_id = f"{m}/s{s}/b{b}"
                acc, _ = rm_accuracy_row(rm, test, cfg)
                fit = getattr(rm, "fit_log_", {}) or {}
                rows.append(
                    {
                        "dataset": ds,
                        "rm_id": rm_id,
                        "method": m,
                        "seed": s,
                        "budget": b,
                        "steps_run": fit.get("steps_run"),
                        "n_train_pairs": fit.get("n_train_pairs"),
                        **acc,
                    }
                )
                rms[rm_id] = rm
            rm_df = pd.DataFrame(rows)
            test_pairs = [p for p in data.pairs if p.split == "test"]
            pa = policy_accuracy_table(model, tok, rms, test_pairs, cfg, progress=progress)
            return rm_df.merge(pa, on="rm_id", how="left")

        points = cache.frame("study1_points", key, run)
        all_points.append(points)
        all_rms.append(
            points.drop_duplicates("rm_id")[
                [
                    c
                    for c in points.columns
                    if not c.startswith("policy_acc") and c not in ("variant", "length_norm", "w")
                ]
            ]
        )
        pp = pairs_per_user_table(feats)
        pp.insert(0, "dataset", ds)
        all_pairs.append(pp)
    points = pd.concat(all_points, ignore_index=True)
    points["length_norm"] = points["length_norm"].astype(bool)
    return {
        "rms": pd.concat(all_rms, ignore_index=True),
        "points": points,
        "tau": tau_table(points, cfg),
        "pairs": pd.concat(all_pairs, ignore_index=True),
    }
