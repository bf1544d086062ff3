"""best_of_n: keeps the highest-reward sample; same samples as the base sampler (issue 5)."""

from __future__ import annotations

import math

import pytest
import torch

from analysis.data.synthetic import make_synthetic_users, style_swap_pairs
from analysis.decoding.base import GenerationConfig, generate_sample
from analysis.decoding.best_of_n import (
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    BestOfNConfig,
    best_of_n,
    sample_base,
)
from analysis.errors import ConfigError
from analysis.features.cache import pair_features
from analysis.features.passes import sequence_features
from analysis.rewards import OracleRM, make_reward_model

PROMPTS = ["city council vote", "why the storm hit the river bridge"]


@pytest.fixture(scope="module")
def rm(tiny_lm):
    model, tok = tiny_lm
    pairs = style_swap_pairs(make_synthetic_users(n_users=3, n_profile=(6, 6), n_test=1, seed=0))
    return make_reward_model("per_user_bt", steps=40).fit(pair_features(model, tok, pairs, progress=False))


def test_keeps_argmax_of_feature_rm(tiny_lm, rm):
    model, tok = tiny_lm
    users = ["user00", "user01"]
    outs = best_of_n(model, tok, rm, PROMPTS, users, BestOfNConfig(n=4, max_new_tokens=6, seed=3))
    samples = generate_sample(
        model,
        tok,
        PROMPTS,
        GenerationConfig(max_new_tokens=6, temperature=DEFAULT_TEMPERATURE, top_p=DEFAULT_TOP_P),
        n=4,
        seed=3,
    )
    for o, s, u, p in zip(outs, samples, users, PROMPTS, strict=True):
        assert o.candidates == s
        assert o.reward == max(r for r in o.rewards if not math.isnan(r))
        assert o.text == s[o.rewards.index(o.reward)]
        ok = [c for c in s if c.strip()]
        f = sequence_features(model, tok, [p] * len(ok), ok)
        assert sorted(rm.reward([u] * len(ok), f).tolist()) == pytest.approx(
            sorted(r for r in o.rewards if not math.isnan(r)), abs=1e-4
        )
    again = best_of_n(
        model, tok, rm, PROMPTS, users, BestOfNConfig(n=4, max_new_tokens=6, seed=3, batch_size=3)
    )
    assert [o.text for o in again] == [o.text for o in outs]


def test_oracle_best_of_n_beats_average_sample(tiny_lm):
    model, tok = tiny_lm
    oracle = OracleRM.from_synthetic(styles={"q": "question", "t": "terse"})
    outs = best_of_n(model, tok, oracle, PROMPTS, ["q", "t"], BestOfNConfig(n=6, max_new_tokens=6))
    for o in outs:
        finite = [r for r in o.rewards if not math.isnan(r)]
        assert o.reward == max(finite) >= sum(finite) / len(finite)
        assert o.reward == pytest.approx(float(oracle.reward_text([o.user_id], [o.prompt], [o.text])[0]))
    assert any(max(o.rewards) > min(o.rewards) for o in outs)


def test_bad_inputs(tiny_lm, rm):
    model, tok = tiny_lm
    with pytest.raises(ConfigError, match="n must"):
        best_of_n(model, tok, rm, PROMPTS, ["user00", "user01"], BestOfNConfig(n=0))
    with pytest.raises(ConfigError, match="needs a reward model"):
        best_of_n(model, tok, None, PROMPTS, ["user00", "user01"])
    with pytest.raises(ConfigError, match="max_new_tokens"):
        best_of_n(model, tok, rm, PROMPTS, ["user00", "user01"], BestOfNConfig(max_new_tokens=0))
    with pytest.warns(UserWarning, match="unseen"):
        out = best_of_n(model, tok, rm, PROMPTS[:1], ["stranger"], BestOfNConfig(n=2, max_new_tokens=4))[0]
    assert torch.isfinite(torch.tensor(out.reward))


def test_documented_sampling_defaults():
    assert (DEFAULT_TEMPERATURE, DEFAULT_TOP_P) == (0.7, 0.9)
    cfg = BestOfNConfig()
    assert (cfg.temperature, cfg.top_p) == (0.7, 0.9)


def test_sampled_base_is_sample_zero_of_best_of_n_with_the_same_settings(tiny_lm, rm):
    """The fair reference: sample_base(seed) == best_of_n(seed).candidates[0] == best_of_n(n=1).text."""
    model, tok = tiny_lm
    users = ["user00", "user01"]
    base = sample_base(model, tok, PROMPTS, BestOfNConfig(max_new_tokens=6, seed=3))
    outs = best_of_n(model, tok, rm, PROMPTS, users, BestOfNConfig(n=4, max_new_tokens=6, seed=3))
    assert base == [o.candidates[0] for o in outs]
    one = best_of_n(model, tok, rm, PROMPTS, users, BestOfNConfig(n=1, max_new_tokens=6, seed=3))
    assert base == [o.text for o in one]
    assert base == [
        s[0]
        for s in generate_sample(
            model, tok, PROMPTS, GenerationConfig(max_new_tokens=6, temperature=0.7, top_p=0.9), n=1, seed=3
        )
    ]
    hot = sample_base(
        model, tok, PROMPTS, BestOfNConfig(max_new_tokens=6, seed=3, temperature=1.0, top_p=1.0)
    )
    assert hot == [
        s[0] for s in generate_sample(model, tok, PROMPTS, GenerationConfig(max_new_tokens=6), n=1, seed=3)
    ]
    assert sample_base(model, tok, PROMPTS, BestOfNConfig(max_new_tokens=6, seed=3, batch_size=1)) == base
    with pytest.raises(ConfigError, match="top_p"):
        sample_base(model, tok, PROMPTS, BestOfNConfig(top_p=0.0))


def test_sampled_base_uses_its_settings(tiny_lm):
    """Known answers: temperature -> 0, or top-p keeping only the top token, is greedy decoding."""
    from analysis.decoding.base import generate_greedy

    model, tok = tiny_lm
    greedy = generate_greedy(model, tok, PROMPTS, GenerationConfig(max_new_tokens=6))
    assert (
        sample_base(model, tok, PROMPTS, BestOfNConfig(max_new_tokens=6, temperature=1e-4, top_p=1.0))
        == greedy
    )
    assert (
        sample_base(model, tok, PROMPTS, BestOfNConfig(max_new_tokens=6, temperature=1.0, top_p=1e-6))
        == greedy
    )
