"""CPU speed paths that must not change a number: column-blocked linears (analysis.models.cpu.linear),
grouped-head attention (analysis.models.cpu.attention), the reserved KV cache (analysis.decoding.base)
and the malloc thresholds (analysis.models.cpu.memory)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from analysis.decoding.base import (
    GenerationConfig,
    _ReservedLayer,
    generate_greedy,
    left_pad,
    positions_from_mask,
)
from analysis.models.cpu.attention import NAME, use_cpu_gqa_attention
from analysis.models.cpu.linear import BLOCK, column_blocks, enable_small_batch_linear
from analysis.models.tiny import build_tiny_model
from analysis.models.tokens import encode_prompt, pad_token_id
from analysis.rewards.base import training_threads  # n torch threads inside a block, restored after

PROMPTS = [
    "Write a headline for the following news article: the council approved the budget",
    "Write a headline for the following news article: storm",
    "Write a headline for the following news article: the team won the final after extra time",
    "why is the river high",
]


# --------------------------------------------------------------------------- column blocks


@pytest.mark.parametrize("n_in,n_out", [(64, 384), (96, 576), (48, 768), (1536, 576)])
def test_column_blocks_equal_the_transposed_copy_bit_for_bit_on_one_thread(n_in, n_out):
    torch.manual_seed(0)
    lin = torch.nn.Linear(n_in, n_out)
    enable_small_batch_linear(torch.nn.Sequential(lin))
    assert lin.weight_b.shape == (n_out // BLOCK, n_in, BLOCK)
    assert "weight_b" not in lin.state_dict()
    with training_threads(1):
        for rows in range(1, 49):
            x = torch.randn(rows, n_in)
            assert torch.equal(lin(x), torch.mm(x, lin.weight_t) + lin.bias), rows
        x3 = torch.randn(4, 5, n_in)  # (batch, tokens, features): 20 rows
        expected = (torch.mm(x3.reshape(20, n_in), lin.weight_t) + lin.bias).view(4, 5, n_out)
        assert torch.equal(lin(x3), expected)


def test_column_blocks_are_used_for_2_to_max_rows_on_one_thread_only():
    """With the blocks replaced by zeros, only the products that take them come out as the bias."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(32, 384)
    enable_small_batch_linear(torch.nn.Sequential(lin), max_rows=8)
    lin.weight_b = torch.zeros_like(lin.weight_b)
    bias_only = lin.bias.expand(8, -1)
    with training_threads(1):
        assert torch.equal(lin(torch.randn(8, 32)), bias_only)  # blocks
        assert not torch.equal(lin(torch.randn(1, 32)), bias_only[:1])  # one row: weight_t
        assert not torch.equal(lin(torch.randn(9, 32)), lin.bias.expand(9, -1))  # > max_rows: the weight
    with training_threads(2):
        assert not torch.equal(lin(torch.randn(8, 32)), bias_only)  # weight_t: its own two-thread numbers


def test_column_blocks_only_where_there_is_more_than_one_block():
    assert column_blocks(torch.zeros(8, BLOCK)) is None  # one block: the plain copy is as good
    assert column_blocks(torch.zeros(8, BLOCK + 8)) is None  # not a multiple
    w = torch.arange(8 * 2 * BLOCK, dtype=torch.float32).view(8, 2 * BLOCK)
    blocks = column_blocks(w)
    assert blocks.is_contiguous() and torch.equal(torch.cat(list(blocks), dim=1), w)


# --------------------------------------------------------------------------- reserved KV cache


def _same(a: DynamicLayer, b: DynamicLayer) -> None:
    assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)


def test_reserved_cache_repeats_and_drops_rows_inside_its_buffer_with_the_same_numbers():
    torch.manual_seed(0)
    ref, res = DynamicLayer(), _ReservedLayer(reserve=10)

    def step(rows: int, t: int = 1) -> None:
        k, v = torch.randn(rows, 2, t, 4), torch.randn(rows, 2, t, 4)
        for layer in (ref, res):
            layer.update(k, v)
        _same(ref, res)

    step(1, t=5)  # a shared prefix, one row
    for layer in (ref, res):
        layer.batch_repeat_interleave(6)
    _same(ref, res)
    buf = res._kbuf.data_ptr()
    step(6, t=3)  # the rows' own suffixes
    step(6)
    for keep in ([0, 2, 3, 5], [1, 2, 3], [0, 2]):  # finished rows dropped, order kept
        idx = torch.tensor(keep)
        for layer in (ref, res):
            layer.batch_select_indices(idx)
        _same(ref, res)
        step(len(keep))
    assert res._kbuf.data_ptr() == buf  # one buffer from the repetition on: nothing re-reserved
    for layer in (ref, res):  # another order or repeats (n samples of one prompt): plain tensors
        layer.batch_select_indices(torch.tensor([1, 0, 0]))
    _same(ref, res)
    step(3)


# --------------------------------------------------------------------------- grouped-head attention


def _padded_logits(model, tok):
    ids, mask = left_pad([encode_prompt(tok, p) for p in PROMPTS], pad_token_id(tok))
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)).logits


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_cpu_gqa_attention_gives_sdpa_numbers_bit_for_bit_without_copying_heads(arch, monkeypatch):
    model, tok = build_tiny_model(arch)
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    ref = _padded_logits(model, tok)
    greedy = generate_greedy(model, tok, PROMPTS, GenerationConfig(max_new_tokens=6, batch_size=4))
    assert use_cpu_gqa_attention(model) and model.config._attn_implementation == NAME

    def no_copies(*args, **kwargs):
        raise AssertionError("repeat_kv called: key/value heads were copied")

    monkeypatch.setattr("transformers.integrations.sdpa_attention.repeat_kv", no_copies)
    assert torch.equal(_padded_logits(model, tok), ref)
    assert generate_greedy(model, tok, PROMPTS, GenerationConfig(max_new_tokens=6, batch_size=4)) == greedy


def test_cpu_gqa_attention_leaves_other_models_alone():
    gpt2, _ = build_tiny_model("gpt2")  # no grouped heads
    assert not use_cpu_gqa_attention(gpt2) and gpt2.config._attn_implementation == "sdpa"
    llama, _ = build_tiny_model("llama")
    llama.set_attn_implementation("eager")
    assert not use_cpu_gqa_attention(llama) and llama.config._attn_implementation == "eager"


# --------------------------------------------------------------------------- malloc thresholds

_FAULTS = textwrap.dedent(
    """
    import ctypes, resource, sys, torch
    from analysis.models.cpu.memory import keep_freed_memory
    if sys.argv[1] == "on":
        assert keep_freed_memory() and keep_freed_memory()
    torch.set_num_threads(1)

    class MallInfo2(ctypes.Structure):  # glibc >= 2.33
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    ts = [torch.empty(5 * 1024 * 1024).fill_(1.0) for _ in range(3)]  # three 20 MB buffers
    del ts
    kept = libc.mallinfo2().fordblks  # free bytes the heap kept for the next allocations

    x, w1, w2 = torch.randn(1152, 576), torch.randn(576, 1536), torch.randn(1536, 576)

    def forward(x):  # the MLP blocks of a 32-row, 36-token prefill: 2.6 and 7 MB temporaries
        for _ in range(3):
            h = x * 1.0
            gate, up = h @ w1, h @ w1
            act = torch.nn.functional.silu(gate) * up
            del gate, up
            x = x + act @ w2
        return x

    faults = []
    for _ in range(8 if sys.argv[1] == "on" else 0):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        forward(x)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    print(kept, sum(faults[4:]))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings (Linux only)")
def test_keep_freed_memory_keeps_freed_buffers_and_stops_page_faults():
    """Three 20 MB buffers freed: by default glibc serves them from mmap and unmaps them on free,
    so the heap keeps nothing; with the thresholds set they come from the heap and stay there.
    Then forward passes that allocate and free the same large temporaries again and again: by
    default the later passes keep faulting fresh pages in (measured here 41 thousand over the
    last four of eight passes), with the thresholds set they reuse the heap's pages (0-650)."""

    def run(mode: str) -> tuple[int, int]:
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True
        )
        kept, faults = out.stdout.split()[-2:]
        return int(kept), int(faults)

    (kept_on, faults_on), (kept_off, _) = run("on"), run("off")
    assert kept_on >= 60 * 1024 * 1024 > 20 * 1024 * 1024 > kept_off, (kept_on, kept_off)
    assert faults_on < 3000, faults_on


# --------------------------------------------------------------------------- the real model


@pytest.mark.embedded
def test_smollm2_speed_paths_change_no_number(smollm2):
    """SmolLM2 as load_model gives it (blocks, grouped-head attention) against the same weights with
    both paths off: the logits of a padded prefill and of each decoding step are bit-identical."""
    from analysis.decoding.base import _decode_batch

    model, tok = smollm2
    linears = [m for m in model.modules() if getattr(m, "weight_b", None) is not None]
    assert linears and model.config._attn_implementation == NAME
    ids = [encode_prompt(tok, p) for p in PROMPTS]

    def run():
        logits = []
        original = model.forward

        def spy(*args, **kwargs):
            out = original(*args, **kwargs)
            logits.append(out.logits.clone())
            return out

        model.forward = spy
        try:
            tokens = _decode_batch(model, tok, ids, GenerationConfig(max_new_tokens=6))
        finally:
            del model.forward
        return tokens, logits

    with training_threads(1):
        fast = run()
        blocks = [m.weight_b for m in linears]
        try:
            for m in linears:
                m.weight_b = None
            model.set_attn_implementation("sdpa")
            plain = run()
        finally:
            for m, b in zip(linears, blocks, strict=True):
                m.weight_b = b
            model.set_attn_implementation(NAME)
    assert fast[0] == plain[0]
    assert len(fast[1]) == len(plain[1]) > 2
    assert all(torch.equal(a, b) for a, b in zip(fast[1], plain[1], strict=True))
