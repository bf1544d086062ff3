"""Policy accuracy (score / policy variants) against closed forms and brute force (issue 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.data.synthetic import make_synthetic_users, style_swap_pairs
from analysis.errors import ConfigError
from analysis.evaluation.policy_accuracy import (
    PolicyAccuracyConfig,
    policy_accuracy,
    prepare_pa_data,
    response_scores,
    step_rewards,
)
from analysis.features.cache import pair_features
from analysis.features.passes import select_hidden
from analysis.metrics.intervals import pairwise_accuracy, summarize_by_user
from analysis.models.tiny import build_tiny_model
from analysis.models.tokens import encode_prompt, encode_response
from analysis.rewards import OracleRM, make_reward_model
from analysis.rewards.evaluate import rm_accuracy, summarize_rm_accuracy


@pytest.fixture(scope="module")
def setup(tiny_lm):
    model, tok = tiny_lm
    data = make_synthetic_users(n_users=4, n_profile=(6, 6), n_test=1, seed=0)
    pairs = style_swap_pairs(data)
    feats = pair_features(model, tok, pairs, layer=-1, progress=False)
    rm = make_reward_model("per_user_bt", steps=60, seed=0).fit(feats.subset("train"))
    test = [p for p in pairs if p.split != "train"] + [p for p in pairs if p.split == "train"][:6]
    pa = prepare_pa_data(model, tok, test, layer=-1, k=5, progress=False)
    return model, tok, data, pairs, rm, test, pa


def _independent_logprob(model, tok, prompt, response) -> float:
    """sum_t log pi(y_t | x, y_{<t}) from one plain forward pass (no project feature code)."""
    p, r = encode_prompt(tok, prompt), encode_response(tok, response)
    with torch.no_grad():
        logits = model(torch.tensor([p + r])).logits[0].float()
    lp = torch.log_softmax(logits[len(p) - 1 : len(p) + len(r) - 1], -1)
    return float(lp.gather(-1, torch.tensor(r)[:, None]).sum()), len(r)


def test_w0_equals_base_ranking_accuracy(setup):
    model, tok, _, _, rm, test, pa = setup
    res = policy_accuracy(rm, pa, PolicyAccuracyConfig(ws=(0.0, 1.0), n_boot=200))
    for norm in (False, True):
        sc = {}
        for side in ("chosen", "rejected"):
            vals = [_independent_logprob(model, tok, p.prompt, getattr(p, side)) for p in test]
            sc[side] = np.array([s / n if norm else s for s, n in vals])
        expected = pairwise_accuracy(sc["chosen"], sc["rejected"])
        assert 0 < expected.mean() < 1  # a non-trivial case
        got = res.per_pair.query("variant == 'score' and w == 0 and length_norm == @norm")[
            "correct"
        ].to_numpy()
        np.testing.assert_array_equal(got, expected)
        row = res.summary.query("variant == 'score' and w == 0 and length_norm == @norm").iloc[0]
        assert row["mean"] == pytest.approx(
            summarize_by_user([p.user_id for p in test], expected, n_boot=200)["mean"]
        )


def test_policy_variant_full_vocab_w0_is_base_likelihood(tiny_lm):
    """With k = |V| every token is a candidate: log pi_RGD(y) at w = 0 is exactly log pi(y|x)."""
    model, tok = tiny_lm
    pairs = style_swap_pairs(make_synthetic_users(n_users=2, n_profile=(3, 3), n_test=1, seed=2))[:2]
    pa = prepare_pa_data(model, tok, pairs, k=model.config.vocab_size, progress=False)
    zero = torch.zeros_like(pa.chosen.logp)
    got = response_scores(pa.chosen, zero, torch.zeros_like(pa.chosen.cand_logp), 0.0, "policy")
    expected = [_independent_logprob(model, tok, p.prompt, p.chosen)[0] for p in pairs]
    assert got.tolist() == pytest.approx(expected, abs=1e-3)
    res = policy_accuracy(None, pa, PolicyAccuracyConfig(ws=(0.0,), n_boot=50))
    pol = res.per_pair.query("variant == 'policy'")["correct"].to_numpy()
    sco = res.per_pair.query("variant == 'score'")["correct"].to_numpy()
    np.testing.assert_array_equal(pol, sco)


def test_policy_variant_matches_brute_force(setup):
    """log pi_RGD(y) recomputed from scratch per step: C_t = topk ∪ {y_t}, features of x + y_{<t} v."""
    model, tok, _, _, rm, test, pa = setup
    rw = step_rewards(rm, pa)
    for i in (0, 3):
        p = test[i]
        P, R = encode_prompt(tok, p.prompt), encode_response(tok, p.chosen)
        for w, T in ((1.0, 1.0), (3.0, 0.5)):
            total = 0.0
            with torch.no_grad():
                for t in range(len(R)):
                    lp = torch.log_softmax(model(torch.tensor([P + R[:t]])).logits[0, -1].float(), -1)
                    cands = list(dict.fromkeys(lp.topk(5).indices.tolist() + [R[t]]))
                    out = model(torch.tensor([P + R[:t] + [v] for v in cands]), output_hidden_states=True)
                    r = rm.reward([p.user_id] * len(cands), select_hidden(out, -1)[:, -1])
                    s = (lp[cands] + w * r) / T
                    total += float(s[cands.index(R[t])] - torch.logsumexp(s, 0))
            ours = response_scores(pa.chosen, *rw["chosen"], w, "policy", T)[i]
            assert float(ours) == pytest.approx(total, abs=1e-3)


def test_score_variant_and_rm_accuracy_consistent_with_rm_issue(setup, two_level_sd):
    model, tok, _, pairs, rm, test, pa = setup
    res = policy_accuracy(rm, pa, PolicyAccuracyConfig(ws=(0.0, 0.5, 2.0), n_boot=200))
    # RM accuracy from the last prefix reward == the RM issue's rm_accuracy on sequence features
    feats = pair_features(model, tok, test, progress=False)
    ref = summarize_rm_accuracy(rm_accuracy(rm, feats), n_boot=200)
    assert res.rm_accuracy["mean"] == pytest.approx(ref["mean"])
    # score variant: sum_t log pi + w * sum_t r_u(x, y_{<=t}), with r from the stored prefix features
    rw = step_rewards(rm, pa)
    own, _ = rw["rejected"]
    n0 = int(pa.rejected.lengths[0])
    expect = float(pa.rejected.logp[:n0].sum() + 2.0 * own[:n0].sum())
    assert float(response_scores(pa.rejected, own, None, 2.0, "score")[0]) == pytest.approx(expect, rel=1e-6)
    assert float(own[n0 - 1]) == pytest.approx(
        float(rm.reward([test[0].user_id], feats.rejected[:1])[0]), abs=1e-4
    )
    # one call covers every (variant, norm, w); per-user rows add up
    assert len(res.summary) == 2 * 2 * 3
    assert set(res.summary.columns) >= {
        "variant",
        "length_norm",
        "w",
        "mean",
        "ci_low",
        "ci_high",
        "n_users",
        "n",
    }
    # each row's interval reflects the spread of its own per-pair outcomes (closed form)
    for row in res.summary.itertuples():
        g = res.per_pair[
            (res.per_pair.variant == row.variant)
            & (res.per_pair.length_norm == row.length_norm)
            & (res.per_pair.w == row.w)
        ]
        mean, sd = two_level_sd(g["user_id"], g["correct"])
        assert row.mean == pytest.approx(mean)
        if sd > 0:
            assert row.ci_low < row.mean < row.ci_high
            assert 0.6 < (row.ci_high - row.ci_low) / (2 * 1.96 * sd) < 1.4
    assert res.per_user.groupby(["variant", "length_norm", "w"]).n_pairs.sum().eq(len(test)).all()
    # w moves the answer: at large w the score variant follows the RM's per-pair preference
    big = policy_accuracy(rm, pa, PolicyAccuracyConfig(ws=(1e4,), variants=("score",), n_boot=50)).per_pair
    r_rej, r_cho = rw["rejected"][0], rw["chosen"][0]
    seg_sum = lambda d, r: torch.zeros(len(d.lengths)).index_add_(0, d.segment(), r)  # noqa: E731
    np.testing.assert_array_equal(
        big.query("not length_norm")["correct"].to_numpy(),
        pairwise_accuracy(seg_sum(pa.chosen, r_cho).numpy(), seg_sum(pa.rejected, r_rej).numpy()),
    )


def test_oracle_text_rm_large_w(setup):
    """The oracle prefers the user's own style: at large w the score variant ranks y_w first almost
    always; the policy variant's log-likelihoods (which follow the best-reward candidate of each
    step, not the reward itself) are checked value by value against a brute-force computation."""
    model, tok, data, _, _, test, _ = setup
    oracle = OracleRM.from_synthetic(data)
    pa = prepare_pa_data(model, tok, test, k=3, progress=False)
    res = policy_accuracy(oracle, pa, PolicyAccuracyConfig(ws=(0.0, 50.0), n_boot=50), tok=tok)
    assert res.rm_accuracy["mean"] > 0.9
    s = res.summary.set_index(["variant", "length_norm", "w"])["mean"]
    assert s[("score", True, 50.0)] > 0.8
    assert s[("score", True, 50.0)] > s[("score", True, 0.0)]
    # the policy variant's values with a text RM, brute-forced: at each step C_t = topk ∪ {y_t}
    # of a plain forward, each candidate scored by the oracle on the decoded text y_{<t} v
    for i in (0, 2):
        p = test[i]
        P, R = encode_prompt(tok, p.prompt), encode_response(tok, p.rejected)
        for w in (0.0, 50.0):
            total = 0.0
            with torch.no_grad():
                for t in range(len(R)):
                    lp = torch.log_softmax(model(torch.tensor([P + R[:t]])).logits[0, -1].float(), -1)
                    cands = list(dict.fromkeys(lp.topk(3).indices.tolist() + [R[t]]))
                    texts = [tok.decode(R[:t] + [v], skip_special_tokens=True) for v in cands]
                    r = torch.as_tensor(
                        oracle.reward_text([p.user_id] * len(cands), [p.prompt] * len(cands), texts)
                    ).float()
                    s_t = lp[cands] + w * r
                    total += float(s_t[cands.index(R[t])] - torch.logsumexp(s_t, 0))
            row = res.per_pair.query("variant == 'policy' and w == @w and not length_norm").iloc[i]
            assert row["pair_id"] == p.pair_id
            assert row["score_rejected"] == pytest.approx(total, abs=1e-3)
    with pytest.raises(ConfigError, match="tokenizer"):
        policy_accuracy(oracle, pa, PolicyAccuracyConfig(ws=(1.0,)))


def test_bad_inputs(setup):
    model, tok, _, _, rm, test, pa = setup
    with pytest.raises(ConfigError, match="w must be|every w"):
        policy_accuracy(rm, pa, PolicyAccuracyConfig(ws=(-1.0,)))
    with pytest.raises(ConfigError, match="variants"):
        policy_accuracy(rm, pa, PolicyAccuracyConfig(variants=("nope",)))
    with pytest.raises(ConfigError, match="k must"):
        prepare_pa_data(model, tok, test, k=0)
    score_only = prepare_pa_data(model, tok, test[:2], policy=False, progress=False)
    with pytest.raises(ConfigError, match="candidate data"):
        policy_accuracy(rm, score_only, PolicyAccuracyConfig(variants=("policy",)))
    other, other_tok = build_tiny_model("qwen2")
    with pytest.raises(ConfigError, match="prepare the data with the RM's backbone"):
        policy_accuracy(
            rm,
            prepare_pa_data(other, other_tok, test[:2], policy=False, progress=False),
            PolicyAccuracyConfig(variants=("score",)),
        )
    with pytest.warns(UserWarning, match="unseen"):
        res = policy_accuracy(rm, _relabel(pa, "stranger"), PolicyAccuracyConfig(ws=(1.0,), n_boot=20))
    assert res.summary["mean"].notna().all()


def _relabel(pa, user):
    import dataclasses

    return dataclasses.replace(pa, user_ids=[user] * len(pa.user_ids))
