"""Prefix-consistent reward normalisation: the reward centre and scale come from every prefix of the
training responses (what ARGS and the score policy accuracy add up), known answers on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.data.synthetic import make_synthetic_users, style_swap_pairs
from analysis.evaluation.policy_accuracy import (
    PolicyAccuracyConfig,
    policy_accuracy,
    prefix_rows,
    prepare_pa_data,
)
from analysis.features.cache import pair_features
from analysis.rewards import FEATURE_METHODS, load_reward_model, make_reward_model
from analysis.rewards.evaluate import rm_accuracy


@pytest.fixture(scope="module")
def setup(tiny_lm):
    model, tok = tiny_lm
    data = make_synthetic_users(n_users=3, n_profile=(6, 6), n_test=2, seed=0)
    pairs = style_swap_pairs(data)
    feats = pair_features(model, tok, pairs, layer=-1, progress=False)
    train_pairs = [p for p in pairs if p.split == "train"]
    test_pairs = [p for p in pairs if p.split != "train"]
    prefixes = prefix_rows(prepare_pa_data(model, tok, train_pairs, layer=-1, policy=False, progress=False))
    test_pa = prepare_pa_data(model, tok, test_pairs, layer=-1, k=4, progress=False)
    return model, tok, feats.subset("train"), feats.subset("test"), prefixes, test_pa


def _user_stats(rm, prefixes):
    """Per-user means of the RM's rewards of ``prefixes`` and the pooled std of the centred rewards."""
    r = rm.reward(prefixes.user_ids, prefixes.feats).double().numpy()
    users = np.asarray(prefixes.user_ids)
    means = {u: float(r[users == u].mean()) for u in sorted(set(users))}
    return means, float(np.std(r, ddof=1))


def test_prefix_rows_cover_every_prefix_of_both_sides(setup):
    _, tok, train, _, prefixes, _ = setup
    assert len(prefixes) == len(prefixes.user_ids) and prefixes.feats.shape[1] == train.dim
    # one row per response token of the chosen and the rejected responses, users in pair order
    from analysis.models.tokens import encode_response

    n = sum(len(encode_response(tok, t)) for t in [*train.chosen_text, *train.rejected_text])
    assert len(prefixes) == n
    assert set(prefixes.user_ids) == set(train.user_ids)


@pytest.mark.parametrize("method", FEATURE_METHODS)
def test_prefix_rewards_are_centred_per_user_with_unit_pooled_std(setup, method):
    """Known answer of the new rule: on the training prefixes each user's mean reward is 0 and the
    pooled std of the centred rewards is 1; response-level normalisation does not give that."""
    _, _, train, _, prefixes, _ = setup
    rm = make_reward_model(method, steps=30, seed=0).fit(train, prefixes=prefixes)
    assert rm.fit_log_["reward_norm"] == "prefix" and rm.reward_norm == "prefix"
    assert rm.fit_log_["reward_norm_rows"] == len(prefixes)
    means, std = _user_stats(rm, prefixes)
    assert all(abs(m) < 1e-5 for m in means.values()), means
    assert std == pytest.approx(1.0, abs=1e-5)
    resp = make_reward_model(method, steps=30, seed=0).fit(train)
    assert resp.reward_norm == "response"
    means_r, std_r = _user_stats(resp, prefixes)
    # the two rules differ on the prefixes: that is what the prefix statistics fix
    assert abs(std_r - 1.0) > 1e-3 or max(abs(m) for m in means_r.values()) > 1e-3


@pytest.mark.parametrize("method", ["per_user_bt", "vpl"])
def test_prefix_rm_is_a_positive_scale_and_per_user_shift_of_the_response_rm(setup, method):
    """Same training, another centre and scale: RM accuracy per pair is unchanged, rewards map by a
    positive constant and a per-user shift."""
    _, _, train, test, prefixes, _ = setup
    pre = make_reward_model(method, steps=30, seed=0).fit(train, prefixes=prefixes)
    resp = make_reward_model(method, steps=30, seed=0).fit(train)
    a, b = rm_accuracy(pre, test), rm_accuracy(resp, test)
    np.testing.assert_array_equal(a["correct"].to_numpy(), b["correct"].to_numpy())
    x = torch.cat([test.chosen, test.rejected])
    users = list(test.user_ids) * 2
    rp, rr = pre.reward(users, x).double(), resp.reward(users, x).double()
    scale = resp.fit_log_["reward_scale"] / pre.fit_log_["reward_scale"]
    assert scale > 0
    for u in set(users):
        m = torch.tensor([v == u for v in users])
        shift = rp[m] - scale * rr[m]
        assert float(shift.max() - shift.min()) < 1e-4 * max(1.0, float(rp[m].abs().max()))


def test_w0_policy_accuracy_is_unchanged(setup):
    _, tok, train, _, prefixes, test_pa = setup
    pre = make_reward_model("per_user_bt", steps=30, seed=0).fit(train, prefixes=prefixes)
    resp = make_reward_model("per_user_bt", steps=30, seed=0).fit(train)
    cfg = PolicyAccuracyConfig(ws=(0.0, 1.0), n_boot=20)
    a, b = (policy_accuracy(r, test_pa, cfg, tok=tok).per_pair for r in (pre, resp))
    z = a["w"] == 0.0
    np.testing.assert_array_equal(a.loc[z, "correct"].to_numpy(), b.loc[z, "correct"].to_numpy())
    np.testing.assert_array_equal(a.loc[z, "score_chosen"].to_numpy(), b.loc[z, "score_chosen"].to_numpy())
    # at w = 1 the two rules are different scoring functions (the scale differs)
    assert not np.allclose(a.loc[~z, "score_chosen"].to_numpy(), b.loc[~z, "score_chosen"].to_numpy())


def test_loaded_rm_equals_saved_and_says_its_rule(setup, tmp_path):
    _, _, train, test, prefixes, _ = setup
    rm = make_reward_model("lore", steps=30, seed=0).fit(train, prefixes=prefixes)
    folder = rm.save(tmp_path / "rm")
    meta = json.loads((folder / "config.json").read_text())
    assert meta["reward_norm"] == "prefix" and meta["fit"]["reward_norm"] == "prefix"
    again = load_reward_model(folder)
    assert again.reward_norm == "prefix"
    assert torch.equal(again.reward(test.user_ids, test.chosen), rm.reward(test.user_ids, test.chosen))
    resp = make_reward_model("lore", steps=30, seed=0).fit(train)
    assert load_reward_model(resp.save(tmp_path / "resp")).reward_norm == "response"


def test_fit_budgets_pass_the_prefixes_to_every_budget(setup):
    _, _, train, _, prefixes, _ = setup
    multi = make_reward_model("shared_bt", seed=0).fit_budgets(train, None, [5, 20], prefixes)
    for b, rm in multi.items():
        alone = make_reward_model("shared_bt", seed=0, steps=b).fit(train, prefixes=prefixes)
        assert rm.reward_norm == "prefix" and alone.fit_log_ == rm.fit_log_
        x = prefixes.feats[:7]
        assert torch.equal(alone.reward(prefixes.user_ids[:7], x), rm.reward(prefixes.user_ids[:7], x))


def test_misaligned_prefix_rows_are_a_data_error(setup):
    from analysis.data.records import DataError
    from analysis.rewards.base import PrefixRows

    _, _, train, _, prefixes, _ = setup
    bad = PrefixRows(prefixes.user_ids[:-1], prefixes.feats)
    with pytest.raises(DataError, match="misaligned"):
        make_reward_model("shared_bt", steps=5).fit(train, prefixes=bad)


def test_reward_norm_is_a_validated_config_key_and_keys_the_rm_cache(setup, tmp_path):
    from analysis.config.algorithms import train_prefix_kwargs
    from analysis.config.parse import load_config
    from analysis.errors import ConfigError
    from analysis.studies.cache import StudyCache
    from analysis.studies.rms import train_rm

    assert load_config("embedded").reward_norm == "prefix"
    with pytest.raises(ConfigError, match="reward_norm"):
        load_config("embedded", {"reward_norm": "prefx"})
    assert train_prefix_kwargs(load_config("embedded", {"reward_norm": "response"})) is None
    assert train_prefix_kwargs(load_config("embedded"))["policy"] is False
    _, _, train, _, prefixes, _ = setup
    cache = StudyCache(str(tmp_path))
    feats = train  # train_rm trains on the train split of what it is given
    pre = train_rm(feats, "shared_bt", 0, 10, cache, "k", reward_norm="prefix", prefixes=lambda: prefixes)
    resp = train_rm(feats, "shared_bt", 0, 10, cache, "k", reward_norm="response")
    assert pre.study_key_ != resp.study_key_
    assert pre.reward_norm == "prefix" and resp.reward_norm == "response"
    # a cache hit reads the prefix RM back without needing the prefixes
    again = train_rm(feats, "shared_bt", 0, 10, cache, "k", reward_norm="prefix", prefixes=lambda: 1 / 0)
    assert again.reward_norm == "prefix" and again.study_key_ == pre.study_key_
    with pytest.raises(ValueError, match="prefixes"):
        train_rm(feats, "shared_bt", 0, 10, cache, "k", reward_norm="prefix")


def test_policy_acc_gain_known_answers():
    """Gain at w = 0 is exactly 0, and it is the difference of the two policy-accuracy columns."""
    from analysis.config.parse import load_config
    from analysis.studies.rm_policy import pa_column, policy_acc_gain, policy_acc_gain_table

    cfg = load_config("embedded_synthetic", {"n_boot": 200, "w_values": [0.0, 1.0]})
    rng = np.random.default_rng(0)
    users = [f"u{i % 4}" for i in range(40)]
    rows, pts = [], []
    for rm in ("a", "b"):
        c0 = rng.integers(0, 2, 40).astype(float)
        c1 = np.where(rng.random(40) < 0.3, 1.0 - c0, c0)
        if rm == "b":
            c1 = np.ones(40)  # every pair right at w = 1: a clear positive gain
        rows.append(
            pd.DataFrame(
                {
                    "dataset": "d",
                    "rm_id": rm,
                    "user_id": users,
                    "pair_id": [str(i) for i in range(40)],
                    pa_column("score", False, 0.0): c0,
                    pa_column("score", False, 1.0): c1,
                }
            )
        )
        for w, c in ((0.0, c0), (1.0, c1)):
            pa = pd.Series(c).groupby(users).mean().mean()
            pts.append(
                {
                    "dataset": "d",
                    "rm_id": rm,
                    "variant": "score",
                    "length_norm": False,
                    "w": w,
                    "policy_acc": pa,
                }
            )
    out = policy_acc_gain(pd.DataFrame(pts), pd.concat(rows, ignore_index=True), cfg)
    z = out[out["w"] == 0.0]
    assert (z["policy_acc_gain"] == 0).all() and (z["policy_acc_gain_lo"] == 0).all()
    assert (z["policy_acc_gain_hi"] == 0).all()
    for _, g in out.groupby("rm_id"):
        g = g.set_index("w")
        assert g.loc[1.0, "policy_acc_gain"] == pytest.approx(
            g.loc[1.0, "policy_acc"] - g.loc[0.0, "policy_acc"], abs=1e-12
        )
        assert (
            g.loc[1.0, "policy_acc_gain_lo"]
            <= g.loc[1.0, "policy_acc_gain"]
            <= g.loc[1.0, "policy_acc_gain_hi"]
        )
    b = out[(out["rm_id"] == "b") & (out["w"] == 1.0)].iloc[0]
    assert b["policy_acc_gain_lo"] > 0
    table = policy_acc_gain_table(out.assign(sensitivity=False))
    one = table[table["w"] == 1.0].iloc[0]
    assert one["n_rms"] == 2 and one["gain_above_0"] >= 0.5
    assert table[table["w"] == 0.0]["policy_acc_gain"].eq(0).all()


def test_training_prefix_pass_seeds_the_feature_store_with_the_feature_pass_features(
    tiny_lm, tmp_path, monkeypatch
):
    """Study 1 gets the training responses' RM features from their prefix pass (last position of
    each response): they equal an independent feature pass to float32 tolerance, and the
    feature pass over the pairs then has nothing left to compute."""
    from analysis.config.parse import load_config
    from analysis.features.cache import TextFeatureStore
    from analysis.studies.cache import StudyCache
    from analysis.studies.rm_policy import train_prefixes
    from analysis.studies.rms import feature_key, feature_store, features

    model, tok = tiny_lm
    pairs = style_swap_pairs(make_synthetic_users(n_users=3, n_profile=(6, 6), n_test=2, seed=1))
    train = [p for p in pairs if p.split == "train"]
    cfg = load_config("embedded_synthetic", {"batch_size": 4})
    cache = StudyCache(str(tmp_path))
    fkey = feature_key(cfg, model, tok, pairs)
    rows = train_prefixes(cfg, model, tok, pairs, cache, fkey)
    assert len(rows) > 2 * len(train)  # every prefix, not one row per response
    store = feature_store(cfg, model, tok, cache)
    seeded = store.get(
        [p.prompt for p in train] * 2, [p.chosen for p in train] + [p.rejected for p in train], progress=False
    )
    independent = pair_features(model, tok, train, layer=cfg.feature_layer, progress=False)
    torch.testing.assert_close(seeded, torch.cat([independent.chosen, independent.rejected]).float())
    # a fresh store (nothing seeded) computes the same features itself
    fresh = TextFeatureStore(tmp_path / "fresh", model, tok, store.spec)
    computed = fresh.get([p.prompt for p in train], [p.chosen for p in train], progress=False)
    torch.testing.assert_close(seeded[: len(train)], computed)
    calls = []
    orig = store.__class__.get

    def spy(self, prompts, responses, **kw):
        calls.append(sum(self.key(p, r) not in self.table for p, r in zip(prompts, responses, strict=True)))
        return orig(self, prompts, responses, **kw)

    monkeypatch.setattr(TextFeatureStore, "get", spy)
    features(cfg, model, tok, train, cache)
    assert calls == [0]  # every training response's feature came from the prefix pass
    # the same cached pass again: a cache hit, same rows
    again = train_prefixes(cfg, model, tok, pairs, cache, fkey)
    assert torch.equal(again.feats, rows.feats) and again.user_ids == rows.user_ids
    response = load_config("embedded_synthetic", {"reward_norm": "response"})
    assert train_prefixes(response, model, tok, pairs, cache, fkey) is None


def test_claim1_quotes_length_normalised_tau_and_median_gain_beside_the_verdict():
    from analysis.studies.findings import claim1

    base = {
        "dataset": "news_category_preflamp",
        "variant": "score",
        "w": 1.0,
        "p_value": 0.5,
        "n_rms": 80,
        "rel_rm": 0.9,
        "rel_policy": 0.9,
        "pa_mid_share": 0.8,
    }
    tau = pd.DataFrame(
        [
            {**base, "length_norm": False, "tau": 0.1, "tau_lo": -0.2, "tau_hi": 0.3},
            {**base, "length_norm": True, "tau": 0.55, "tau_lo": 0.45, "tau_hi": 0.65},
        ]
    )
    points = pd.DataFrame(
        {
            "dataset": "news_category_preflamp",
            "variant": "score",
            "length_norm": [False] * 4 + [True],
            "w": 1.0,
            "sensitivity": [False, False, False, True, False],
            "policy_acc_gain": [0.10, 0.20, 0.40, 9.0, 9.0],
            "policy_acc_gain_lo": [0.05, -0.1, 0.2, 9.0, 9.0],
        }
    )
    row = claim1(tau, 1.0, None, points)
    # the verdict is the headline's (inside (-0.4, 0.4)), not the length-normalised tau's (above 0.4)
    assert row["verdict"] == "supported"
    assert "length-normalised: tau=0.55 [0.45, 0.65]" in row["this_run"]
    # median over the 3 population RMs (sensitivity and length-normalised rows left out)
    assert "median +0.200 over 3 RMs (67% with 95% CI above 0)" in row["this_run"]
    assert "policy acc - policy acc at w=0" not in claim1(tau, 1.0)["this_run"]
    # the extra numbers stay inside the part's "<dataset>: <numbers> -> <verdict>" form, so the
    # report's findings table still gives the dataset its own row with the verdict
    from analysis.report.page import VERDICT_RE

    parts = row["this_run"].split("; ")
    assert all(VERDICT_RE.match(p) for p in parts), parts
    assert VERDICT_RE.match(parts[0])["verdict"] == "supported"


def test_study1_points_carry_the_gain_and_its_rms_the_prefix_rule(tmp_path):
    """End to end on a tiny model: every study-1 RM says ``prefix``, and ``points`` carry
    policy_acc_gain = policy_acc - policy_acc at w = 0 (exactly 0 at w = 0)."""
    from analysis.config.parse import load_config
    from analysis.models.tiny import build_tiny_model
    from analysis.studies import rm_vs_policy_accuracy

    path = tmp_path / "tiny-llama"
    model, tok = build_tiny_model("llama", seed=0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    cfg = load_config(
        "embedded_synthetic",
        {
            "policy_model": str(path),
            "models": [str(path)],
            "n_users": 3,
            "n_test_items": 1,
            "seeds": [0],
            "budgets": [5, 20],
            "methods": ["shared_bt", "per_user_bt"],
            "w_values": [0.0, 1.0],
            "n_boot": 50,
            "threads": 1,
            "k": 3,
            "preflamp_source": "synthetic",
            "datasets": ["synthetic_style_swap"],
            "dtype": "float32",
        },
    )
    with pytest.warns(UserWarning, match="unstable Kendall tau"):
        res = rm_vs_policy_accuracy(cfg, str(tmp_path / "cache"), progress=False)
    pts = res["points"]
    assert {"policy_acc_gain", "policy_acc_gain_lo", "policy_acc_gain_hi"} <= set(pts.columns)
    assert not any(c.startswith("policy_acc") for c in res["rms"].columns)
    keys = ["dataset", "rm_id", "variant", "length_norm"]
    zero = pts[pts["w"] == 0.0].set_index(keys)["policy_acc"]
    assert (pts.loc[pts["w"] == 0.0, "policy_acc_gain"] == 0).all()
    one = pts[pts["w"] == 1.0].set_index(keys)
    np.testing.assert_allclose(one["policy_acc_gain"], one["policy_acc"] - zero.loc[one.index], atol=1e-12)
    assert (one["policy_acc_gain_lo"] <= one["policy_acc_gain"] + 1e-12).all()
    folders = list((tmp_path / "cache").glob("studies/*/rms/*/config.json"))
    assert len(folders) == 2 * 2 + 2  # population + one raw-scale sensitivity RM per method
    assert {json.loads(f.read_text())["reward_norm"] for f in folders} == {"prefix"}
