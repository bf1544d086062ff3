"""Known answers for the shared statistics in analysis.metrics.intervals."""

import numpy as np
import pytest
from scipy import stats

from analysis.metrics.intervals import (
    bootstrap_ci,
    paired_comparison,
    pairwise_accuracy,
    per_user_items,
    per_user_means,
    summarize_by_user,
    two_level_boot_means,
    two_level_ci,
)
from analysis.metrics.tau import kendall_tau_ci


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
    mean, sd = _two_level_sd(users, vals)  # the bootstrap's exact spread on these data
    assert (s["ci_high"] - s["ci_low"]) / (2 * 1.96 * sd) == pytest.approx(1.0, abs=0.15)
    assert abs((s["ci_high"] + s["ci_low"]) / 2 - mean) < 0.25 * sd


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

    from analysis.metrics.intervals import two_level_boot_means, two_level_ci

    users = ["a"] * 3 + ["b"] * 2 + ["c"] * 4
    acc = [1, 1, 1, 1, 0.5, 1, 1, 0, 1]
    mean, lo, hi = two_level_ci(users, acc, n_boot=4000, seed=1)
    assert 0.0 <= lo <= mean <= hi <= 1.0
    exact = np.quantile(two_level_boot_means(users, acc, n_boot=4000, seed=2), [0.025, 0.975])
    assert abs(lo - exact[0]) < 0.05 and abs(hi - exact[1]) < 0.05


def test_two_level_ci_reuses_its_user_draws_without_changing_a_result():
    """The (seed, n_users, n_boot) user draws are cached across calls (every RM of a dataset asks
    for the same ones); a call gives the same interval with a cold and a warm cache, in any order."""
    from analysis.metrics.intervals import _user_copies_cached, two_level_ci

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


# ------------------------------------------------------- interval widths against the true spread


def _two_level_sd(users, x):
    """Closed form of the two-level bootstrap's spread given the data: a replicate is the mean of
    U iid draws M, each a uniformly drawn user u's mean of n_u items drawn with replacement, so
    Var(M) = var_u(m_u) + mean_u(s_u^2 / n_u) (s_u^2: the population variance of u's items) and
    the replicate's variance is Var(M) / U. Returns (mean over users of per-user means, sd)."""
    users, x = np.asarray(users), np.asarray(x, dtype=float)
    groups = [x[users == u] for u in np.unique(users)]
    m = np.array([g.mean() for g in groups])
    within = np.array([g.var() / g.size for g in groups])
    return m.mean(), float(np.sqrt((m.var() + within.mean()) / m.size))


def _planted_users(rng, n_users, max_items, kind):
    sizes = rng.integers(2, max_items, n_users)  # unequal users: pooled and per-user means differ
    users = np.repeat([f"u{i}" for i in range(n_users)], sizes)
    p = rng.uniform(0.2, 0.9, n_users)[np.repeat(np.arange(n_users), sizes)]
    if kind == "accuracy":  # 0/1 outcomes: the few-values (binomial) path
        return users, (rng.random(users.size) < p).astype(float)
    if kind == "ties":  # 0, 0.5, 1
        return users, np.round(2 * rng.random(users.size) * p) / 2
    return users, rng.beta(2, 5, users.size) + p  # continuous (ROUGE-like): the weight path


@pytest.mark.parametrize(
    ("kind", "n_users", "max_items"), [("accuracy", 30, 20), ("ties", 40, 8), ("rouge", 12, 40)]
)
def test_two_level_interval_width_and_centre_match_the_closed_form(kind, n_users, max_items):
    """On fixed planted data the bootstrap's spread is known exactly (:func:`_two_level_sd`):
    the replicates' sd and the 95% interval's width lie within 10% of it (too wide fails as well
    as too narrow: a 99% interval is 1.31 x, dropping the item level ~0.85 x) and the interval is
    centred on the per-user mean (a bootstrap of the pooled mean, or any shift, moves it)."""
    users, x = _planted_users(np.random.default_rng(7), n_users, max_items, kind)
    mean, sd = _two_level_sd(users, x)
    boots = two_level_boot_means(users, x, n_boot=4000, seed=1)
    assert boots.std() / sd == pytest.approx(1.0, abs=0.06)
    assert abs(boots.mean() - mean) < 4 * sd / np.sqrt(4000)
    m, lo, hi = two_level_ci(users, x, n_boot=4000, seed=1)
    assert m == pytest.approx(mean, abs=1e-12)
    assert (hi - lo) / (2 * 1.96 * sd) == pytest.approx(1.0, abs=0.1)
    assert abs((lo + hi) / 2 - mean) < 0.2 * sd


def test_two_level_interval_against_the_spread_over_redrawn_datasets():
    """Users drawn from a population (true accuracy p_u ~ U(0.3, 0.9)), then 15 Bernoulli items
    each: the estimator's true sd over re-drawn datasets is sqrt((var p + E[p(1 - p)] / n) / U)
    (closed form, no bootstrap). Over 60 datasets the interval's mean width is between 0.9 and
    1.35 times 2 x 1.96 x that sd (the two-level resample counts the item noise twice, by design
    about 1.14 x here) and it covers the population mean in at least 85% of them."""
    rng = np.random.default_rng(11)
    n_users, n_items = 30, 15
    var_p, e_pq = 0.6**2 / 12, 0.6 - (0.6**2 / 12 + 0.6**2)
    true_sd = np.sqrt((var_p + e_pq / n_items) / n_users)
    widths, covered = [], 0
    users = np.repeat([f"u{i}" for i in range(n_users)], n_items)
    for seed in range(60):
        p = rng.uniform(0.3, 0.9, n_users)
        x = (rng.random((n_users, n_items)) < p[:, None]).astype(float).ravel()
        _, lo, hi = two_level_ci(users, x, n_boot=1000, seed=seed)
        widths.append(hi - lo)
        covered += lo <= 0.6 <= hi
    assert 0.9 <= np.mean(widths) / (2 * 1.96 * true_sd) <= 1.35
    assert covered >= 51


def test_paired_comparison_interval_is_the_two_level_interval_of_paired_differences():
    """Items of B copy A's outcome 80% of the time: the paired difference has a known spread
    (the closed form on the per-item differences) far below that of two unpaired means; the
    interval's width is within 10% of it and centred on the mean difference."""
    rng = np.random.default_rng(3)
    users, a = _planted_users(rng, 30, 20, "accuracy")
    b = np.where(rng.random(a.size) < 0.8, a, (rng.random(a.size) < 0.5).astype(float))
    items = np.arange(a.size)
    res = paired_comparison(per_user_items(users, items, a), per_user_items(users, items, b), n_boot=4000)
    mean, sd = _two_level_sd(users, a - b)
    assert res["diff"] == pytest.approx(mean, abs=1e-12)
    assert (res["ci_high"] - res["ci_low"]) / (2 * 1.96 * sd) == pytest.approx(1.0, abs=0.1)
    assert abs((res["ci_high"] + res["ci_low"]) / 2 - mean) < 0.2 * sd
    _, sd_a = _two_level_sd(users, a)
    assert sd < 0.75 * np.sqrt(2) * sd_a  # unpaired, the spread would be ~sqrt(2) sd_a
    # per-user means (one value per user): a plain bootstrap over users, sd = std(d) / sqrt(U)
    d = rng.normal(0.1, 0.3, 40)
    res = paired_comparison({i: v for i, v in enumerate(d)}, {i: 0.0 for i in range(40)}, n_boot=4000)
    assert (res["ci_high"] - res["ci_low"]) / (2 * 1.96 * d.std() / np.sqrt(40)) == pytest.approx(
        1.0, abs=0.1
    )
    assert abs((res["ci_high"] + res["ci_low"]) / 2 - d.mean()) < 0.2 * d.std() / np.sqrt(40)
