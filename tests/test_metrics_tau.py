"""Honest Kendall's tau across a population of RMs sharing one test set."""

import numpy as np
import pytest
from scipy import stats

from analysis.metrics_tau import honest_tau, split_half_reliability, tau_b_weighted


def test_weighted_tau_b_equals_scipy_on_repeated_points():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.integers(0, 5, 12).astype(float)
        y = rng.integers(0, 4, 12).astype(float)
        m = rng.integers(0, 3, 12)
        ref = stats.kendalltau(np.repeat(x, m), np.repeat(y, m)).statistic
        assert tau_b_weighted(x, y, m)[0] == pytest.approx(ref)


def _planted(seed, n_methods=6, n_seeds=8, n_users=4, n_per=50):
    """6 methods x 8 near-identical seeds; true accuracies a (RM) and p (policy) with known tau;
    outcomes on a finite shared test set: the seeds of a method share the pair-level noise."""
    rng = np.random.default_rng(seed)
    a_m = np.linspace(0.58, 0.74, n_methods)
    p_m = np.array([0.60, 0.66, 0.62, 0.70, 0.64, 0.72])
    meth = np.repeat(np.arange(n_methods), n_seeds)
    a = a_m[meth] + rng.normal(0, 0.003, meth.size)
    p = p_m[meth] + rng.normal(0, 0.003, meth.size)
    n = n_users * n_per
    u, v = rng.random((n_methods, n)), rng.random((n_methods, n))
    rm_out = (u[meth] < a[:, None]).astype(float)
    pol_out = (v[meth] < p[:, None]).astype(float)
    users = np.repeat([f"u{i}" for i in range(n_users)], n_per)
    return users, rm_out, pol_out, meth, stats.kendalltau(a, p).statistic


def test_planted_population_interval_covers_the_true_tau():
    honest = naive = cluster = 0
    for seed in range(10):
        users, rm_out, pol_out, meth, truth = _planted(seed)
        r = honest_tau(users, rm_out, pol_out, meth, cells=meth, n_boot=300, n_splits=5, seed=seed)
        honest += r["ci_low"] <= truth <= r["ci_high"]
        naive += r["naive_ci_low"] <= truth <= r["naive_ci_high"]
        cluster += r["cluster_ci_low"] <= truth <= r["cluster_ci_high"]
        assert r["n_rms"] == 48 and r["n_clusters"] == 6 and r["n_cells"] == 6 and r["n_users"] == 4
        assert 0 < r["p_boot"] <= 1
        # the method interval answers a wider question: never narrower than the population's
        assert r["cluster_ci_high"] - r["cluster_ci_low"] >= r["ci_high"] - r["ci_low"] - 0.05
    assert honest >= 8 and cluster >= 8
    assert naive <= 7  # resampling RMs as exact points misses the truth in several seeds


def test_split_half_reliability_known_cases():
    rng = np.random.default_rng(0)
    users = np.repeat(["a", "b"], 200)
    spread = np.linspace(0.1, 0.9, 20)
    reliable = (rng.random((20, 400)) < spread[:, None]).astype(float)
    assert split_half_reliability(users, reliable, n_splits=5) > 0.9
    noise = (rng.random((20, 400)) < 0.5).astype(float)  # every RM has the same true accuracy
    assert abs(split_half_reliability(users, noise, n_splits=10)) < 0.5


def test_attenuation_correction_and_degenerate_inputs():
    rng = np.random.default_rng(1)
    users = np.repeat(["a", "b", "c"], 100)
    acc = np.linspace(0.3, 0.9, 12)
    rm_out = (rng.random((12, 300)) < acc[:, None]).astype(float)
    pol_out = (rng.random((12, 300)) < acc[:, None]).astype(float)
    r = honest_tau(users, rm_out, pol_out, None, n_boot=200, n_splits=5)
    expect = np.clip(r["tau"] / np.sqrt(r["rel_rm"] * r["rel_policy"]), -1, 1)
    assert r["tau"] > 0.5 and r["tau_corrected"] == pytest.approx(expect) and r["p_boot"] < 0.01
    assert np.isnan(honest_tau(users, rm_out[:2], pol_out[:2])["tau"])
    with pytest.raises(ValueError, match="shape"):
        honest_tau(users, rm_out, pol_out[:5])


def test_bootstrap_p_agrees_with_the_interval_and_the_level_is_95():
    """p < 0.05 exactly when the 95% interval excludes 0 (same replicates), on planted
    populations from no link to a clear one; the default level is 95% (not 90%)."""
    agree = 0
    for seed, strength in enumerate([0.0, 0.0, 0.3, 0.5, 0.8, 1.0, 0.2, 0.4]):
        rng = np.random.default_rng(seed)
        users = np.repeat([f"u{i}" for i in range(8)], 25)
        a = np.linspace(0.55, 0.8, 24)
        p = strength * a + (1 - strength) * rng.permutation(a)
        rm_out = (rng.random((24, 200)) < a[:, None]).astype(float)
        pol_out = (rng.random((24, 200)) < p[:, None]).astype(float)
        cells = np.repeat(np.arange(8), 3)
        r = honest_tau(users, rm_out, pol_out, cells // 2, cells=cells, n_boot=400, n_splits=3, seed=seed)
        excludes = r["ci_low"] > 0 or r["ci_high"] < 0
        agree += excludes == (r["p_boot"] < 0.05)
        r90 = honest_tau(
            users, rm_out, pol_out, cells // 2, cells=cells, n_boot=400, n_splits=3, seed=seed, alpha=0.1
        )
        r95 = honest_tau(
            users, rm_out, pol_out, cells // 2, cells=cells, n_boot=400, n_splits=3, seed=seed, alpha=0.05
        )
        assert (r["ci_low"], r["ci_high"]) == (r95["ci_low"], r95["ci_high"])
        assert r90["ci_high"] - r90["ci_low"] < r["ci_high"] - r["ci_low"]
    assert agree >= 7  # the quantile's interpolation may differ at the boundary


def test_basic_interval_and_bootstrap_p_known_answers():
    from analysis.metrics_tau import basic_interval, bootstrap_p

    reps = np.linspace(0.0, 0.4, 401)  # replicates centred 0.1 below the estimate 0.3
    lo, hi = basic_interval(0.3, reps, 0.05)
    assert lo == pytest.approx(0.6 - np.quantile(reps, 0.975)) and hi == pytest.approx(
        0.6 - np.quantile(reps, 0.025)
    )
    assert basic_interval(0.95, np.full(10, 0.5), 0.05) == (1.0, 1.0)  # clipped to [-1, 1]
    assert bootstrap_p(0.3, reps) == pytest.approx(1 / 401)  # no replicate reaches 2 tau: floored at 1/B
    assert bootstrap_p(0.15, reps) == pytest.approx(2 * 101 / 401)  # 101 replicates >= 0.3
    assert bootstrap_p(0.0, np.array([-0.1, 0.1])) == 1.0
    assert np.isnan(bootstrap_p(float("nan"), reps))


def test_seeds_are_resampled_within_cells_only():
    """Seeds of one cell that disagree only in their noise widen the interval when they are
    redrawn; with every RM its own cell nothing is redrawn."""
    from analysis.metrics_tau import _within_group_draws

    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(3), [1, 2, 4])
    m = _within_group_draws(codes, 500, rng)
    assert (m[:, 0] == 1).all()  # a cell of one keeps its RM
    assert (m[:, 1:3].sum(1) == 2).all() and (m[:, 3:].sum(1) == 4).all()  # each cell keeps its size
    assert m[:, 3:].std() > 0.5  # and redraws within


def test_headline_interval_redraws_seeds_and_cluster_interval_redraws_methods():
    """Outcomes constant over pairs: resampling the test set changes no accuracy, so the headline
    interval's width comes from redrawing seeds within cells alone (zero with one RM per cell),
    and the cluster interval's from redrawing methods."""
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 0.9, 24)
    p = a + rng.normal(0, 0.1, 24)
    users = np.repeat(["a", "b", "c"], 10)
    rm_out, pol_out = np.repeat(a[:, None], 30, 1), np.repeat(p[:, None], 30, 1)
    cells, methods = np.repeat(np.arange(6), 4), np.repeat(np.arange(3), 8)
    seeds = honest_tau(users, rm_out, pol_out, methods, cells=cells, n_boot=300, n_splits=2)
    fixed = honest_tau(users, rm_out, pol_out, methods, cells=None, n_boot=300, n_splits=2)
    assert fixed["ci_low"] == pytest.approx(fixed["tau"]) and fixed["ci_high"] == pytest.approx(fixed["tau"])
    assert seeds["ci_high"] - seeds["ci_low"] > 0.1 and seeds["n_cells"] == 6 and fixed["n_cells"] == 24
    assert fixed["cluster_ci_high"] - fixed["cluster_ci_low"] > 0.1
