"""Study 5 (which proxy selects the RM): the statistics on planted populations (no model), the
joint bootstrap, finding 4's rule, and the study on a tiny model (best-of-n equals the shared
best-of-n system)."""

import numpy as np
import pandas as pd
import pytest

from analysis.studies.findings import claim4, findings
from analysis.studies.rm_selection import (
    joint_weights,
    picked_value,
    point_weights,
    selection_statistics,
)

REAL = "news_category_preflamp"


def planted(seed, *, pa="informative", rm="flat", n_rms=40, n_users=30, n_pairs=12, n_targets=3):
    """A population whose generation quality q_r is planted: per-target ROUGE-1 = q_r + noise.
    Per-pair correctness of a proxy (``pa``, ``rm``) is Bernoulli(p_r) with p_r = 0.5 + 2 (q_r - 0.1)
    when ``informative``, 0.9 - 2 (q_r - 0.1) when ``inverse``, an RM-specific rate unrelated to
    q_r when ``random``, and 0.65 for every
    RM when ``flat`` (the proxy cannot tell the RMs apart); ``reward_spread`` is noise."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.1, 0.3, n_rms)
    rates = {
        "informative": 0.5 + 2 * (q - 0.1),
        "inverse": 0.9 - 2 * (q - 0.1),  # accurate RMs generate worst (overfit to the pairs)
        "random": rng.uniform(0.55, 0.85, n_rms),
        "flat": np.full(n_rms, 0.65),
    }
    p_pa, p_rm = rates[pa], rates[rm]
    pairs, targets = [], []
    for r in range(n_rms):
        for u in range(n_users):
            for p in range(n_pairs):
                pairs.append(
                    {
                        "rm_id": f"r{r}",
                        "user_id": f"u{u}",
                        "pair_id": f"u{u}/p{p}",
                        "rm_acc": float(rng.random() < p_rm[r]),
                        "policy_acc": float(rng.random() < p_pa[r]),
                    }
                )
            for t in range(n_targets):
                targets.append(
                    {
                        "rm_id": f"r{r}",
                        "user_id": f"u{u}",
                        "test_id": str(t),
                        "rouge1": float(np.clip(q[r] + rng.normal(0, 0.1), 0, 1)),
                        "reward_spread": float(rng.random()),
                    }
                )
    return pd.DataFrame(pairs), pd.DataFrame(targets)


def verdict(pairs, targets, seed=0, dataset=REAL, n_boot=400):
    res = selection_statistics(
        pairs, targets, ["rm_acc", "policy_acc", "reward_spread"], n_boot=n_boot, seed=seed
    )
    sel = res["selection"].assign(system="bon", dataset=dataset)
    comps = res["comparisons"].assign(system="bon", dataset=dataset)
    return claim4(sel, comps), res


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_proxy_built_to_predict_generation_quality_wins(seed):
    row, res = verdict(*planted(seed, pa="informative", rm="inverse"))
    assert row["verdict"] == "supported", row["this_run"]
    sel = res["selection"].set_index("proxy")
    assert sel.loc["policy_acc", "tau_lo"] > 0.3 and sel.loc["policy_acc", "regret_random"] > 0
    # the mirror image: RM accuracy predicts generation quality, policy accuracy misleads -> not supported
    row, _ = verdict(*planted(seed, pa="inverse", rm="informative"))
    assert row["verdict"] == "not supported", row["this_run"]


def test_two_uninformative_proxies_are_inconclusive_in_most_seeds():
    verdicts = [verdict(*planted(s, pa="flat", rm="flat", n_rms=30), seed=s)[0]["verdict"] for s in range(10)]
    assert verdicts.count("inconclusive") >= 8, verdicts


def test_regret_is_exactly_zero_when_the_proxy_is_the_truth():
    pairs, targets = planted(3, pa="random")
    targets["oracle"] = targets["rouge1"]  # a per-target proxy equal to the generation quality
    res = selection_statistics(pairs, targets, ["oracle", "rm_acc"], n_boot=300)
    o = res["selection"].set_index("proxy").loc["oracle"]
    assert (o.regret_best, o.regret_best_lo, o.regret_best_hi) == (0.0, 0.0, 0.0)
    assert o.tau == pytest.approx(1.0) and o.selected == o.best_rm and o.regret_random > 0
    # the RM table's point values are the per-user, then over-users means
    rms = res["rms"].set_index("rm_id")
    g = targets[targets["rm_id"] == "r0"]
    assert rms.loc["r0", "rouge1"] == pytest.approx(g.groupby("user_id")["rouge1"].mean().mean())


def test_ties_are_the_mean_of_the_tied_rms():
    proxy = np.array([[0.7, 0.7 + 1e-12, 0.2], [0.1, 0.9, 0.9]])
    truth = np.array([[0.1, 0.3, 1.0], [1.0, 0.2, 0.4]])
    assert picked_value(proxy, truth) == pytest.approx([0.2, 0.3])


def test_the_bootstrap_resamples_users_then_their_pairs_and_targets_jointly():
    pair_users = ["a"] * 4 + ["b"] * 3 + ["c"] * 5 + ["d"] * 2
    target_users = ["a", "a", "b", "c", "c", "c", "d"]
    wp, wt, counts = joint_weights(pair_users, target_users, n_boot=500, seed=1)
    users = ["a", "b", "c", "d"]
    share_p = np.stack([wp[:, np.array(pair_users) == u].sum(1) for u in users], 1)
    share_t = np.stack([wt[:, np.array(target_users) == u].sum(1) for u in users], 1)
    # users first: a user's share of a replicate is its number of copies, the SAME in both sets
    assert np.allclose(share_p, counts / counts.sum(1, keepdims=True))
    assert np.allclose(share_p, share_t)
    assert np.allclose(wp.sum(1), 1) and np.allclose(wt.sum(1), 1)
    # then items within each drawn user: weights inside a user vary between replicates
    a = wp[:, :4] / np.maximum(share_p[:, :1], 1e-12)
    assert a[counts[:, 0] > 0].std(0).min() > 0.05
    # on average each replicate is the per-user-then-over-users mean
    assert np.allclose(wp.mean(0), point_weights(pair_users, users), atol=0.03)


def test_selection_statistics_refuses_missing_outcomes():
    pairs, targets = planted(0, n_rms=5, n_users=4)
    with pytest.raises(ValueError, match="'rm_acc' is missing"):
        selection_statistics(pairs[pairs["rm_id"] != "r2"], targets, ["rm_acc"], n_boot=10)


def test_finding4_branches_and_findings_reads_the_study5_tables(tmp_path):
    assert claim4(None, None)["verdict"] == "not measured"
    row, res = verdict(*planted(0), dataset="synthetic_preflamp")
    assert row["verdict"] == "not testable" and "not a real dataset" in row["this_run"]
    row, res = verdict(*planted(0))
    assert row["this_run"].startswith(f"{REAL}: diff ") and "40 RMs, 90 targets, 30 users" in row["this_run"]
    assert "; " not in row["this_run"]  # one part: the report's findings table keeps it on one row
    (tmp_path / "tables").mkdir()
    res["selection"].assign(system="bon", dataset=REAL).to_csv(tmp_path / "tables" / "study5_selection.csv")
    res["comparisons"].assign(system="bon", dataset=REAL).to_csv(
        tmp_path / "tables" / "study5_comparisons.csv"
    )
    table = findings(tables_dir=tmp_path / "tables")
    assert list(table["claim"].str[:2]) == ["1.", "2.", "3.", "4."]
    assert table.iloc[3]["verdict"] == "supported" and table.iloc[0]["verdict"] == "not measured"


def test_rm_selection_on_a_tiny_model(tiny_dir, tmp_path):
    from analysis.config.parse import load_config
    from analysis.studies import rm_selection
    from analysis.studies.cache import StudyCache
    from analysis.studies.datasets import user_tasks
    from analysis.studies.generations import shared_sample_bon
    from analysis.studies.models import get_model
    from analysis.studies.rm_policy import study1_inputs
    from analysis.studies.rms import feature_store, train_rm

    cfg = load_config(
        "embedded",
        {
            "policy_model": tiny_dir,
            "models": [tiny_dir],
            "seeds": [0],
            "budgets": [5, 30],
            "methods": ["shared_bt", "per_user_bt", "lore"],
            "w_values": [0.0, 1.0],
            "max_new_tokens": 4,
            "n_boot": 50,
            "threads": 1,
            "k": 3,
            "max_real_users": 4,
            "max_real_profile": 10,
            "pair_test_frac": 0.2,
            "datasets": [REAL],
            "dtype": "float32",
            "selection_n": 4,
            "selection_args_cells": 3,
        },
    )
    res = rm_selection(cfg, str(tmp_path), progress=False)
    rms, gens, sel, comps = res["rms"], res["generations"], res["selection"], res["comparisons"]
    tasks = user_tasks(cfg, "news_category")
    assert len(rms) == 3 * 2 and set(rms["dataset"]) == {REAL}
    bon = gens[gens["system"] == "bon"]
    assert len(bon) == len(rms) * len(tasks) and bon["sample"].between(0, 3).all()
    # ARGS for 3 cells: every method at the largest budget, seed 0
    args = gens[gens["system"] == "args"]
    assert set(args["rm_id"]) == {"shared_bt/s0/b30", "per_user_bt/s0/b30", "lore/s0/b30"}
    assert set(sel["system"]) == {"bon", "args"} and set(comps["system"]) == {"bon", "args"}
    # the embedded preset computes both policy-accuracy variants on the real dataset: both are proxies
    assert set(sel["proxy"]) == {"rm_acc", "policy_acc", "policy_acc_policy", "pa_gain", "reward_spread"}
    assert rms["rouge1_args"].notna().sum() == 3 and rms["rm_acc"].between(0, 1).all()
    # known answer: each RM's pick is what the shared best-of-n system of study 2 picks
    cache = StudyCache(str(tmp_path))
    model, tok = get_model(cfg)
    inputs = study1_inputs(cfg, REAL, cache)
    rm = train_rm(inputs.feats, "lore", 0, 5, cache, inputs.fkey, cfg.rm_bootstrap, budgets=[5, 30])
    fn = shared_sample_bon(cfg, feature_store(cfg, model, tok, cache), rm, 4, {}, cache)
    params = {"task": cfg.task, "max_new_tokens": cfg.max_new_tokens, "batch_size": cfg.batch_size}
    want = [o["text"] for o in fn(model, tok, tasks, params)]
    assert list(bon[bon["rm_id"] == "lore/s0/b5"]["text"]) == want
    # a second run reads the cache and gives the same frames
    again = rm_selection(cfg, str(tmp_path), progress=False)
    pd.testing.assert_frame_equal(again["generations"], gens)
    pd.testing.assert_frame_equal(again["selection"], sel)


def test_selection_settings_are_checked():
    from analysis.config.parse import load_config
    from analysis.errors import ConfigError

    with pytest.raises(ConfigError, match="config key 'selection_n': must be >= 1, got 0"):
        load_config("embedded", {"selection_n": 0})
    with pytest.raises(ConfigError, match="config key 'selection_args_cells': must be >= 0, got -1"):
        load_config("embedded", {"selection_args_cells": -1})
    assert (
        load_config("paper").selection_args_cells == 15 and load_config("embedded").selection_args_cells == 0
    )
