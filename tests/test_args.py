"""Cached ARGS vs reference ARGS vs greedy on tiny random models (issue 5 known-answer tests)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from analysis.data.records import PreferencePair
from analysis.data.synthetic import make_synthetic_users, style_swap_pairs
from analysis.decoding.args import ArgsConfig, args_generate
from analysis.decoding.base import GenerationConfig
from analysis.decoding.reference import reference_args
from analysis.errors import ConfigError
from analysis.features.cache import pair_features
from analysis.features.passes import BackboneSpec
from analysis.models.loading import model_id
from analysis.models.tiny import build_tiny_model
from analysis.models.tokens import encode_prompt
from analysis.rewards import OracleRM, make_reward_model

PROMPTS = [
    "city council vote",
    "the storm hit the river bridge after the rain and police said the court will know more today",
    "why",
    "new film star",
]


class LinearRM:
    """Stand-in feature RM: r_u(phi) = a_u . phi with a large random head (rewards move tokens)."""

    method, input_kind = "linear", "features"

    def __init__(self, model, layer=-1, scale=3.0, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.users = ["u0", "u1", "u2", "u3"]
        self.a = torch.randn(len(self.users), model.config.hidden_size, generator=g) * scale
        self.backbone = BackboneSpec(model_id(model), layer=layer)

    def knows_user(self, u):
        return u in self.users

    def reward(self, users, feats):
        idx = torch.tensor([self.users.index(u) if u in self.users else 0 for u in users])
        return (feats * self.a[idx]).sum(-1)


@pytest.fixture(scope="module")
def tiny_models():
    return {arch: build_tiny_model(arch, seed=0) for arch in ("llama", "qwen2", "gpt2")}


@pytest.fixture(scope="module")
def trained_rm(tiny_lm):
    """A real per-user BT head trained on the tiny model's features of synthetic style pairs."""
    model, tok = tiny_lm
    pairs = style_swap_pairs(make_synthetic_users(n_users=4, n_profile=(8, 8), n_test=1, seed=0))
    feats = pair_features(model, tok, pairs, layer=-1, progress=False)
    return make_reward_model("per_user_bt", steps=60, seed=0).fit(feats.subset("train"))


def _users(rm, n):
    users = getattr(rm, "users_", None) or rm.users
    return [users[i % len(users)] for i in range(n)]


def _hf_greedy(model, tok, prompt, n):
    ids = torch.tensor([encode_prompt(tok, prompt)])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=n,
        pad_token_id=tok.pad_token_id,
    )
    return out[0, ids.shape[1] :].tolist()


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_w0_emits_hf_greedy_tokens(tiny_models, arch):
    model, tok = tiny_models[arch]
    rm = LinearRM(model)
    outs = args_generate(
        model, tok, rm, PROMPTS, _users(rm, 4), ArgsConfig(w=0.0, k=5, max_new_tokens=10, batch_size=4)
    )
    for p, o in zip(PROMPTS, outs, strict=True):
        assert o.tokens == _hf_greedy(model, tok, p, 10)[: len(o.tokens)]
        assert len(o.tokens) == 10 or o.finished


def test_w0_matches_base_generate_greedy(tiny_lm, trained_rm):
    from analysis.decoding.base import generate_greedy

    model, tok = tiny_lm
    outs = args_generate(
        model, tok, trained_rm, PROMPTS, _users(trained_rm, 4), ArgsConfig(w=0.0, k=10, max_new_tokens=8)
    )
    assert [o.text.strip() for o in outs] == generate_greedy(
        model, tok, PROMPTS, GenerationConfig(max_new_tokens=8)
    )


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_cached_equals_reference(tiny_models, arch, batch_size):
    model, tok = tiny_models[arch]
    rm = LinearRM(model)
    users = _users(rm, 4)
    greedy = args_generate(
        model, tok, rm, PROMPTS, users, ArgsConfig(w=0.0, k=5, max_new_tokens=10, batch_size=batch_size)
    )
    for w in (1.0, 5.0):
        cached = args_generate(
            model, tok, rm, PROMPTS, users, ArgsConfig(w=w, k=5, max_new_tokens=10, batch_size=batch_size)
        )
        ref = reference_args(model, tok, rm, PROMPTS, users, ArgsConfig(w=w, k=5, max_new_tokens=10))
        for c, r in zip(cached, ref, strict=True):
            assert c.tokens == r.tokens
            assert c.step_scores == pytest.approx(r.step_scores, abs=1e-3)
            assert c.step_rewards == pytest.approx(r.step_rewards, abs=1e-3)
    # the reward really steers decoding, so equality above is not the trivial greedy case
    assert any(c.tokens != g.tokens for c, g in zip(cached, greedy, strict=True))


@pytest.mark.parametrize(("w", "k"), [(0.5, 2), (2.0, 9)])
def test_cached_equals_independent_reference_padded_batch(tiny_lm, w, k):
    """Prompts of different lengths in one left-padded batch of 3 (and a batch of 1 after it),
    greedy and sampling: the cached path equals the reference, which recomputes everything from
    scratch and shares no helper with it, token for token (scores and log-probs too)."""
    model, tok = tiny_lm
    rm = LinearRM(model, scale=2.0, seed=1)
    users = _users(rm, 4)
    for kw in (dict(mode="greedy"), dict(mode="sample", temperature=1.3, seed=11)):
        cached = args_generate(
            model, tok, rm, PROMPTS, users, ArgsConfig(w=w, k=k, max_new_tokens=7, batch_size=3, **kw)
        )
        ref = reference_args(model, tok, rm, PROMPTS, users, ArgsConfig(w=w, k=k, max_new_tokens=7, **kw))
        _same_outputs(cached, ref, abs=1e-3)


def test_first_sampled_token_follows_softmax_of_scores_over_temperature(tiny_lm):
    """Sample mode draws from softmax(s / T): over 2000 draws (one per prompt generator) the first
    token's frequencies fit the distribution of step scores s computed here from the definition
    (log-softmax of the policy + w x the RM on each candidate's own forward) at T = 0.7 and 2,
    and a chi-square test rejects the distribution of the other temperature (so the check has
    power against ignoring or inverting T)."""
    from scipy import stats

    model, tok = tiny_lm
    rm = LinearRM(model, scale=1.0)
    prompt, w, k, n = PROMPTS[0], 0.2, 5, 2000
    ids = encode_prompt(tok, prompt)
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].double(), -1)
        top_lp, cand = lp.topk(k)
        out = model(input_ids=torch.tensor([ids + [int(v)] for v in cand]), output_hidden_states=True)
        r = (out.hidden_states[-1][:, -1].double() * rm.a[0].double()).sum(-1)
    s = top_lp + w * r
    expected = {}
    for T in (0.7, 2.0):
        outs = args_generate(
            model,
            tok,
            rm,
            [prompt] * n,
            ["u0"] * n,
            ArgsConfig(w=w, k=k, max_new_tokens=1, mode="sample", temperature=T, seed=5, batch_size=n),
        )
        first = [o.tokens[0] for o in outs]
        counts = np.array([first.count(int(v)) for v in cand])
        assert counts.sum() == n  # every draw is one of the k candidates
        expected[T] = (torch.softmax(s / T, -1).numpy() * n, counts)
    for T, other in ((0.7, 2.0), (2.0, 0.7)):
        e, counts = expected[T]
        assert stats.chisquare(counts, e).pvalue > 1e-3
        assert stats.chisquare(counts, expected[other][0]).pvalue < 1e-6
        e1 = torch.softmax(s, -1).numpy() * n  # T ignored
        assert stats.chisquare(counts, e1).pvalue < 1e-6


def test_cached_equals_reference_trained_rm_and_inner_layer(tiny_lm):
    model, tok = tiny_lm
    pairs = style_swap_pairs(make_synthetic_users(n_users=3, n_profile=(6, 6), n_test=1, seed=1))
    rm = make_reward_model("shared_bt", steps=40, seed=0).fit(
        pair_features(model, tok, pairs, layer=1, progress=False)
    )
    assert rm.backbone.layer == 1
    users = ["user00", "user01", "user02", "user00"]
    cached = args_generate(
        model, tok, rm, PROMPTS, users, ArgsConfig(w=3.0, k=6, max_new_tokens=8, batch_size=4)
    )
    ref = reference_args(model, tok, rm, PROMPTS, users, ArgsConfig(w=3.0, k=6, max_new_tokens=8))
    assert [c.tokens for c in cached] == [r.tokens for r in ref]
    # the final reward is r_u(x, y) of the generated response = the RM on the features (layer 1)
    # of its last token
    # computed here from the generated ids themselves (no decode/re-encode round trip, which may
    # tokenize differently), so the check always runs
    for o, u, p in zip(cached, users, PROMPTS, strict=True):
        body = o.tokens[:-1] if o.finished else o.tokens
        ids = torch.tensor([encode_prompt(tok, p) + body])
        with torch.no_grad():
            h = model(input_ids=ids, output_hidden_states=True).hidden_states[1][:, -1].float()
        assert o.reward == pytest.approx(float(rm.reward([u], h)[0]), abs=1e-3)


def test_sampling_reproducible_and_batch_independent(tiny_lm):
    model, tok = tiny_lm
    rm = LinearRM(model)
    users = _users(rm, 4)
    kw = dict(w=0.1, k=6, max_new_tokens=10, mode="sample", temperature=2.0)
    a = args_generate(model, tok, rm, PROMPTS, users, ArgsConfig(seed=7, batch_size=4, **kw))
    b = args_generate(model, tok, rm, PROMPTS, users, ArgsConfig(seed=7, batch_size=4, **kw))
    c = args_generate(model, tok, rm, PROMPTS, users, ArgsConfig(seed=7, batch_size=1, **kw))
    d = args_generate(model, tok, rm, PROMPTS, users, ArgsConfig(seed=8, batch_size=4, **kw))
    r = reference_args(model, tok, rm, PROMPTS, users, ArgsConfig(seed=7, **kw))
    toks = lambda outs: [o.tokens for o in outs]  # noqa: E731
    assert toks(a) == toks(b) == toks(c) == toks(r)
    assert toks(a) != toks(d)
    greedy = args_generate(model, tok, rm, PROMPTS, users, ArgsConfig(w=0.1, k=6, max_new_tokens=10))
    assert toks(a) != toks(greedy)


def test_stop_token_ends_response(tiny_lm):
    model, tok = tiny_lm
    rm = LinearRM(model)
    first = args_generate(model, tok, rm, PROMPTS[:1], ["u0"], ArgsConfig(w=1.0, k=5, max_new_tokens=10))[0]
    stop = first.tokens[3]
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    try:
        outs = args_generate(
            model, tok, rm, PROMPTS[:2], ["u0", "u1"], ArgsConfig(w=1.0, k=5, max_new_tokens=10, batch_size=2)
        )
        ref = reference_args(
            model, tok, rm, PROMPTS[:2], ["u0", "u1"], ArgsConfig(w=1.0, k=5, max_new_tokens=10)
        )
    finally:
        model.generation_config.eos_token_id = old
    o = outs[0]
    assert o.finished and o.tokens == first.tokens[: first.tokens.index(stop) + 1]
    assert o.reward == o.step_rewards[-2]  # r_u(x, y) of the response without the stop token
    assert len(o.step_scores) == len(o.step_rewards) == len(o.tokens)
    assert [x.tokens for x in outs] == [x.tokens for x in ref]
    assert len(outs[1].tokens) > len(o.tokens)  # row 0 left the batch while row 1 went on


def test_rows_leaving_the_batch_keep_the_others_exact(tiny_lm):
    """A row that stops is dropped from the batch and the cache; the other rows (and their
    per-prompt sampling generators) must go on exactly as when decoded alone."""
    model, tok = tiny_lm
    rm = LinearRM(model)
    users = _users(rm, 4)
    kw = dict(w=0.5, k=5, max_new_tokens=10, mode="sample", temperature=1.5, seed=3)
    alone = args_generate(model, tok, rm, PROMPTS, users, ArgsConfig(batch_size=1, **kw))
    stop = alone[2].tokens[2]  # a token that ends at least one row early
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    try:
        alone = args_generate(model, tok, rm, PROMPTS, users, ArgsConfig(batch_size=1, **kw))
        batched = args_generate(model, tok, rm, PROMPTS, users, ArgsConfig(batch_size=4, **kw))
        ref = reference_args(model, tok, rm, PROMPTS, users, ArgsConfig(**kw))
    finally:
        model.generation_config.eos_token_id = old
    lengths = [len(o.tokens) for o in alone]
    assert min(lengths) < max(lengths)  # rows did leave the batch at different steps
    assert [o.tokens for o in batched] == [o.tokens for o in alone] == [o.tokens for o in ref]
    for a, b in zip(alone, batched, strict=True):
        assert b.step_rewards == pytest.approx(a.step_rewards, abs=1e-4)


def test_text_path_oracle_cached_equals_reference_and_raises_reward(tiny_lm):
    model, tok = tiny_lm
    oracle = OracleRM.from_synthetic(styles={"q": "question", "t": "terse", "l": "listicle"})
    prompts, users = PROMPTS[:3], ["q", "t", "l"]
    base = args_generate(model, tok, None, prompts, users, ArgsConfig(w=0.0, k=10, max_new_tokens=6))
    steer = args_generate(
        model, tok, oracle, prompts, users, ArgsConfig(w=20.0, k=10, max_new_tokens=6, batch_size=3)
    )
    ref = reference_args(model, tok, oracle, prompts, users, ArgsConfig(w=20.0, k=10, max_new_tokens=6))
    assert [o.tokens for o in steer] == [o.tokens for o in ref]
    r_base = oracle.reward_text(users, prompts, [o.text for o in base])
    r_steer = oracle.reward_text(users, prompts, [o.text for o in steer])
    assert float(r_steer.mean()) > float(r_base.mean())


def test_bad_inputs(tiny_lm, tiny_models):
    model, tok = tiny_lm
    rm = LinearRM(model)
    for kw, msg in [
        ({"k": 0}, "k must"),
        ({"w": -1.0}, "w must"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"mode": "beam"}, "mode"),
        ({"w": float("nan")}, "w must"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            args_generate(model, tok, rm, PROMPTS[:1], ["u0"], ArgsConfig(**kw))
    with pytest.raises(ConfigError, match="needs a reward model"):
        args_generate(model, tok, None, PROMPTS[:1], ["u0"], ArgsConfig(w=1.0))
    with pytest.raises(ConfigError, match="prompts but"):
        args_generate(model, tok, rm, PROMPTS[:2], ["u0"])
    other, other_tok = tiny_models["qwen2"]
    with pytest.raises(ConfigError, match="trained on features of"):
        args_generate(other, other_tok, rm, PROMPTS[:1], ["u0"], ArgsConfig(w=1.0))
    with pytest.raises(ConfigError, match="trained on features of"):
        reference_args(other, other_tok, rm, PROMPTS[:1], ["u0"], ArgsConfig(w=1.0))


def test_unknown_user_gets_documented_fallback(tiny_lm, trained_rm):
    model, tok = tiny_lm
    with pytest.warns(UserWarning, match="unseen by the reward model"):
        outs = args_generate(
            model,
            tok,
            trained_rm,
            PROMPTS[:2],
            ["nobody", "user00"],
            ArgsConfig(w=1.0, k=5, max_new_tokens=5),
        )
    assert all(math.isfinite(r) for o in outs for r in o.step_rewards)
    strict = make_reward_model("per_user_bt", steps=5, unknown_user="error")
    strict.fit(pair_features(model, tok, [PreferencePair("a", "p", "x y", "y x")], progress=False))
    with pytest.raises(ValueError, match="no training pairs"), pytest.warns(UserWarning):
        args_generate(model, tok, strict, PROMPTS[:1], ["nobody"], ArgsConfig(w=1.0, k=3, max_new_tokens=3))


def test_cli_generate_and_policy_acc(tmp_path, capsys):
    from analysis.cli import main
    from analysis.data.preferences import write_preferences
    from analysis.models.loading import load_model

    model, tok = build_tiny_model("llama", seed=3)
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    model, tok = load_model(str(tmp_path / "lm"), dtype="float32")  # the CLI's `auto`: float32 on CPU
    pairs = style_swap_pairs(make_synthetic_users(n_users=3, n_profile=(6, 6), n_test=1, seed=0))
    rm = make_reward_model("per_user_bt", steps=30).fit(pair_features(model, tok, pairs, progress=False))
    rm.save(tmp_path / "rm")
    write_preferences(tmp_path / "prefs.jsonl", pairs)
    inp = tmp_path / "prompts.jsonl"
    inp.write_text(
        "\n".join(
            json.dumps({"user_id": u, "prompt": p})
            for u, p in [("user00", "city council vote"), ("user01", "why")]
        )
        + "\n"
    )
    out = tmp_path / "gens.jsonl"
    rc = main(
        [
            "generate",
            "--rm",
            str(tmp_path / "rm"),
            "--input",
            str(inp),
            "--out",
            str(out),
            "--w",
            "0,2",
            "--k",
            "4",
            "--max-new-tokens",
            "5",
        ]
    )
    assert rc == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 4 and {r["params"]["w"] for r in rows} == {0.0, 2.0}
    assert set(rows[0]) >= {"user_id", "prompt", "method", "params", "text", "reward"}
    direct = args_generate(
        model, tok, rm, ["city council vote"], ["user00"], ArgsConfig(w=2.0, k=4, max_new_tokens=5)
    )[0]
    assert rows[2]["text"] == direct.text
    rc = main(
        [
            "policy-acc",
            "--rm",
            str(tmp_path / "rm"),
            "--pairs",
            str(tmp_path / "prefs.jsonl"),
            "--split",
            "all",
            "--ws",
            "0,1",
            "--k",
            "3",
            "--n-boot",
            "50",
            "--out",
            str(tmp_path / "pa"),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "RM accuracy" in text and "policy accuracy (policy, per-token)" in text
    assert (tmp_path / "pa" / "policy_accuracy.json").exists()
    assert (
        main(["generate", "--rm", str(tmp_path / "rm"), "--input", str(inp), "--out", str(out), "--k", "0"])
        == 2
    )
    assert "error: k must" in capsys.readouterr().err


def test_separate_backbone_rm_goes_through_text_path(tiny_lm, tiny_models):
    """An RM on another model's features scores decoded candidate texts via its featurizer."""
    from analysis.features.passes import TextFeaturizer

    model, tok = tiny_lm
    enc, enc_tok = tiny_models["qwen2"]
    pairs = style_swap_pairs(make_synthetic_users(n_users=3, n_profile=(6, 6), n_test=1, seed=0))
    rm = make_reward_model("per_user_bt", steps=40).fit(
        pair_features(enc, enc_tok, pairs, kind="separate", progress=False)
    )
    with pytest.raises(ConfigError, match="attach its featurizer"):
        args_generate(model, tok, rm, PROMPTS[:1], ["user00"], ArgsConfig(w=1.0))
    rm.attach_featurizer(TextFeaturizer(enc, enc_tok, rm.backbone))
    users = ["user00", "user01", "user02"]
    cached = args_generate(
        model, tok, rm, PROMPTS[:3], users, ArgsConfig(w=50.0, k=5, max_new_tokens=6, batch_size=3)
    )
    ref = reference_args(model, tok, rm, PROMPTS[:3], users, ArgsConfig(w=50.0, k=5, max_new_tokens=6))
    greedy = args_generate(model, tok, None, PROMPTS[:3], users, ArgsConfig(w=0.0, max_new_tokens=6))
    assert [c.tokens for c in cached] == [r.tokens for r in ref]
    assert any(c.tokens != g.tokens for c, g in zip(cached, greedy, strict=True))
    o = cached[0]
    direct = rm.reward_text(["user00"], [PROMPTS[0]], [o.text])
    assert o.step_rewards[-1] == pytest.approx(float(direct[0]), abs=1e-4)


class StopLoverRM(LinearRM):
    """A head aligned with the hidden state AT the stop token: scoring a stop candidate from its own
    hidden state (the old fast path) makes it win at once; the prefix rule does not."""

    def __init__(self, model, tok, prompt):
        super().__init__(model)
        from analysis.features.passes import select_hidden

        ids = torch.tensor([encode_prompt(tok, prompt) + [tok.eos_token_id]])
        with torch.no_grad():
            h = select_hidden(model(input_ids=ids, output_hidden_states=True), -1)[0, -1].float()
        self.a = (h / h.norm() * 5.0).expand(len(self.users), -1).clone()


def test_stop_candidate_scored_as_the_prefix_on_fast_and_reference_paths(tiny_lm):
    model, tok = tiny_lm
    prompt = PROMPTS[0]
    rm = StopLoverRM(model, tok, prompt)
    kw = dict(w=50.0, k=tok.vocab_size, max_new_tokens=6)
    fast = args_generate(model, tok, rm, [prompt], ["u0"], ArgsConfig(batch_size=1, **kw))[0]
    ref = reference_args(model, tok, rm, [prompt], ["u0"], ArgsConfig(**kw))[0]
    assert fast.tokens == ref.tokens and fast.finished == ref.finished
    assert fast.step_rewards == pytest.approx(ref.step_rewards, abs=1e-3)
    # the stop token's own hidden state would give it reward ~5 |h| and stop at step 1; scored as
    # the (empty) prefix it does not win the first step
    assert fast.tokens[0] != tok.eos_token_id
    # a decoding that surely stops: at w = 0 the tokens are the greedy ones, so making its third
    # token a stop id ends it there; the stop step carries the reward of the prefix before it
    greedy = args_generate(model, tok, rm, [prompt], ["u0"], ArgsConfig(w=0.0, k=5, max_new_tokens=6))[0]
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, greedy.tokens[2]]
    try:
        both = [
            f(model, tok, rm, [prompt], ["u0"], ArgsConfig(w=0.0, k=5, max_new_tokens=6))[0]
            for f in (args_generate, reference_args)
        ]
    finally:
        model.generation_config.eos_token_id = old
    ids = torch.tensor([encode_prompt(tok, prompt) + greedy.tokens[:2]])
    with torch.no_grad():
        h = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][:, -1].float()
    for o in both:
        assert o.finished and o.tokens == greedy.tokens[:3]
        assert o.step_rewards[-1] == pytest.approx(o.step_rewards[-2], abs=1e-4)
        assert o.step_rewards[-1] == pytest.approx(float(rm.reward(["u0"], h)[0]), abs=1e-3)
        assert o.reward == pytest.approx(o.step_rewards[-2], abs=1e-6)


def test_text_path_scores_a_stop_candidate_as_the_prefix(tiny_lm):
    """A non-special stop id would be decoded into the text; the rule drops it on both paths."""
    from analysis.decoding.args import text_rewards

    model, tok = tiny_lm
    oracle = OracleRM.from_synthetic(styles={"q": "question"})
    stop = tok("?", add_special_tokens=False).input_ids[-1]
    prefix = tok("why is it", add_special_tokens=False).input_ids
    cands = torch.tensor([[stop, prefix[0]]])
    r = text_rewards(oracle, tok, ["q"], ["p"], [prefix], cands, {stop})
    bare = oracle.reward_text(["q"], ["p"], [tok.decode(prefix, skip_special_tokens=True)])
    assert float(r[0, 0]) == pytest.approx(float(bare[0]))
    with_q = text_rewards(oracle, tok, ["q"], ["p"], [prefix], cands)
    assert float(with_q[0, 0]) != pytest.approx(float(bare[0]))  # "?" itself would raise the reward
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    try:
        kw = dict(w=20.0, k=10, max_new_tokens=6)
        fast = args_generate(model, tok, oracle, ["why"], ["q"], ArgsConfig(**kw))[0]
        ref = reference_args(model, tok, oracle, ["why"], ["q"], ArgsConfig(**kw))[0]
    finally:
        model.generation_config.eos_token_id = old
    assert fast.tokens == ref.tokens and fast.step_rewards == pytest.approx(ref.step_rewards)


def _same_outputs(a, b, abs=1e-4):
    assert [o.tokens for o in a] == [o.tokens for o in b]
    for x, y in zip(a, b, strict=True):
        assert x.finished == y.finished and x.text == y.text
        assert x.step_scores == pytest.approx(y.step_scores, abs=abs)
        assert x.step_logprobs == pytest.approx(y.step_logprobs, abs=abs)
        assert x.step_rewards == pytest.approx(y.step_rewards, abs=abs)
        assert (math.isnan(x.reward) and math.isnan(y.reward)) or x.reward == pytest.approx(y.reward, abs=abs)


@pytest.mark.parametrize("mode", ["greedy", "sample"])
def test_multi_rm_args_equals_one_run_per_rm(tiny_lm, mode):
    """ARGS with several RMs at once (shared cache rows while their tokens agree, split when they
    differ) gives each RM exactly its own ARGS run: tokens, scores, rewards; with a stop token that
    ends some decodings early, in both modes and with batches smaller than the prompt list."""
    from analysis.decoding.args import args_generate_multi

    model, tok = tiny_lm
    # the same head at two scales agrees on some steps and not on others; a third RM differs
    rms = [LinearRM(model, scale=1.0, seed=0), LinearRM(model, scale=3.0, seed=0), LinearRM(model, seed=5)]
    users = _users(rms[0], 4)
    kw = dict(w=1.0, k=5, max_new_tokens=10, mode=mode, temperature=1.5, seed=3)
    first = args_generate(model, tok, rms[1], PROMPTS, users, ArgsConfig(batch_size=4, **kw))
    stop = first[1].tokens[2]
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    try:
        alone = [args_generate(model, tok, rm, PROMPTS, users, ArgsConfig(batch_size=4, **kw)) for rm in rms]
        multi = args_generate_multi(model, tok, rms, PROMPTS, users, ArgsConfig(batch_size=3, **kw))
    finally:
        model.generation_config.eos_token_id = old
    assert len(multi) == len(rms)
    for a, m in zip(alone, multi, strict=True):
        _same_outputs(a, m)
    toks = [[o.tokens for o in a] for a in alone]
    assert toks[0] != toks[1] != toks[2]  # the RMs disagree somewhere: rows were split
    assert any(toks[0][b][:1] == toks[1][b][:1] for b in range(len(PROMPTS)))  # ...after sharing
    assert any(o.finished and len(o.tokens) < 10 for a in alone for o in a)  # some stopped early


@pytest.mark.filterwarnings("ignore:.*unseen by the reward model")
def test_multi_rm_args_falls_back_to_separate_runs_off_the_fast_path(tiny_lm):
    """Text RMs (the oracle) cannot share candidate features: each RM runs on its own."""
    from analysis.decoding.args import args_generate_multi

    model, tok = tiny_lm
    users = ["user00", "user01"]
    oracle = OracleRM(make_synthetic_users(n_users=2, n_profile=(4, 4), n_test=1, seed=0))
    lin = LinearRM(model)
    kw = dict(w=2.0, k=4, max_new_tokens=6, batch_size=2)
    multi = args_generate_multi(model, tok, [oracle, lin], PROMPTS[:2], users, ArgsConfig(**kw))
    _same_outputs(multi[0], args_generate(model, tok, oracle, PROMPTS[:2], users, ArgsConfig(**kw)))
    _same_outputs(multi[1], args_generate(model, tok, lin, PROMPTS[:2], users, ArgsConfig(**kw)))
