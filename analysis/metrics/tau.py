"""Kendall's tau between RM accuracy and policy accuracy across a population of RMs, honestly.

All RMs of a dataset are scored on ONE test set, and the "seeds" of one method are near-copies,
so resampling RMs as if their accuracies were exact and independent (:func:`kendall_tau_ci`)
gives an interval that is too narrow (``naive_ci_*`` below). :func:`honest_tau` instead takes every RM's per-pair
outcomes (RM correctness ``1[r(y_w) > r(y_l)]``, ties 0.5, and policy correctness of one
(variant, length_norm, w)) and reports:

- ``tau``: tau-b of the two accuracies (per-user mean, then mean over users) across RMs;
- ``ci_low, ci_high``: percentile interval of a bootstrap whose replicate (a) resamples the test
  set in two levels (users, then pairs within each drawn user; :func:`two_level_weights`) and
  recomputes BOTH accuracies of EVERY RM on that same resample, and (b) resamples the RMs by
  cluster (method): whole clusters are drawn with replacement, each RM entering as often as its
  cluster was drawn (copies of one RM are ties in both variables, as tau-b counts them);
- ``p_perm``: two-sided permutation p-value (policy accuracies permuted over RMs);
- ``rel_rm, rel_policy``: split-half reliability of each accuracy across the RM population: the
  test pairs are split in random halves within each user, the Pearson correlation r of the RMs'
  accuracies on the two halves is Spearman-Brown corrected (2r / (1 + r)), averaged over splits;
- ``tau_corrected``: tau / sqrt(rel_rm * rel_policy) clipped to [-1, 1] (the classic correction
  for attenuation, applied to tau as an approximation), NaN when a reliability is <= 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from analysis.metrics.intervals import N_BOOT, _rng, two_level_weights

TIE_DECIMALS = 12  # accuracies are ratios of counts: equal values reached by different sums tie exactly
_CHUNK_CELLS = 8_000_000


def tau_b_weighted(x: np.ndarray, y: np.ndarray, m: np.ndarray | None = None) -> np.ndarray:
    """Kendall's tau-b of each row of ``x`` (B, R) vs ``y`` (B, R) with point multiplicities ``m``.

    Equals :func:`scipy.stats.kendalltau` on the data with point r repeated m[b, r] times (copies
    of a point tie in both variables). NaN where a row has no untied pair.
    """
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    out = np.empty(x.shape[0])
    r = x.shape[1]
    chunk = max(1, _CHUNK_CELLS // max(1, r * r))
    for s in range(0, x.shape[0], chunk):
        xs, ys = x[s : s + chunk], y[s : s + chunk]
        sx = (xs[:, :, None] > xs[:, None, :]).astype(np.int8) - (xs[:, :, None] < xs[:, None, :])
        sy = (ys[:, :, None] > ys[:, None, :]).astype(np.int8) - (ys[:, :, None] < ys[:, None, :])
        if m is None:
            num = (sx * sy).sum(axis=(1, 2), dtype=np.int64).astype(float)
            dx = np.abs(sx).sum(axis=(1, 2), dtype=np.int64).astype(float)
            dy = np.abs(sy).sum(axis=(1, 2), dtype=np.int64).astype(float)
        else:
            ms = np.atleast_2d(m)[s : s + chunk].astype(float)
            # m^T S m per row as a batched matrix product (integer-valued, so exact in float64)
            num, dx, dy = (
                (ms * (a.astype(float) @ ms[:, :, None])[:, :, 0]).sum(1)
                for a in (sx * sy, np.abs(sx), np.abs(sy))
            )
        den = np.sqrt(dx * dy)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s : s + chunk] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


def _user_mean_weights(codes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Weights over items: per-user mean over ``mask`` items, then mean over users having any."""
    counts = np.bincount(codes[mask], minlength=codes.max() + 1).astype(float)
    n_users = int((counts > 0).sum())
    w = np.zeros(codes.size)
    w[mask] = 1.0 / (counts[codes[mask]] * n_users)
    return w


def split_half_reliability(
    user_ids: Sequence, outcomes: np.ndarray, n_splits: int = 20, seed: int = 0
) -> float:
    """Spearman-Brown corrected split-half reliability of the RMs' accuracies (rows of ``outcomes``).

    Each split puts a random half of every user's pairs in A (users with one pair go to A or B
    at random); r = Pearson correlation across RMs of the accuracy on A and on B; returns the
    mean over splits of 2r / (1 + r) (NaN when the accuracies do not vary).
    """
    o = np.atleast_2d(np.asarray(outcomes, dtype=float))
    _, codes = np.unique(np.asarray(list(user_ids)).astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_splits):
        key = rng.random(codes.size)
        in_a = np.zeros(codes.size, dtype=bool)
        for u in np.unique(codes):
            idx = np.flatnonzero(codes == u)
            idx = idx[np.argsort(key[idx])]
            half = idx.size // 2 + (rng.random() < 0.5 if idx.size % 2 else 0)
            in_a[idx[:half]] = True
        if in_a.all() or not in_a.any():
            continue
        a = o @ _user_mean_weights(codes, in_a)
        b = o @ _user_mean_weights(codes, ~in_a)
        if np.std(a) == 0 or np.std(b) == 0:
            continue
        r = float(np.corrcoef(a, b)[0, 1])
        vals.append(2 * r / (1 + r) if r > -1 else -np.inf)
    return float(np.mean(vals)) if vals else float("nan")


def honest_tau(
    user_ids: Sequence,
    rm_outcomes,
    policy_outcomes,
    clusters: Sequence | None = None,
    *,
    n_boot: int = N_BOOT,
    n_perm: int = 1000,
    n_splits: int = 20,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Tau-b of RM accuracy vs policy accuracy across RMs with a test-set x cluster bootstrap.

    ``rm_outcomes`` and ``policy_outcomes`` are (R, N): per-pair outcomes of R RMs on the same N
    test pairs (columns aligned, ``user_ids`` (N,)); ``clusters`` (R,) labels each RM's cluster
    (its method; None: every RM its own cluster). Pairs with a NaN outcome in any RM are dropped.
    Returns ``{tau, ci_low, ci_high, p_perm, p_scipy, rel_rm, rel_policy, tau_corrected,
    naive_ci_low, naive_ci_high, n_rms, n_clusters, n_pairs, n_users}`` (naive: resampling RMs
    only, the old interval, for comparison).
    """
    x_o = np.atleast_2d(np.asarray(rm_outcomes, dtype=float))
    y_o = np.atleast_2d(np.asarray(policy_outcomes, dtype=float))
    if x_o.shape != y_o.shape:
        raise ValueError(f"RM and policy outcomes differ in shape: {x_o.shape} vs {y_o.shape}")
    users = np.asarray(list(user_ids)).astype(str)
    if users.size != x_o.shape[1]:
        raise ValueError(f"{users.size} user ids but {x_o.shape[1]} pairs")
    ok = ~(np.isnan(x_o).any(axis=0) | np.isnan(y_o).any(axis=0))
    x_o, y_o, users = x_o[:, ok], y_o[:, ok], users[ok]
    n_rms = x_o.shape[0]
    labels = np.arange(n_rms) if clusters is None else np.asarray(list(clusters)).astype(str)
    _, ccode = np.unique(labels, return_inverse=True)
    n_clusters = int(ccode.max()) + 1 if n_rms else 0
    nan = float("nan")
    out = {
        "tau": nan,
        "ci_low": nan,
        "ci_high": nan,
        "p_perm": nan,
        "p_scipy": nan,
        "rel_rm": nan,
        "rel_policy": nan,
        "tau_corrected": nan,
        "naive_ci_low": nan,
        "naive_ci_high": nan,
        "n_rms": n_rms,
        "n_clusters": n_clusters,
        "n_pairs": int(users.size),
        "n_users": int(np.unique(users).size),
    }
    if n_rms < 3 or users.size == 0:
        return out
    _, codes = np.unique(users, return_inverse=True)
    w0 = _user_mean_weights(codes, np.ones(users.size, dtype=bool))
    x, y = np.round(x_o @ w0, TIE_DECIMALS), np.round(y_o @ w0, TIE_DECIMALS)
    res = stats.kendalltau(x, y)
    tau = float(res.statistic)
    out.update(tau=tau, p_scipy=float(res.pvalue))
    rng = np.random.default_rng(seed)
    taus = []
    for w in two_level_weights(users, n_boot, rng):
        xb, yb = np.round(w @ x_o.T, TIE_DECIMALS), np.round(w @ y_o.T, TIE_DECIMALS)
        drawn = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=len(w))
        taus.append(tau_b_weighted(xb, yb, drawn[:, ccode]))
    taus = np.concatenate(taus)
    taus = taus[~np.isnan(taus)]
    if taus.size:
        lo, hi = np.quantile(taus, [alpha / 2, 1 - alpha / 2])
        out.update(ci_low=float(lo), ci_high=float(hi))
    if not np.isnan(tau):
        perm = np.argsort(rng.random((n_perm, n_rms)), axis=1)
        t_perm = tau_b_weighted(np.broadcast_to(x, (n_perm, n_rms)), y[perm])
        out["p_perm"] = float((1 + np.sum(np.abs(t_perm) >= abs(tau) - 1e-12)) / (1 + n_perm))
    rel_x = split_half_reliability(users, x_o, n_splits=n_splits, seed=seed)
    rel_y = split_half_reliability(users, y_o, n_splits=n_splits, seed=seed + 1)
    out.update(rel_rm=rel_x, rel_policy=rel_y)
    if rel_x > 0 and rel_y > 0 and not np.isnan(tau):
        out["tau_corrected"] = float(np.clip(tau / np.sqrt(rel_x * rel_y), -1.0, 1.0))
    # the old interval (resample RMs as exact, independent points), kept for comparison
    drawn = rng.multinomial(n_rms, np.full(n_rms, 1.0 / n_rms), size=n_boot)
    naive = tau_b_weighted(np.broadcast_to(x, drawn.shape), np.broadcast_to(y, drawn.shape), drawn)
    naive = naive[~np.isnan(naive)]
    if naive.size:
        lo, hi = np.quantile(naive, [alpha / 2, 1 - alpha / 2])
        out.update(naive_ci_low=float(lo), naive_ci_high=float(hi))
    return out


def kendall_tau_ci(x, y, n_boot: int = N_BOOT, seed: int = 0, alpha: float = 0.05) -> dict:
    """Kendall's tau-b between ``x`` and ``y`` with a bootstrap interval (resampling points).

    Naive: it treats each point as exact and independent. For RMs that share one test set use
    :func:`analysis.metrics.tau.honest_tau`.

    Returns ``{"tau", "ci_low", "ci_high", "p_value", "n"}``. Bootstrap resamples whose tau is
    undefined (all ties) are dropped.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = int(x.size)
    if n < 3:
        return {
            "tau": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "p_value": float("nan"),
            "n": n,
        }
    res = stats.kendalltau(x, y)
    rng = _rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))  # resample i = the points drawn in replicate i
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    # tau-b of each resample from its point multiplicities (= scipy on the repeated points)
    taus = tau_b_weighted(np.broadcast_to(x, counts.shape), np.broadcast_to(y, counts.shape), counts)
    taus = taus[~np.isnan(taus)]
    lo, hi = np.quantile(taus, [alpha / 2, 1 - alpha / 2]) if taus.size else (float("nan"), float("nan"))
    return {
        "tau": float(res.statistic),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "p_value": float(res.pvalue),
        "n": n,
    }
