"""Offset-free RGD scoring (issue 11): a per-user constant added to any RM changes neither policy
accuracy (both variants, with and without length normalisation) nor ARGS output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.data.synthetic import make_synthetic_users, style_swap_pairs
from analysis.decoding.args import ArgsConfig, args_generate
from analysis.evaluation.policy_accuracy import PolicyAccuracyConfig, policy_accuracy, prepare_pa_data
from analysis.features.cache import pair_features
from analysis.rewards import OracleRM, make_reward_model

METHODS = ["shared_bt", "per_user_bt", "lore", "pal", "vpl", "oracle"]
PROMPTS = ["city council vote", "new film star", "why the storm hit", "river bridge"]


@pytest.fixture(scope="module")
def setup(tiny_lm):
    model, tok = tiny_lm
    data = make_synthetic_users(n_users=3, n_profile=(6, 6), n_test=2, seed=0)
    pairs = style_swap_pairs(data)
    feats = pair_features(model, tok, pairs, layer=-1, progress=False)
    test = [p for p in pairs if p.split != "train"]
    pa = prepare_pa_data(model, tok, test, layer=-1, k=4, progress=False)
    return model, tok, data, feats.subset("train"), pa


def _fit(method, data, train):
    if method == "oracle":
        return OracleRM.from_synthetic(data).fit(train)
    return make_reward_model(method, steps=30, seed=0).fit(train)


def _shifted(rm, train, offsets: dict, folder):
    """A copy of ``rm`` (saved and loaded) whose raw reward gains a per-user constant, normalisation refitted."""
    other = type(rm).load(rm.save(folder))
    if rm.method == "oracle":
        one = other._score_one
        other._score_one = lambda u, text: one(u, text) + offsets[u]
        return other.fit(train)
    c = torch.tensor([offsets[u] for u in other.users_])
    score = other._score
    other._score = lambda uidx, x: score(uidx, x) + c[uidx]
    return other.fit_reward_normalisation(train)


@pytest.mark.parametrize("method", METHODS)
def test_per_user_constant_changes_neither_policy_accuracy_nor_args(setup, method, tmp_path):
    model, tok, data, train, pa = setup
    rm = _fit(method, data, train)
    users = sorted(set(train.user_ids))
    offsets = {u: 7.0 * (i + 1) * (-1) ** i for i, u in enumerate(users)}  # 7, -14, 21
    shifted = _shifted(rm, train, offsets, tmp_path / method)
    # the shift is real: the raw rewards differ by the planted constants
    if method != "oracle":
        x = torch.randn(1, train.dim)
        uidx = rm._user_index([users[0]])
        with torch.no_grad():
            diff = float(shifted._score(uidx, x) - rm._score(uidx, x))
        assert diff == pytest.approx(offsets[users[0]], abs=1e-4)
    else:
        assert float(shifted._score_one(users[0], "some text")) == pytest.approx(
            float(rm._score_one(users[0], "some text")) + offsets[users[0]]
        )
    kw = dict(ws=(0.5, 2.0), n_boot=20)
    a, b = (policy_accuracy(r, pa, PolicyAccuracyConfig(**kw), tok=tok).per_pair for r in (rm, shifted))
    np.testing.assert_array_equal(a["correct"].to_numpy(), b["correct"].to_numpy())
    assert set(zip(a["variant"], a["length_norm"], strict=True)) == {
        ("score", False),
        ("score", True),
        ("policy", False),
        ("policy", True),
    }
    np.testing.assert_allclose(a["score_chosen"], b["score_chosen"], rtol=1e-4, atol=1e-3)
    us = [users[i % len(users)] for i in range(len(PROMPTS))]
    gen = dict(w=2.0, k=5, max_new_tokens=6, batch_size=4)
    ta = [o.tokens for o in args_generate(model, tok, rm, PROMPTS, us, ArgsConfig(**gen))]
    tb = [o.tokens for o in args_generate(model, tok, shifted, PROMPTS, us, ArgsConfig(**gen))]
    assert ta == tb


def test_centre_is_the_mean_training_reward_and_survives_save_load(setup, tmp_path):
    _, _, _, train, _ = setup
    rm = make_reward_model("per_user_bt", steps=30, seed=0).fit(train)
    r = torch.cat([rm.reward(train.user_ids, train.chosen), rm.reward(train.user_ids, train.rejected)])
    users = np.array(list(train.user_ids) * 2)
    for u in set(users):
        assert float(r[torch.from_numpy(users == u)].mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(r.std()) == pytest.approx(1.0, abs=0.05)  # unit spread of the centred rewards
    again = type(rm).load(rm.save(tmp_path / "rm"))
    assert torch.allclose(again.reward(train.user_ids, train.chosen), rm.reward(train.user_ids, train.chosen))
    raw = make_reward_model("per_user_bt", steps=30, seed=0, center_reward=False).fit(train)
    assert not torch.allclose(
        raw.reward(train.user_ids, train.chosen), rm.reward(train.user_ids, train.chosen)
    )
