"""Batched greedy / sampled generation (analysis.decoding.base)."""

from __future__ import annotations

import copy

import pytest
import torch

from analysis.decoding.base import (
    GenerationConfig,
    _decode_batch,
    common_prefix_len,
    generate_greedy,
    generate_sample,
    left_pad,
    nucleus_size,
    positions_from_mask,
    sample_tokens,
)
from analysis.models.tiny import build_tiny_model
from analysis.models.tokens import encode_prompt

INSTRUCTION = "Write a headline for the following news article about the city council vote today. "
PROMPTS = [
    INSTRUCTION + "the mayor said the budget plan will pass",
    INSTRUCTION + "storm",
    INSTRUCTION + "the team won the game today after the storm and the coach said more",
    "why is the river high",  # no shared prefix with the others
    INSTRUCTION + "students and teachers strike",
]


def _hf_greedy(model, tok, prompt, n):
    """Independent reference: transformers' own generate on one unpadded prompt."""
    ids = torch.tensor([encode_prompt(tok, prompt)])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False)
    return tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def test_left_pad_and_positions():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert positions_from_mask(mask).tolist() == [[0, 1, 2], [0, 0, 0]]
    assert common_prefix_len([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3]]) == 2  # each keeps >= 1 token


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_greedy_batched_equals_one_at_a_time_and_hf_generate(arch):
    model, tok = build_tiny_model(arch)
    batched = generate_greedy(model, tok, PROMPTS, GenerationConfig(max_new_tokens=10, batch_size=5))
    assert common_prefix_len([encode_prompt(tok, p) for p in PROMPTS[:3]]) >= 8  # prefix sharing is exercised
    single = [generate_greedy(model, tok, [p], GenerationConfig(max_new_tokens=10))[0] for p in PROMPTS]
    assert batched == single
    assert generate_greedy(model, tok, PROMPTS, GenerationConfig(max_new_tokens=10, batch_size=2)) == single
    if arch == "llama":
        assert single == [_hf_greedy(model, tok, p, 10) for p in PROMPTS]
    assert all(isinstance(t, str) and t == t.strip() for t in batched)


def test_greedy_stops_at_eos_and_drops_finished_rows(tiny_lm):
    model, tok = tiny_lm
    ids = [encode_prompt(tok, p) for p in PROMPTS]
    free = _decode_batch(
        model, tok, ids, GenerationConfig(max_new_tokens=10)
    )  # the tiny model never emits its real EOS
    assert all(len(r) == 10 for r in free)
    stop = free[0][3]  # make row 0's 4th token an end-of-sequence token
    m2 = copy.deepcopy(model)
    m2.generation_config.eos_token_id = [tok.eos_token_id, stop]
    expected = [r[: r.index(stop)] if stop in r else r for r in free]
    assert _decode_batch(m2, tok, ids, GenerationConfig(max_new_tokens=10)) == expected
    assert len(expected[0]) == 3
    texts = generate_greedy(m2, tok, PROMPTS, GenerationConfig(max_new_tokens=10, batch_size=5))
    assert texts == [tok.decode(r, skip_special_tokens=True).strip() for r in expected]
    assert texts == [generate_greedy(m2, tok, [p], GenerationConfig(max_new_tokens=10))[0] for p in PROMPTS]


def test_sampling_is_seeded_and_batch_invariant(tiny_lm):
    model, tok = tiny_lm
    a = generate_sample(model, tok, PROMPTS, GenerationConfig(max_new_tokens=8, batch_size=15), n=3, seed=1)
    b = generate_sample(model, tok, PROMPTS, GenerationConfig(max_new_tokens=8, batch_size=2), n=3, seed=1)
    c = generate_sample(model, tok, PROMPTS, GenerationConfig(max_new_tokens=8, batch_size=15), n=3, seed=2)
    assert a == b
    assert a != c
    assert len(a) == len(PROMPTS) and all(len(x) == 3 for x in a)
    assert len({s for x in a for s in x}) > len(PROMPTS)  # temperature 1 gives distinct samples


def test_sample_blocks_make_up_one_draw(tiny_lm):
    """Blocks [0, 2) and [2, 5) drawn with first_sample are the 5 samples of one draw."""
    model, tok = tiny_lm
    cfg = GenerationConfig(max_new_tokens=8, batch_size=7)
    whole = generate_sample(model, tok, PROMPTS, cfg, n=5, seed=3)
    head = generate_sample(model, tok, PROMPTS, cfg, n=2, seed=3)
    tail = generate_sample(model, tok, PROMPTS, cfg, n=3, seed=3, first_sample=2)
    assert [h + t for h, t in zip(head, tail, strict=True)] == whole
    assert tail != generate_sample(model, tok, PROMPTS, cfg, n=3, seed=3)  # the offset matters


def test_draw_samples_reuses_a_smaller_draw_of_the_same_prompts(tiny_lm, monkeypatch, tmp_path):
    """draw_samples caches blocks of SAMPLE_BLOCK samples: 10 samples after 4 draw only 6, and
    equal one draw of 10."""
    import analysis.decoding.base as base
    from analysis.config.schema import StudyConfig
    from analysis.data.records import UserTask
    from analysis.studies.cache import StudyCache
    from analysis.studies.generations import SAMPLE_BLOCK, draw_samples

    model, tok = tiny_lm
    cfg = StudyConfig(sample_temperature=1.0, sample_top_p=1.0)
    from analysis.data.records import ProfileItem

    prof = [ProfileItem("an article", "a headline", "p0")]
    tasks = [UserTask(f"u{i}", prof, p, "ref", f"t{i}") for i, p in enumerate(PROMPTS)]
    params = {"task": cfg.task, "max_new_tokens": 6, "batch_size": 8}
    drawn: list[int] = []
    real = base.generate_sample

    def counting(*a, **kw):
        drawn.append(kw["n"])
        return real(*a, **kw)

    monkeypatch.setattr(base, "generate_sample", counting)
    cache = StudyCache(tmp_path)
    prompts, four = draw_samples(cfg, model, tok, tasks, params, 4, {}, cache)
    _, ten = draw_samples(cfg, model, tok, tasks, params, 10, {}, cache)  # a new process: disk cache
    assert SAMPLE_BLOCK == 4 and drawn == [4, 4, 2]
    assert [t[:4] for t in ten] == four and all(len(t) == 10 for t in ten)
    once = real(
        model, tok, prompts, base.GenerationConfig(max_new_tokens=6, batch_size=8), n=10, seed=cfg.seed
    )
    assert ten == once


def test_sampling_limits_equal_greedy(tiny_lm):
    model, tok = tiny_lm
    greedy = generate_greedy(model, tok, PROMPTS, GenerationConfig(max_new_tokens=8))
    cold = generate_sample(model, tok, PROMPTS, GenerationConfig(temperature=1e-4, max_new_tokens=8))
    nucleus = generate_sample(model, tok, PROMPTS, GenerationConfig(top_p=1e-6, max_new_tokens=8))
    assert [x[0] for x in cold] == greedy
    assert [x[0] for x in nucleus] == greedy


def test_nucleus_keeps_smallest_set():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    assert nucleus_size(probs, 0.7) == 2  # 0.5 < 0.7, 0.5 + 0.3 crosses it
    assert nucleus_size(probs, 0.5) == 1
    assert nucleus_size(probs, 1e-9) == 1
    assert nucleus_size(probs, 1.0) == 4


@pytest.mark.parametrize("head", [1, 64])  # nucleus reaching past the head (full sort) / inside it
def test_sample_tokens_draws_only_from_the_nucleus(head):
    logits = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3]])).repeat(400, 1)
    gens = [torch.Generator().manual_seed(i) for i in range(400)]
    drawn = sample_tokens(logits, 1.0, 0.7, gens, head=head)
    assert set(drawn) == {1, 3}  # the two most likely tokens
    share = drawn.count(1) / len(drawn)
    assert abs(share - 0.5 / 0.8) < 0.08  # renormalised within the nucleus
    again = sample_tokens(logits, 1.0, 0.7, [torch.Generator().manual_seed(i) for i in range(400)], head=head)
    assert again == drawn  # per-row generators: reproducible
    assert set(sample_tokens(logits, 1.0, 1.0, gens)) == {0, 1, 2, 3}  # top_p = 1: whole vocabulary


def test_generation_argument_errors(tiny_lm):
    model, tok = tiny_lm
    with pytest.raises(TypeError):
        generate_greedy(model, tok, "a single string")
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_greedy(model, tok, ["x"], GenerationConfig(max_new_tokens=0))
    with pytest.raises(ValueError, match="temperature"):
        generate_sample(model, tok, ["x"], GenerationConfig(temperature=0))


@pytest.mark.embedded
def test_smollm2_batched_equals_single(smollm2):
    model, tok = smollm2
    prompts = [
        "Write a headline: the council approved a new bridge.",
        "Write a headline: a storm closed the harbour for two days.",
        "Say hi.",
    ]
    batched = generate_greedy(model, tok, prompts, GenerationConfig(max_new_tokens=12, batch_size=3))
    assert batched == [
        generate_greedy(model, tok, [p], GenerationConfig(max_new_tokens=12))[0] for p in prompts
    ]
    assert all(batched) and not any("<|im_end|>" in t for t in batched)
