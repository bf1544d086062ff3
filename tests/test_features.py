"""Prefix features: padding invariance, truncation identity, cache, separate-backbone path."""

from __future__ import annotations

import pytest
import torch

from analysis.data.records import DataError, PreferencePair
from analysis.features.cache import pair_features
from analysis.features.passes import (
    BackboneSpec,
    PairFeatures,
    TextFeaturizer,
    prefix_features,
    select_hidden,
    sequence_features,
    text_prefix_features,
)
from analysis.models.tiny import build_tiny_model
from analysis.models.tokens import encode_prompt

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
ARCHS = ["llama", "qwen2", "gpt2"]


@pytest.fixture(scope="module", params=ARCHS)
def lm(request):
    return build_tiny_model(request.param, seed=0)


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("side", ["left", "right"])
def test_prefix_features_alone_equal_padded_batch(lm, side):
    model, tok = lm
    batch = prefix_features(model, tok, PROMPTS, RESPONSES, padding_side=side, batch_size=3)
    for i in range(len(PROMPTS)):
        alone = prefix_features(model, tok, PROMPTS[i : i + 1], RESPONSES[i : i + 1])
        assert alone.prompt_lens[0] == batch.prompt_lens[i] == len(encode_prompt(tok, PROMPTS[i]))
        assert torch.equal(alone.response_ids[0], batch.response_ids[i])
        assert _max_diff(alone.features, [batch.features[i]]) < 1e-5
        assert _max_diff(alone.logprobs, [batch.logprobs[i]]) < 1e-5
    # the three sequences have different lengths, so the batch really is padded
    assert len({len(r) + p for r, p in zip(batch.response_ids, batch.prompt_lens, strict=True)}) == 3


def test_prefix_feature_at_t_equals_truncated_sequence_alone(lm):
    """phi(x, y_<=t) from the one pass == last hidden state of x + y_<=t run alone; same for log-probs."""
    model, tok = lm
    pf = prefix_features(model, tok, PROMPTS, RESPONSES, batch_size=3)
    for i in (1, 2):
        p_ids, r_ids = encode_prompt(tok, PROMPTS[i]), pf.response_ids[i].tolist()
        assert pf.features[i].shape == (len(r_ids), 64)
        for t in (1, 2, len(r_ids)):
            with torch.no_grad():
                out = model(torch.tensor([p_ids + r_ids[:t]]), output_hidden_states=True)
            ref_h = out.hidden_states[-1][0, -1]
            ref_lp = torch.log_softmax(out.logits[0, -2], -1)[r_ids[t - 1]]
            assert float((pf.features[i][t - 1] - ref_h).abs().max()) < 1e-5
            assert abs(float(pf.logprobs[i][t - 1] - ref_lp)) < 1e-5


def test_prefix_features_other_layer(tiny_lm):
    model, tok = tiny_lm
    pf = prefix_features(model, tok, PROMPTS[:1], RESPONSES[:1], layer=1)
    p_ids = encode_prompt(tok, PROMPTS[0])
    with torch.no_grad():
        out = model(torch.tensor([p_ids + pf.response_ids[0].tolist()]), output_hidden_states=True)
    ref = out.hidden_states[1][0, len(p_ids) :]
    assert torch.allclose(pf.features[0], ref, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        select_hidden(out, 7)


def test_sequence_features_is_last_prefix_row(lm):
    model, tok = lm
    pf = prefix_features(model, tok, PROMPTS, RESPONSES)
    seq = sequence_features(model, tok, PROMPTS, RESPONSES, batch_size=2)
    assert seq.shape == (3, pf.features[0].shape[1])
    assert torch.allclose(seq, torch.stack([f[-1] for f in pf.features]), atol=1e-5)


def test_empty_response_rejected_with_clear_message(tiny_lm):
    model, tok = tiny_lm
    with pytest.raises(DataError, match="response is empty"):
        prefix_features(model, tok, ["write a headline"], ["   "])
    with pytest.raises(DataError, match="record 1"):
        sequence_features(model, tok, ["a", "b"], ["city", ""])


def _pairs(n=6):
    return [
        PreferencePair(
            f"u{i % 2}",
            PROMPTS[i % 3],
            RESPONSES[i % 3],
            RESPONSES[(i + 1) % 3],
            f"p{i}",
            "train" if i < 4 else "test",
        )
        for i in range(n)
    ]


def test_pair_features_cache_reused_and_keyed(tiny_lm, tmp_path, monkeypatch):
    import analysis.features.passes as F

    model, tok = tiny_lm
    pairs = _pairs()
    first = pair_features(model, tok, pairs, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp"))
    assert first.chosen.shape == (6, 64) and first.backbone == BackboneSpec("tiny-llama-seed0", -1)
    ref = sequence_features(model, tok, [p.prompt for p in pairs], [p.chosen for p in pairs])
    assert torch.allclose(first.chosen, ref, atol=1e-5)

    def boom(*a, **k):
        raise AssertionError("cache miss: features were recomputed")

    monkeypatch.setattr(F, "sequence_features", boom)
    again = pair_features(model, tok, pairs, cache_dir=tmp_path, progress=False)
    assert torch.equal(again.chosen, first.chosen) and torch.equal(again.rejected, first.rejected)
    assert again.user_ids == first.user_ids and again.splits == first.splits
    monkeypatch.undo()
    pair_features(model, tok, pairs, cache_dir=tmp_path, layer=1, progress=False)  # other layer -> new key
    pair_features(model, tok, pairs[:5], cache_dir=tmp_path, progress=False)  # other data -> new key
    assert len(list(tmp_path.glob("*.safetensors"))) == 3


def test_pair_features_subset_and_counts(tiny_lm):
    model, tok = tiny_lm
    pf = pair_features(model, tok, _pairs(), progress=False)
    test = pf.subset("test")
    assert isinstance(test, PairFeatures) and len(test) == 2 and test.pair_ids == ["p4", "p5"]
    assert torch.equal(test.chosen, pf.chosen[4:])
    assert pf.subset("train").pairs_per_user() == {"u0": 2, "u1": 2}


def test_text_featurizer_causal_matches_sequence_features(tiny_lm):
    model, tok = tiny_lm
    feat = TextFeaturizer(model, tok, BackboneSpec("tiny-llama-seed0", -1, "separate", "last"))
    assert torch.allclose(
        feat(PROMPTS, RESPONSES), sequence_features(model, tok, PROMPTS, RESPONSES), atol=1e-6
    )


def test_text_prefix_features_uses_decoded_prefixes(tiny_lm):
    model, tok = tiny_lm
    feat = TextFeaturizer(model, tok, BackboneSpec("tiny-llama-seed0", -1, "separate", "last"))
    ids = tok("city council vote", add_special_tokens=False).input_ids
    out = text_prefix_features(feat, tok, ["write a headline"], [ids])
    assert out[0].shape == (len(ids), 64)
    full = feat(["write a headline"], [tok.decode(ids)])
    assert torch.allclose(out[0][-1], full[0], atol=1e-6)


@pytest.mark.embedded
def test_minilm_mean_pooled_separate_backbone_padding_invariant():
    from analysis.models.loading import load_model

    enc, etok = load_model("minilm-l6", dtype="float32", threads=1)  # pinned: 1e-5 holds in float32
    spec = BackboneSpec("minilm-l6", -1, "separate", "mean")
    feat = TextFeaturizer(enc, etok, spec)
    both = feat(PROMPTS, RESPONSES)
    assert both.shape == (3, 384)
    for i in range(3):
        assert torch.allclose(feat(PROMPTS[i : i + 1], RESPONSES[i : i + 1])[0], both[i], atol=1e-5)
    # re-tokenized prefixes of SmolLM-style token ids: one feature per prefix
    tiny, ttok = build_tiny_model("llama")
    ids = ttok("city council vote", add_special_tokens=False).input_ids
    assert text_prefix_features(feat, ttok, ["write a headline"], [ids])[0].shape == (len(ids), 384)
    pf = pair_features(enc, etok, _pairs(4), progress=False)
    assert pf.backbone.pooling == "mean" and pf.backbone.kind == "separate" and pf.chosen.shape == (4, 384)


@pytest.mark.embedded
def test_smollm2_prefix_features_identity(smollm2):
    model, tok = smollm2
    pf = prefix_features(model, tok, PROMPTS[:2], RESPONSES[:2], padding_side="left")
    assert pf.features[0].shape[1] == 576
    p_ids, r_ids = encode_prompt(tok, PROMPTS[1]), pf.response_ids[1].tolist()
    t = len(r_ids) // 2
    with torch.no_grad():
        out = model(torch.tensor([p_ids + r_ids[:t]]), output_hidden_states=True)
    assert float((out.hidden_states[-1][0, -1] - pf.features[1][t - 1]).abs().max()) < 1e-4
    assert abs(float(torch.log_softmax(out.logits[0, -2], -1)[r_ids[t - 1]] - pf.logprobs[1][t - 1])) < 1e-4


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_shared_prompt_pass_equals_prefix_features(batch_size):
    """The studies' fast path (shared prefix, one forward per distinct prompt, responses on its
    repeated cache) gives the prefix features and log-probs of one full-sequence pass per response,
    whatever the batch and however many responses share a prompt."""
    from analysis.features.passes import shared_prompt_features, shared_prompt_pass

    for arch in ("llama", "qwen2"):  # the prompt-sharing archs (cache + position_ids)
        model, tok = build_tiny_model(arch, seed=0)
        prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[2], PROMPTS[1], PROMPTS[0]]
        responses = RESPONSES + ["x", "tax rises again", "a b c d e f g h"]
        ref = prefix_features(model, tok, prompts, responses, batch_size=2)
        got = shared_prompt_pass(model, tok, prompts, responses, batch_size=batch_size, all_positions=True)
        assert _max_diff(ref.features, got.features) < 1e-4
        assert _max_diff(ref.logprobs, got.logprobs) < 1e-4
        assert [r.tolist() for r in got.response_ids] == [r.tolist() for r in ref.response_ids]
        last = shared_prompt_features(model, tok, prompts, responses, batch_size=batch_size)
        assert torch.allclose(last, torch.stack([f[-1] for f in ref.features]), atol=1e-4)


def test_small_batch_linear_equals_linear_and_load_model_applies_it(tmp_path):
    """cpu_linear: the transposed-copy path (few rows) and the default path (many rows) give
    nn.Linear's outputs; load_model turns it on for CPU models."""
    from analysis.models.cpu.linear import SmallBatchLinear, enable_small_batch_linear

    torch.manual_seed(0)
    lin = torch.nn.Linear(32, 16)
    ref = torch.nn.Linear(32, 16)
    ref.load_state_dict(lin.state_dict())
    assert enable_small_batch_linear(torch.nn.Sequential(lin), max_rows=4) == 1
    assert enable_small_batch_linear(torch.nn.Sequential(lin)) == 0  # idempotent
    for rows in (1, 4, 5, 64):
        x = torch.randn(rows, 32)
        assert torch.allclose(lin(x), ref(x), atol=1e-5)
    x3 = torch.randn(2, 3, 32)  # (batch, tokens, features): rows = 6
    assert torch.allclose(lin(x3), ref(x3), atol=1e-5)
    assert isinstance(lin, SmallBatchLinear) and "weight_t" not in lin.state_dict()

    from analysis.models.loading import load_model

    model, tok = build_tiny_model("llama", seed=0)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, _ = load_model(str(tmp_path), dtype="float32")
    linears = [m for m in loaded.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, SmallBatchLinear) for m in linears)
    ids = torch.tensor([[5, 6, 7, 8]])
    assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-4)
