"""What must still hold when SmolLM2 runs in bfloat16 (only when asked: ``dtype: auto`` is float32 on CPU).

In float32 the project's identities hold bit for bit or to 1e-4 (tests/test_features.py,
test_args_embedded.py, test_decoding_base.py). In bfloat16 the same sums computed in another order
(a padded batch, a KV cache, a full re-encode) round differently, so here each identity is checked
to bfloat16 precision. The tolerances are multiples of its unit U = 2^-8: an 8-bit significand
(7 stored), so one rounding changes a value by up to U/2 relative, and neighbouring bf16 numbers
are U to 2U relative apart. Each tolerance states what was measured (native AMX and emulated
bf16) and leaves 2-3x headroom. A bug these tests guard against (a wrong position, mask or
cache row) moves features and rewards by O(1) of their scale, far outside every tolerance.

Emulated bfloat16 (a CPU without AVX512-BF16/AMX, like CI's) is a few times slower than float32,
so the inputs are small. ``make test`` runs this file with ``ANALYSIS_CPU_BF16=1``.
"""

from __future__ import annotations

import pytest
import torch

from analysis.data.synthetic import make_synthetic_users, style_swap_pairs
from analysis.decoding.args import ArgsConfig, args_generate
from analysis.features.cache import pair_features
from analysis.features.passes import prefix_features, sequence_features
from analysis.models.loading import load_model, model_dtype, resolve_dtype
from analysis.models.tokens import encode_prompt
from analysis.rewards import make_reward_model

pytestmark = [pytest.mark.embedded, pytest.mark.bf16]

U = 2.0**-8  # bf16 unit of relative precision (8-bit significand): the spacing just above 1
# Features (last hidden state, after the final norm) computed in two orders: each of the 30 layers
# rounds the residual stream to bf16 and the roundings partly cancel. Measured: 0.7-1.4% of the
# largest feature for a padded batch, 2.2-2.6% for one pass vs per prefix (native and emulated
# bf16), i.e. 2-7 U; 16 U = 6.25% leaves more than 2x headroom.
FEATURE_TOL = 16 * U
# Rewards are normalised to unit standard deviation over the RM's training responses, so a
# reward's error is a linear read-out of the features' relative error: the same 16 U, in reward
# standard deviations (measured 0.003-0.026).
REWARD_TOL = 16 * U

PROMPTS = [
    "write a headline",
    "the city council said the budget vote will be today and more workers will strike",
    "a short tweet about solar power",
]
RESPONSES = [
    "city council vote",
    "why the market prices fell after the storm ?",
    "5 things you need to know about solar power today",
]
USERS = ["user00", "user01", "user02"]


def logprob_tol(max_logit: float) -> float:
    """Tolerance of a log-prob computed from bf16 logits whose largest magnitude is ``max_logit``.

    The logits are a read-out of the features and carry their rounding, and log_softmax(z)_y =
    z_y - logsumexp(z) adds the error of one logit to that of the largest ones. Measured: up to
    0.28 nats at logits up to 32 (about 2 U of the largest logit, native and emulated bf16); 8 U of
    it (0.94 nats at 30) leaves 3x headroom, while a wrong context moves log-probs by several nats.
    """
    return 8 * U * abs(max_logit)


@pytest.fixture(scope="module")
def smollm2_bf16():
    return load_model("smollm2-135m-instruct", dtype="bfloat16", threads=1)


@pytest.fixture(scope="module")
def rm(smollm2_bf16):
    """A per-user BT head trained on bf16 SmolLM2 features of synthetic style pairs (few steps)."""
    model, tok = smollm2_bf16
    pairs = style_swap_pairs(make_synthetic_users(n_users=3, n_profile=(4, 4), n_test=1, seed=0))
    return make_reward_model("per_user_bt", steps=40, seed=0).fit(
        pair_features(model, tok, pairs, progress=False)
    )


def test_bf16_when_asked_and_float32_by_auto(smollm2_bf16, monkeypatch):
    model, _ = smollm2_bf16
    assert all(p.dtype == torch.bfloat16 for p in model.parameters()) and model_dtype(model) == "bfloat16"
    monkeypatch.setenv("ANALYSIS_CPU_BF16", "1")  # a CPU with native bf16: auto is float32 there too
    assert resolve_dtype("auto", "cpu") == "float32"


def test_bf16_reward_alone_equals_reward_in_a_padded_batch(smollm2_bf16, rm):
    model, tok = smollm2_bf16
    both = sequence_features(model, tok, PROMPTS, RESPONSES)
    alone = torch.cat(
        [sequence_features(model, tok, PROMPTS[i : i + 1], RESPONSES[i : i + 1]) for i in range(3)]
    )
    assert float((both - alone).abs().max()) <= FEATURE_TOL * float(alone.abs().max())
    r_both, r_alone = rm.reward(USERS, both), rm.reward(USERS, alone)
    assert float((r_both - r_alone).abs().max()) <= REWARD_TOL
    assert float(r_alone.max() - r_alone.min()) > 4 * REWARD_TOL  # a row's mix-up would show


def test_bf16_one_pass_prefix_features_equal_per_prefix_passes(smollm2_bf16, rm):
    """The fast path of policy accuracy (one pass gives every prefix) against one forward per prefix."""
    model, tok = smollm2_bf16
    pf = prefix_features(model, tok, PROMPTS[:2], RESPONSES[:2], padding_side="left")
    for i in range(2):
        p_ids, r_ids = encode_prompt(tok, PROMPTS[i]), pf.response_ids[i].tolist()
        for t in range(1, len(r_ids) + 1):
            with torch.no_grad():
                out = model(torch.tensor([p_ids + r_ids[:t]]), output_hidden_states=True)
            h, logits = out.hidden_states[-1][0, -1].float(), out.logits[0, -2].float()
            assert float((h - pf.features[i][t - 1]).abs().max()) <= FEATURE_TOL * float(h.abs().max()), (
                i,
                t,
            )
            lp = float(torch.log_softmax(logits, -1)[r_ids[t - 1]])
            assert abs(lp - float(pf.logprobs[i][t - 1])) <= logprob_tol(float(logits.abs().max())), (i, t)
            r_one = float(rm.reward([USERS[i]], pf.features[i][t - 1][None])[0])
            assert abs(float(rm.reward([USERS[i]], h[None])[0]) - r_one) <= REWARD_TOL, (i, t)


@torch.no_grad()
def _reference_step(
    model, rm, user, ids: list[int], token: int, stops: set[int]
) -> tuple[float, float, float]:
    """Reference ARGS's numbers for one step (analysis.decoding.reference: no cache, no padding, one
    prompt), for a given token: (log pi(token | ids), r_u(ids + token), the largest |logit|)."""
    x = torch.tensor([ids])
    logits = model(x).logits[0, -1].float()
    lp = float(torch.log_softmax(logits, -1)[token])
    seq = x if token in stops else torch.tensor([ids + [token]])  # a stop token: the prefix's reward
    phi = model(seq, output_hidden_states=True).hidden_states[-1][:, -1].float()
    return lp, float(rm.reward([user], phi)[0]), float(logits.abs().max())


def test_bf16_cached_args_steps_equal_reference_steps(smollm2_bf16, rm):
    """Cached ARGS (3 prompts in one padded batch, KV cache, candidates on the cache) against
    reference ARGS's computation (one prompt, full re-encode) of each step it took: log-prob,
    reward and score of the chosen token agree within bf16 rounding at every step.

    The tokens themselves are compared on the same prefix, not as two free decodings: in bf16 two
    candidates within rounding of each other (a near-tie, also at the top-k boundary) may be
    ordered differently by the two computations, after which the decodings go apart; measured
    here, cached and reference ARGS split at token 1-6 of one or two of three prompts."""
    from analysis.decoding.base import stop_token_ids

    model, tok = smollm2_bf16
    prompts = [
        "Write a headline about a city council vote on the school budget.",
        "Hi",
        "Summarize in one sentence: the river flooded the old bridge after heavy rain.",
    ]
    w, stops = 4.0, set(stop_token_ids(model, tok))
    cached = args_generate(
        model, tok, rm, prompts, USERS, ArgsConfig(w=w, k=4, max_new_tokens=6, batch_size=3)
    )
    worst = {"logprob": 0.0, "reward": 0.0, "score": 0.0}
    for p, u, c in zip(prompts, USERS, cached, strict=True):
        ids = encode_prompt(tok, p)
        for t, v in enumerate(c.tokens):
            lp, r, max_logit = _reference_step(model, rm, u, ids + c.tokens[:t], v, stops)
            lp_tol = logprob_tol(max_logit)
            diffs = {
                "logprob": abs(c.step_logprobs[t] - lp),
                "reward": abs(c.step_rewards[t] - r),
                "score": abs(c.step_scores[t] - (lp + w * r)),
            }
            worst = {k: max(worst[k], d) for k, d in diffs.items()}
            assert diffs["logprob"] <= lp_tol and diffs["reward"] <= REWARD_TOL, (p, t, diffs)
            assert diffs["score"] <= lp_tol + w * REWARD_TOL, (p, t, diffs)
    print("largest cached - reference differences:", {k: round(d, 4) for k, d in worst.items()})
    greedy = args_generate(
        model, tok, rm, prompts, USERS, ArgsConfig(w=0.0, k=4, max_new_tokens=6, batch_size=3)
    )
    assert any(c.tokens != g.tokens for c, g in zip(cached, greedy, strict=True))  # the RM steers
