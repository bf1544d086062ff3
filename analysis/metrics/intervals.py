"""Metrics and uncertainty: the one place where means, intervals and tests are computed.

Conventions (design section 2):

- Per-user first, then over users. The 95% interval is a two-level percentile bootstrap
  (:func:`two_level_boot_means`): resample users with replacement, then the items of each
  resampled user with replacement, take each user's mean and then the mean over users. With one
  or two users the interval therefore still carries the item-level (binomial) spread; with many
  users whose means agree it is narrow.
- Pairwise accuracy counts ties as 0.5.
- Kendall's tau across a population of RMs: see :mod:`analysis.metrics.tau` (test-set x seeds
  bootstrap, method-cluster sensitivity, bootstrap p-value, split-half reliability, attenuation
  correction).
  :func:`kendall_tau_ci` (resampling RMs only) is kept as the naive reference.
- Paired method comparisons take per-user item values (``{user: {item: value}}``), pair them by
  item, and bootstrap the mean difference with the same two-level scheme; the Wilcoxon
  signed-rank p-value is over the users' mean differences.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

N_BOOT = 2000


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def bootstrap_ci(
    values, n_boot: int = N_BOOT, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap ``1 - alpha`` interval of ``values`` (NaNs dropped).

    Returns ``(mean, lo, hi)``; all NaN for an empty input, ``(x, x, x)`` for one value.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (float("nan"),) * 3
    mean = float(x.mean())
    if x.size == 1:
        return mean, mean, mean
    idx = _rng(seed).integers(0, x.size, size=(n_boot, x.size))
    boots = x[idx].mean(axis=1)
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return mean, float(lo), float(hi)


_CHUNK_CELLS = 4_000_000  # replicates x items held in memory at once
_FEW_VALUES = 8  # two_level_ci: data with at most this many distinct values takes the binomial path


def two_level_boot_means(user_ids: Sequence, values, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Two-level bootstrap replicates of the mean over users of per-user means.

    ``values`` is (N,) or (K, N): K series measured on the same N items (e.g. K reward models on
    one test set); every series sees the same resample. Items with a NaN in any series are
    dropped. Returns (n_boot,) or (n_boot, K).

    One replicate: draw U users with replacement; for each drawn copy of user u draw n_u of its
    items with replacement; mean per copy, then mean over the U copies. Summed over copies, the
    item counts of user u are Multinomial(c_u * n_u, uniform) where c_u is how often u was drawn,
    so a replicate is a weight vector over items (all draws vectorised, chunked over replicates).
    """
    x = np.asarray(values, dtype=float)
    single = x.ndim == 1
    x = np.atleast_2d(x)
    users = np.asarray(list(user_ids), dtype=object)
    if users.size != x.shape[1]:
        raise ValueError(f"{users.size} user ids but {x.shape[1]} values")
    ok = ~np.isnan(x).any(axis=0)
    x, users = x[:, ok], users[ok]
    if x.shape[1] == 0:
        out = np.full((n_boot, x.shape[0]), np.nan)
        return out[:, 0] if single else out
    out = np.empty((n_boot, x.shape[0]))
    start = 0
    for w in two_level_weights(users, n_boot, _rng(seed)):
        out[start : start + len(w)] = w @ x.T
        start += len(w)
    return out[:, 0] if single else out


def two_level_weights(user_ids: Sequence, n_boot: int, rng: np.random.Generator):
    """Yield chunks (b, N) of two-level bootstrap weights over N items (each row sums to 1).

    ``weights @ values`` is the replicate's mean over users of per-user means (see
    :func:`two_level_boot_means`).
    """
    users = np.asarray(list(user_ids), dtype=object).astype(str)
    n = users.size
    _, codes = np.unique(users, return_inverse=True)
    n_users = int(codes.max()) + 1
    order = np.argsort(codes, kind="stable")  # items grouped by user
    sizes = np.bincount(codes, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    item_w = 1.0 / (sizes[codes[order]] * n_users)  # weight of one draw of each (sorted) item
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        drawn = rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=b)  # (b, U) user copies
        reps = (drawn * sizes[None, :]).ravel()  # item draws per (replicate, user)
        cell = np.repeat(np.arange(b * n_users), reps)
        u_of = cell % n_users
        pos = starts[u_of] + (rng.random(cell.size) * sizes[u_of]).astype(np.int64)
        counts = np.bincount((cell // n_users) * n + pos, minlength=b * n).reshape(b, n)
        w = np.empty((b, n))
        w[:, order] = counts * item_w[None, :]
        yield w


def two_level_ci(
    user_ids: Sequence, values, n_boot: int = N_BOOT, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Mean over users of per-user means and its two-level percentile interval ``(mean, lo, hi)``.

    The replicates are exact (users drawn with replacement, then each drawn user's items with
    replacement; for data with few distinct values, e.g. accuracies, a user's item draws are
    multinomial counts over those values, vectorised), so the interval stays inside the range of the data (an accuracy
    interval never leaves [0, 1]). :func:`two_level_boot_means` is the weight-based form used
    where several series must share one resample (e.g. tau).

    >>> m, lo, hi = two_level_ci(["a"] * 60 + ["b"] * 60, [1, 0] * 60, n_boot=500)
    >>> m, 0.0 <= lo < 0.43 and 0.57 < hi <= 1.0
    (0.5, True)
    """
    x = np.asarray(values, dtype=float)
    users = np.asarray(list(user_ids), dtype=object)
    if users.size != x.size:
        raise ValueError(f"{users.size} user ids but {x.size} values")
    ok = ~np.isnan(x)
    x, users = x[ok], users[ok]
    if x.size == 0:
        return (float("nan"),) * 3
    _, codes = np.unique(users.astype(str), return_inverse=True)
    n_users = int(codes.max()) + 1
    n_u = np.bincount(codes, minlength=n_users)
    mean = float((np.bincount(codes, weights=x, minlength=n_users) / n_u).mean())
    values, v_idx = np.unique(x, return_inverse=True)
    if values.size > _FEW_VALUES:  # e.g. ROUGE: the weight-based exact form
        boots = two_level_boot_means(users, x, n_boot=n_boot, seed=seed)
    else:  # accuracies (0, 0.5, 1): exact and vectorised over replicates and users
        c, rng = _user_copies(seed, n_users, n_boot)  # (B, U) user copies
        freq = np.zeros((n_users, values.size))
        np.add.at(freq, (codes, v_idx), 1.0)
        left = c * n_u[None, :]  # item draws of each drawn user, multinomial over its values
        p_left = np.ones(n_users)
        total = np.zeros((n_boot, n_users))
        for j in range(values.size - 1):  # multinomial as a chain of conditional binomials
            p = np.clip(freq[:, j] / n_u / np.maximum(p_left, 1e-300), 0.0, 1.0)
            k = rng.binomial(left, p[None, :])
            total += k * values[j]
            left = left - k
            p_left = p_left - freq[:, j] / n_u
        total += left * values[-1]
        boots = (total / n_u[None, :]).sum(axis=1) / n_users
    # not forced to contain the mean: the replicates are centred on it (an unbiased resample),
    # so it lies inside on every realistic input, and a mis-centred bootstrap would show here
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return mean, float(lo), float(hi)


@functools.lru_cache(maxsize=16)
def _user_copies_cached(seed: int, n_users: int, n_boot: int) -> tuple[np.ndarray, dict]:
    rng = _rng(seed)
    c = rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=n_boot)
    c.setflags(write=False)
    return c, rng.bit_generator.state


def _user_copies(seed: int, n_users: int, n_boot: int) -> tuple[np.ndarray, np.random.Generator]:
    """The user draws of :func:`two_level_ci` ((B, U) copies of each user per replicate) and the
    generator in the state right after them. They depend on (seed, n_users, n_boot) only, and every
    RM of a dataset asks for the same ones (hundreds of calls per study): drawn once, then the
    generator is restored to that state, so the results are exactly those of drawing each time."""
    c, state = _user_copies_cached(int(seed), int(n_users), int(n_boot))
    rng = _rng(seed)
    rng.bit_generator.state = state
    return c, rng


def per_user_means(user_ids: Sequence, values) -> dict:
    """Mean of ``values`` for each user (in first-seen order); NaN values are ignored."""
    sums: dict = {}
    counts: dict = {}
    for u, v in zip(user_ids, np.asarray(values, dtype=float), strict=True):
        if np.isnan(v):
            continue
        sums[u] = sums.get(u, 0.0) + float(v)
        counts[u] = counts.get(u, 0) + 1
    return {u: sums[u] / counts[u] for u in sums}


def summarize_by_user(
    user_ids: Sequence, values, n_boot: int = N_BOOT, seed: int = 0, alpha: float = 0.05
) -> dict:
    """Per-user mean, then mean over users with a two-level bootstrap interval (users, then items).

    Returns ``{"mean", "ci_low", "ci_high", "n_users", "n"}``.
    """
    by_user = per_user_means(user_ids, values)
    mean, lo, hi = two_level_ci(user_ids, values, n_boot=n_boot, seed=seed, alpha=alpha)
    n = int(np.sum(~np.isnan(np.asarray(values, dtype=float))))
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "n_users": len(by_user), "n": n}


def pairwise_accuracy(chosen_scores, rejected_scores) -> np.ndarray:
    """1 where chosen scores higher, 0 where lower, 0.5 on ties (elementwise)."""
    c = np.asarray(chosen_scores, dtype=float)
    r = np.asarray(rejected_scores, dtype=float)
    if c.shape != r.shape:
        raise ValueError(f"chosen and rejected scores differ in shape: {c.shape} vs {r.shape}")
    return np.where(c > r, 1.0, np.where(c < r, 0.0, 0.5))


def paired_comparison(
    a_by_user: Mapping, b_by_user: Mapping, n_boot: int = N_BOOT, seed: int = 0, alpha: float = 0.05
) -> dict:
    """Compare method A with method B over the users both have (A - B).

    Values are either per-user items ``{user: {item_id: value}}`` (preferred: the items both
    methods share are paired and the mean difference gets the two-level bootstrap over users,
    then items) or per-user means ``{user: value}`` (one observation per user: plain bootstrap
    over users). Returns ``{"diff", "ci_low", "ci_high", "wilcoxon_p", "n_users"}``; the p-value
    is the two-sided Wilcoxon signed-rank test over the users' mean differences (1.0 when every
    difference is zero, NaN with fewer than two users).
    """
    users = [u for u in a_by_user if u in b_by_user]
    item_level = any(isinstance(a_by_user[u], Mapping) for u in users)
    if item_level:
        uid, d_items = [], []
        for u in users:
            a, b = a_by_user[u], b_by_user[u]
            for item in a:
                if item in b:
                    uid.append(u)
                    d_items.append(float(a[item]) - float(b[item]))
        d_items = np.asarray(d_items, dtype=float)
        by_user = per_user_means(uid, d_items)
        d = np.array(list(by_user.values()), dtype=float)
        diff, lo, hi = two_level_ci(uid, d_items, n_boot=n_boot, seed=seed, alpha=alpha)
    else:
        d = np.array([float(a_by_user[u]) - float(b_by_user[u]) for u in users])
        d = d[~np.isnan(d)]
        diff, lo, hi = bootstrap_ci(d, n_boot=n_boot, seed=seed, alpha=alpha)
    if d.size < 2:
        p = float("nan")
    elif np.allclose(d, 0):
        p = 1.0
    else:
        p = float(stats.wilcoxon(d, zero_method="zsplit").pvalue)
    return {"diff": diff, "ci_low": lo, "ci_high": hi, "wilcoxon_p": p, "n_users": int(d.size)}


def per_user_items(user_ids: Sequence, item_ids: Sequence, values) -> dict:
    """``{user: {item_id: value}}`` (NaN values dropped): the input of :func:`paired_comparison`.

    A missing item id (None) is replaced by the item's position within its user.
    """
    out: dict = {}
    seen: dict = {}
    for u, i, v in zip(user_ids, item_ids, np.asarray(values, dtype=float), strict=True):
        pos = seen[u] = seen.get(u, -1) + 1
        if not np.isnan(v):
            out.setdefault(u, {})[("#", pos) if i is None else i] = float(v)
    return out
