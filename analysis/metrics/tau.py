"""Kendall's tau between RM accuracy and policy accuracy across a population of RMs, honestly.

All RMs of a dataset are scored on ONE test set, and the seeds of one (method, budget) cell are
near-copies, so resampling RMs as if their accuracies were exact and independent
(:func:`analysis.metrics.tau.kendall_tau_ci`) gives an interval that is too narrow. :func:`honest_tau`
takes every RM's per-pair outcomes (RM correctness ``1[r(y_w) > r(y_l)]``, ties 0.5, and policy
correctness of one (variant, length_norm, w)) and reports:

- ``tau``: tau-b of the two accuracies (per-user mean, then mean over users) across RMs;
- ``ci_low, ci_high`` and ``p_boot`` (the headline, "the trained population"): a bootstrap whose
  replicate resamples the test set in two levels (users, then pairs within each drawn user;
  :func:`analysis.metrics.intervals.two_level_weights`), recomputes BOTH accuracies of EVERY RM on that
  resample, and redraws the seeds within each (method, budget) cell with replacement (basic
  bootstrap interval, :func:`basic_interval`); the p-value for tau = 0 inverts the same
  replicates (:func:`bootstrap_p`);
- ``cluster_ci_low, cluster_ci_high`` ("generalise over methods", sensitivity): the same test-set
  resample with whole method clusters drawn with replacement;
- ``naive_ci_low, naive_ci_high``: RMs resampled as exact independent points (comparison only);
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


def _tau_b_many(x: np.ndarray, y: np.ndarray, ms: Sequence[np.ndarray]) -> list[np.ndarray]:
    """:func:`tau_b_weighted` of ``x``, ``y`` (B, R) under several multiplicity arrays (each (B, R))
    at the cost of one: the sign matrices of a replicate are built once for all of them."""
    out = [np.empty(x.shape[0]) for _ in ms]
    r = x.shape[1]
    chunk = max(1, _CHUNK_CELLS // max(1, r * r))
    for s in range(0, x.shape[0], chunk):
        xs, ys = x[s : s + chunk], y[s : s + chunk]
        sx = (xs[:, :, None] > xs[:, None, :]).astype(np.int8) - (xs[:, :, None] < xs[:, None, :])
        sy = (ys[:, :, None] > ys[:, None, :]).astype(np.int8) - (ys[:, :, None] < ys[:, None, :])
        mats = [a.astype(float) for a in (sx * sy, np.abs(sx), np.abs(sy))]
        for o, m in zip(out, ms, strict=True):
            mm = np.asarray(m)[s : s + chunk].astype(float)
            num, dx, dy = ((mm * (a @ mm[:, :, None])[:, :, 0]).sum(1) for a in mats)
            den = np.sqrt(dx * dy)
            with np.errstate(invalid="ignore", divide="ignore"):
                o[s : s + chunk] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


def _within_group_draws(codes: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, R) multiplicities: every group (``codes`` (R,)) redraws its own members with
    replacement, as many as it has (a group of one always keeps its member)."""
    m = np.zeros((size, codes.size), dtype=np.int64)
    for g in np.unique(codes):
        idx = np.flatnonzero(codes == g)
        m[:, idx] = rng.multinomial(idx.size, np.full(idx.size, 1.0 / idx.size), size=size)
    return m


def _interval(taus: np.ndarray, alpha: float) -> tuple[float, float]:
    """Percentile interval of the replicates (NaN ones dropped)."""
    taus = taus[~np.isnan(taus)]
    if not taus.size:
        return float("nan"), float("nan")
    lo, hi = np.quantile(taus, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def basic_interval(tau: float, taus: np.ndarray, alpha: float) -> tuple[float, float]:
    """Basic (reverse-percentile) bootstrap interval ``[2 tau - q_hi, 2 tau - q_lo]``, clipped to
    [-1, 1]: the replicates' spread about the estimate, reflected.

    A replicate that resamples the test set adds a second dose of test-set noise to accuracies
    that already carry one, so its tau is attenuated about as much again as the estimate is
    attenuated from the population's tau: the percentile interval would sit below the estimate
    (measured: at a planted tau of 0.7 it covered the truth in none of 40 populations); the basic
    interval reflects that shift and covers it (37 of 40)."""
    lo, hi = _interval(np.asarray(taus, dtype=float), alpha)
    if np.isnan(tau) or np.isnan(lo):
        return float("nan"), float("nan")
    return float(np.clip(2 * tau - hi, -1.0, 1.0)), float(np.clip(2 * tau - lo, -1.0, 1.0))


def bootstrap_p(tau: float, taus: np.ndarray) -> float:
    """Two-sided bootstrap p-value for tau = 0 that inverts :func:`basic_interval`:
    ``2 * min(share of replicates >= 2 tau, share <= 2 tau)``, at least ``1 / B``, at most 1.
    The 1 - alpha basic interval of the same replicates excludes 0 exactly when this is below
    alpha (up to the quantile's interpolation), so the p-value and the interval beside it never
    disagree."""
    taus = np.asarray(taus, dtype=float)
    taus = taus[~np.isnan(taus)]
    if not taus.size or np.isnan(tau):
        return float("nan")
    share = min(float(np.mean(taus >= 2 * tau)), float(np.mean(taus <= 2 * tau)))
    return float(min(1.0, max(2 * share, 1.0 / taus.size)))


def honest_tau(
    user_ids: Sequence,
    rm_outcomes,
    policy_outcomes,
    clusters: Sequence | None = None,
    *,
    cells: Sequence | None = None,
    n_boot: int = N_BOOT,
    n_splits: int = 20,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Tau-b of RM accuracy vs policy accuracy across a trained population of RMs, with its interval.

    ``rm_outcomes`` and ``policy_outcomes`` are (R, N): per-pair outcomes of R RMs on the same N
    test pairs (columns aligned, ``user_ids`` (N,)). ``cells`` (R,) labels each RM's cell (its
    (method, budget): the RMs of one cell differ only in their seed; None: every RM its own cell);
    ``clusters`` (R,) labels each RM's method (None: every RM its own cluster). Pairs with a NaN
    outcome in any RM are dropped.

    The headline question is the paper's: how tightly do the two accuracies rank *this* kind of
    trained population, measured on a finite test set? Its bootstrap replicate redraws what is
    random in that measurement: the test set (users, then pairs within each drawn user; every RM's
    two accuracies recomputed on the same resample) and the seeds (within every cell its seeds are
    drawn with replacement: a drawn copy of an RM ties with itself in both variables, as tau-b
    counts them). ``ci_low, ci_high`` is the basic bootstrap interval of those replicates
    (:func:`basic_interval`: the estimand is the tau of the RMs' accuracies on the test
    population, which a resample's extra noise would otherwise bias towards 0) and ``p_boot``
    the two-sided bootstrap p-value for tau = 0 from the same replicates (:func:`bootstrap_p`).
    A permutation of RMs would treat the RMs as independent points with exact accuracies
    (ignoring the shared test set and the near-copies), and a permutation over the test set has
    no exchangeable null here (each pair's two outcomes belong to different quantities), so the
    p-value inverts the interval instead and cannot contradict it.

    Sensitivity columns, each answering another question:

    - ``cluster_ci_low, cluster_ci_high`` ("generalise over methods"): the same test-set
      resample, but whole method clusters drawn with replacement (basic interval too): would
      the link hold for other methods like these? With ``n_clusters`` = 5 methods it can never
      be narrow.
    - ``naive_ci_low, naive_ci_high`` (RMs only): RMs resampled as exact, independent points:
      too narrow, kept for comparison; ``p_scipy`` is scipy's p-value under the same assumption.

    Also ``rel_rm, rel_policy`` (split-half reliabilities, :func:`split_half_reliability`) and
    ``tau_corrected`` = tau / sqrt(rel_rm * rel_policy) clipped to [-1, 1] (NaN when a
    reliability is <= 0), and the counts ``n_rms, n_cells, n_clusters, n_pairs, n_users``.
    """
    x_o = np.atleast_2d(np.asarray(rm_outcomes, dtype=float))
    y_o = np.atleast_2d(np.asarray(policy_outcomes, dtype=float))
    if x_o.shape != y_o.shape:
        raise ValueError(f"RM and policy outcomes differ in shape: {x_o.shape} vs {y_o.shape}")
    users = np.asarray(list(user_ids)).astype(str)
    if users.size != x_o.shape[1]:
        raise ValueError(f"{users.size} user ids but {x_o.shape[1]} pairs")
    n_rms = x_o.shape[0]

    def codes_of(labels, what):
        if labels is None:
            return np.arange(n_rms)
        lab = np.asarray(list(labels)).astype(str)
        if lab.size != n_rms:
            raise ValueError(f"{lab.size} {what} labels but {n_rms} RMs")
        return np.unique(lab, return_inverse=True)[1]

    ccode, kcode = codes_of(clusters, "cluster"), codes_of(cells, "cell")
    ok = ~(np.isnan(x_o).any(axis=0) | np.isnan(y_o).any(axis=0))
    x_o, y_o, users = x_o[:, ok], y_o[:, ok], users[ok]
    n_clusters = int(ccode.max()) + 1 if n_rms else 0
    nan = float("nan")
    out = {
        "tau": nan,
        "ci_low": nan,
        "ci_high": nan,
        "p_boot": nan,
        "cluster_ci_low": nan,
        "cluster_ci_high": nan,
        "naive_ci_low": nan,
        "naive_ci_high": nan,
        "p_scipy": nan,
        "rel_rm": nan,
        "rel_policy": nan,
        "tau_corrected": nan,
        "n_rms": n_rms,
        "n_cells": int(kcode.max()) + 1 if n_rms else 0,
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
    head, clus = [], []
    for w in two_level_weights(users, n_boot, rng):
        xb, yb = np.round(w @ x_o.T, TIE_DECIMALS), np.round(w @ y_o.T, TIE_DECIMALS)
        seeds_drawn = _within_group_draws(kcode, len(w), rng)
        clusters_drawn = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=len(w))
        t_head, t_clus = _tau_b_many(xb, yb, [seeds_drawn, clusters_drawn[:, ccode]])
        head.append(t_head)
        clus.append(t_clus)
    head, clus = np.concatenate(head), np.concatenate(clus)
    lo, hi = basic_interval(tau, head, alpha)
    out.update(ci_low=lo, ci_high=hi, p_boot=bootstrap_p(tau, head))
    lo, hi = basic_interval(tau, clus, alpha)
    out.update(cluster_ci_low=lo, cluster_ci_high=hi)
    rel_x = split_half_reliability(users, x_o, n_splits=n_splits, seed=seed)
    rel_y = split_half_reliability(users, y_o, n_splits=n_splits, seed=seed + 1)
    out.update(rel_rm=rel_x, rel_policy=rel_y)
    if rel_x > 0 and rel_y > 0 and not np.isnan(tau):
        out["tau_corrected"] = float(np.clip(tau / np.sqrt(rel_x * rel_y), -1.0, 1.0))
    drawn = rng.multinomial(n_rms, np.full(n_rms, 1.0 / n_rms), size=n_boot)
    naive = tau_b_weighted(np.broadcast_to(x, drawn.shape), np.broadcast_to(y, drawn.shape), drawn)
    lo, hi = _interval(naive, alpha)
    out.update(naive_ci_low=lo, naive_ci_high=hi)
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
