"""Honest Kendall's tau across a population of RMs sharing one test set (issue 11)."""

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
    honest = naive = 0
    for seed in range(10):
        users, rm_out, pol_out, meth, truth = _planted(seed)
        r = honest_tau(users, rm_out, pol_out, meth, n_boot=300, n_perm=200, n_splits=5, seed=seed)
        honest += r["ci_low"] <= truth <= r["ci_high"]
        naive += r["naive_ci_low"] <= truth <= r["naive_ci_high"]
        assert r["n_rms"] == 48 and r["n_clusters"] == 6 and r["n_users"] == 4 and 0 < r["p_perm"] <= 1
    assert honest >= 8
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
    r = honest_tau(users, rm_out, pol_out, None, n_boot=200, n_perm=200, n_splits=5)
    expect = np.clip(r["tau"] / np.sqrt(r["rel_rm"] * r["rel_policy"]), -1, 1)
    assert r["tau"] > 0.5 and r["tau_corrected"] == pytest.approx(expect) and r["p_perm"] < 0.01
    assert np.isnan(honest_tau(users, rm_out[:2], pol_out[:2])["tau"])
    with pytest.raises(ValueError, match="shape"):
        honest_tau(users, rm_out, pol_out[:5])
