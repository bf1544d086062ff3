"""Known answers for the shared statistics in analysis.metrics."""

import numpy as np
import pytest
from scipy import stats

from analysis.metrics import (
    bootstrap_ci,
    kendall_tau_ci,
    paired_comparison,
    pairwise_accuracy,
    per_user_items,
    per_user_means,
    summarize_by_user,
    two_level_boot_means,
)


def test_pairwise_accuracy_counts_ties_half():
    assert pairwise_accuracy([2, 1, 3], [1, 2, 3]).tolist() == [1.0, 0.0, 0.5]
    with pytest.raises(ValueError, match="shape"):
        pairwise_accuracy([1, 2], [1])


def test_per_user_then_overall_mean_hand_computed():
    users = ["a", "a", "a", "b"]
    vals = [1.0, 0.0, 0.5, 1.0]  # a: 0.5, b: 1.0 -> overall 0.75 (not the pooled 0.625)
    assert per_user_means(users, vals) == {"a": 0.5, "b": 1.0}
    s = summarize_by_user(users, vals)
    assert s["mean"] == pytest.approx(0.75) and s["n_users"] == 2 and s["n"] == 4


def test_bootstrap_interval_contains_mean_and_shrinks_with_more_users():
    rng = np.random.default_rng(0)
    small = rng.normal(0.5, 0.2, size=10)
    large = np.concatenate([small, rng.normal(0.5, 0.2, size=290)])
    m1, lo1, hi1 = bootstrap_ci(small)
    m2, lo2, hi2 = bootstrap_ci(large)
    assert lo1 <= m1 <= hi1 and lo2 <= m2 <= hi2
    assert (hi2 - lo2) < (hi1 - lo1)


def test_bootstrap_edge_cases():
    assert all(np.isnan(bootstrap_ci([])))
    assert bootstrap_ci([0.3]) == (0.3, 0.3, 0.3)
    assert bootstrap_ci([1.0, np.nan, 0.0])[0] == 0.5


def test_paired_comparison_of_a_method_with_itself_finds_no_difference():
    a = {f"u{i}": float(i % 3) for i in range(12)}
    res = paired_comparison(a, dict(a))
    assert res["diff"] == 0 and res["ci_low"] == 0 and res["ci_high"] == 0 and res["wilcoxon_p"] == 1.0


def test_paired_comparison_detects_a_consistent_gain():
    a = {f"u{i}": 0.5 + 0.1 + 0.01 * i for i in range(20)}
    b = {f"u{i}": 0.5 + 0.005 * i for i in range(20)}
    res = paired_comparison(a, b)
    assert res["ci_low"] > 0 and res["wilcoxon_p"] < 0.01 and res["n_users"] == 20


def test_kendall_tau_matches_scipy_and_brackets():
    rng = np.random.default_rng(1)
    x = rng.random(30)
    y = x + rng.normal(0, 0.3, 30)
    res = kendall_tau_ci(x, y, n_boot=300)
    ref = stats.kendalltau(x, y)
    assert res["tau"] == pytest.approx(ref.statistic) and res["p_value"] == pytest.approx(ref.pvalue)
    assert res["ci_low"] <= res["tau"] <= res["ci_high"] and res["n"] == 30
    assert np.isnan(kendall_tau_ci([1, 2], [1, 2])["tau"])


def test_kendall_tau_ci_equals_scipy_on_each_resample():
    """The vectorised bootstrap (tau-b from point multiplicities) gives the interval of calling
    scipy on every resample, ties included (rounded accuracies tie often)."""
    rng = np.random.default_rng(1)
    x = np.round(rng.random(40), 1)
    y = np.round(0.3 * x + rng.random(40), 1)
    res = kendall_tau_ci(x, y, n_boot=400, seed=5)
    draws = np.random.default_rng(5).integers(0, 40, size=(400, 40))
    ref = [stats.kendalltau(x[i], y[i]).statistic for i in draws]
    assert [res["ci_low"], res["ci_high"]] == pytest.approx(list(np.quantile(ref, [0.025, 0.975])), abs=1e-12)


# ------------------------------------------------------------------ two-level bootstrap (issue 11)


def test_two_users_get_the_item_level_spread():
    """2 users x 60 pairs at accuracy ~0.5: the binomial half-width of 120 pairs is ~0.09."""
    rng = np.random.default_rng(0)
    users = ["a"] * 60 + ["b"] * 60
    vals = rng.integers(0, 2, size=120).astype(float)
    s = summarize_by_user(users, vals, n_boot=2000)
    assert (s["ci_high"] - s["ci_low"]) / 2 >= 0.07
    assert s["ci_low"] <= s["mean"] <= s["ci_high"]


def test_many_users_with_identical_means_give_a_narrow_interval():
    users = [f"u{i}" for i in range(40) for _ in range(400)]
    vals = np.tile(np.repeat([0.0, 1.0], 200), 40)  # every user's mean is exactly 0.5
    s = summarize_by_user(users, vals, n_boot=500)
    assert s["mean"] == pytest.approx(0.5)
    # items: 40 x 400 draws of a fair coin: half-width ~ 1.96 * 0.5 / sqrt(16000) = 0.008
    assert (s["ci_high"] - s["ci_low"]) / 2 < 0.015


def test_two_level_replicates_of_one_user_are_an_item_bootstrap():
    x = np.r_[np.ones(30), np.zeros(70)]
    boots = two_level_boot_means(["u"] * 100, x, n_boot=4000, seed=3)
    assert boots.mean() == pytest.approx(0.3, abs=0.005)
    assert boots.std() == pytest.approx(np.sqrt(0.3 * 0.7 / 100), rel=0.08)
    many = two_level_boot_means(["u"] * 100, np.vstack([x, 1 - x]), n_boot=50, seed=3)
    assert many.shape == (50, 2) and np.allclose(many.sum(axis=1), 1.0)  # one resample, both series


def test_paired_comparison_pairs_items_and_keeps_item_spread_for_two_users():
    rng = np.random.default_rng(1)
    a = {u: {i: float(rng.integers(0, 2)) for i in range(60)} for u in ("a", "b")}
    b = {u: {i: float(rng.integers(0, 2)) for i in range(60)} for u in ("a", "b")}
    res = paired_comparison(a, b, n_boot=1000)
    assert res["ci_high"] - res["ci_low"] > 0.2  # difference of two coins over 120 items: sd ~0.09
    assert paired_comparison(a, a)["ci_low"] == 0 and paired_comparison(a, a)["wilcoxon_p"] == 1.0
    assert per_user_items(["a", "a"], ["i", "j"], [1.0, np.nan]) == {"a": {"i": 1.0}}


def test_two_level_interval_stays_in_range_and_matches_the_exact_resample():
    """Accuracies near 1 with few items per user: the interval never leaves [0, 1] (the earlier
    normal approximation gave [0.41, 1.03]) and agrees with the weight-based exact replicates."""
    import numpy as np

    from analysis.metrics import two_level_boot_means, two_level_ci

    users = ["a"] * 3 + ["b"] * 2 + ["c"] * 4
    acc = [1, 1, 1, 1, 0.5, 1, 1, 0, 1]
    mean, lo, hi = two_level_ci(users, acc, n_boot=4000, seed=1)
    assert 0.0 <= lo <= mean <= hi <= 1.0
    exact = np.quantile(two_level_boot_means(users, acc, n_boot=4000, seed=2), [0.025, 0.975])
    assert abs(lo - exact[0]) < 0.05 and abs(hi - exact[1]) < 0.05


def test_two_level_ci_reuses_its_user_draws_without_changing_a_result():
    """The (seed, n_users, n_boot) user draws are cached across calls (every RM of a dataset asks
    for the same ones); a call gives the same interval with a cold and a warm cache, in any order."""
    from analysis.metrics import _user_copies_cached, two_level_ci

    rng = np.random.default_rng(3)
    data = [
        ([f"u{i % n}" for i in range(5 * n)], rng.integers(0, 3, 5 * n) / 2.0) for n in (4, 7, 4)
    ]  # accuracies 0, 0.5, 1: the binomial path
    _user_copies_cached.cache_clear()
    cold = []
    for users, x in data:
        _user_copies_cached.cache_clear()
        cold.append(two_level_ci(users, x, n_boot=300, seed=5))
    warm = [two_level_ci(users, x, n_boot=300, seed=5) for users, x in data]
    assert warm == cold and _user_copies_cached.cache_info().hits >= 1
