"""ARGS on the real embedded SmolLM2-135M-Instruct: cached == reference, w = 0 == greedy, oracle steering."""

from __future__ import annotations

import pytest
import torch

from analysis.data.synthetic import make_synthetic_users, style_swap_pairs
from analysis.data.tasks import zero_shot_prompt
from analysis.decoding.args import ArgsConfig, args_generate
from analysis.decoding.reference import reference_args
from analysis.features.cache import pair_features
from analysis.models.tokens import encode_prompt
from analysis.rewards import OracleRM, make_reward_model

pytestmark = pytest.mark.embedded

PROMPTS = [
    "Write a headline about a city council vote on the school budget.",
    "Hi",
    "Summarize in one sentence: the river flooded the old bridge after heavy rain, and the police closed the road.",
]


@pytest.fixture(scope="module")
def rm(smollm2):
    """A per-user BT head trained on SmolLM2 features of synthetic style pairs (few steps)."""
    model, tok = smollm2
    pairs = style_swap_pairs(make_synthetic_users(n_users=3, n_profile=(4, 4), n_test=1, seed=0))
    feats = pair_features(model, tok, pairs, progress=False)
    return make_reward_model("per_user_bt", steps=40, seed=0).fit(feats)


def test_cached_equals_reference_and_w0_is_greedy(smollm2, rm):
    model, tok = smollm2
    users = ["user00", "user01", "user02"]
    greedy = args_generate(
        model, tok, rm, PROMPTS, users, ArgsConfig(w=0.0, k=4, max_new_tokens=8, batch_size=3)
    )
    for p, g in zip(PROMPTS, greedy, strict=True):
        ids = torch.tensor([encode_prompt(tok, p)])
        hf = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=8)
        assert g.tokens == hf[0, ids.shape[1] :].tolist()[: len(g.tokens)]
    cached = args_generate(
        model, tok, rm, PROMPTS, users, ArgsConfig(w=4.0, k=4, max_new_tokens=8, batch_size=3)
    )
    single = args_generate(
        model, tok, rm, PROMPTS[:1], users[:1], ArgsConfig(w=4.0, k=4, max_new_tokens=8, batch_size=1)
    )
    ref = reference_args(model, tok, rm, PROMPTS, users, ArgsConfig(w=4.0, k=4, max_new_tokens=8))
    assert [c.tokens for c in cached] == [r.tokens for r in ref]
    assert single[0].tokens == ref[0].tokens
    # float32 (the fixture pins it), so tokens must be identical; the rewards carry float32 rounding
    # through 30 layers computed in two orders (KV cache vs full re-encode): within 1e-3. What holds
    # in bfloat16 instead (tokens equal up to near-ties): tests/test_bf16.py.
    assert next(model.parameters()).dtype == torch.float32
    tol = 1e-3
    for c, r in zip(cached, ref, strict=True):
        assert c.step_scores == pytest.approx(r.step_scores, abs=tol)
    assert any(c.tokens != g.tokens for c, g in zip(cached, greedy, strict=True))  # the RM steers


def test_oracle_large_w_beats_base(smollm2):
    """Text path: with the planted oracle and a large w, ARGS headlines match the user's style better.

    k = 40 (the original ARGS paper's other setting): SmolLM2's top-10 first tokens rarely hold a style
    marker (a quote mark, an all-caps kicker), so k = 10 moves only a few users.
    """
    model, tok = smollm2
    data = make_synthetic_users(n_users=7, n_profile=(2, 2), n_test=1, seed=0)
    oracle = OracleRM.from_synthetic(data)
    tasks = data.tasks
    users = [t.user_id for t in tasks]
    prompts = [zero_shot_prompt("news_headline", t.test_input) for t in tasks]
    base = args_generate(
        model, tok, None, prompts, users, ArgsConfig(w=0.0, k=40, max_new_tokens=12, batch_size=8)
    )
    steer = args_generate(
        model, tok, oracle, prompts, users, ArgsConfig(w=10.0, k=40, max_new_tokens=12, batch_size=8)
    )
    r_base = oracle.reward_text(users, prompts, [o.text for o in base])
    r_steer = oracle.reward_text(users, prompts, [o.text for o in steer])
    assert float(r_steer.mean()) > float(r_base.mean()) + 0.1
    assert int((r_steer > r_base).sum()) >= 2
