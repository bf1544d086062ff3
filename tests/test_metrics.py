"""Known answers for the shared statistics in analysis.metrics."""

import numpy as np
import pytest
from scipy import stats

from analysis.metrics import (
    bootstrap_ci,
    kendall_tau_ci,
    paired_comparison,
    pairwise_accuracy,
    per_user_means,
    summarize_by_user,
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
