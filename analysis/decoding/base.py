"""Batched greedy and sampled generation with a KV cache (the base policy ``pi``).

Every prompt is encoded with :func:`analysis.models.tokens.encode_prompt` (the project's one rule for
prompt tokens), the batch is **left-padded** so that the next-token position is the last column
for every row, and position ids are ``cumsum(mask) - 1`` so a padded row sees exactly the
positions it would see alone. Decoding stops per row at an EOS token; the returned text is the
decoded new tokens only (special tokens skipped, stripped).

Step t for a batch of B rows (cache of length L_t)::

    logits_t = pi(. | x, y_{<t})            # (B, V), only the last position is projected
    y_t      = argmax logits_t               # greedy
             | sample softmax(logits_t / T)  # sampling, top-p filtered, per-row generator

Sampling draws each row from its own ``torch.Generator`` seeded from ``(seed, prompt index,
sample index)``, so a sample does not depend on which other prompts share its batch.

Speed (``benchmarks/bench_batched_generation.py``): only the last position is projected to the
vocabulary (``logits_to_keep=1``), a token prefix common to the whole batch (system prompt,
instruction) is run once and its KV cache repeated, rows that finished are dropped from the
batch and the cache, and the KV cache appends into room reserved once per batch instead of
being copied every step (repeating the prefix rows and dropping finished rows happen inside that
buffer). The generation runner feeds it length-bucketed chunks (:mod:`analysis.generation.runner`).
On CPU, ``load_model`` adds column-blocked linears, grouped-head attention and warm pages
(:mod:`analysis.models.cpu.linear`, :mod:`analysis.models.cpu.attention`, :mod:`analysis.models.cpu.memory`), which
change no number. Batched and one-at-a-time results agree (tested on three architectures and
on SmolLM2; greedy near-ties could in principle flip through float rounding).

Example
-------
>>> from analysis.models.tiny import build_tiny_model
>>> model, tok = build_tiny_model("llama")
>>> texts = generate_greedy(model, tok, ["Write a headline."], GenerationConfig(max_new_tokens=4))
>>> len(texts)
1
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from analysis.models.tokens import cache_kwarg, common_prefix_len, encode_prompt, pad_token_id

Prompt = str | list[dict]


@dataclass(frozen=True)
class GenerationConfig:
    """Settings shared by greedy and sampled decoding.

    max_new_tokens: cap on generated tokens per prompt (EOS stops a row earlier).
    batch_size: prompts per forward pass; prompts are sorted by length first to limit padding.
    temperature, top_p: sampling only (``temperature > 0``; ``top_p`` in (0, 1]).
    """

    max_new_tokens: int = 32
    batch_size: int = 16
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


# --------------------------------------------------------------------------- helpers


def stop_token_ids(model, tok) -> set[int]:
    """All ids that end a response: the tokenizer's EOS plus the generation config's (int or list),
    i.e. what HF ``generate`` stops at. Raises ValueError when there is none."""
    ids: set[int] = set()
    for value in (tok.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if value is None:
            continue
        ids.update(int(v) for v in ([value] if isinstance(value, int) else list(value)))
    if not ids:
        raise ValueError("the tokenizer has no eos_token_id; generation would never stop early")
    return ids


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into ``input_ids (B, L)`` and ``attention_mask (B, L)`` (1 = real token)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s) == 0:
            raise ValueError(f"prompt {i} encodes to zero tokens")
        ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s) :] = 1
    return ids.to(device), mask.to(device)


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids (B, L) = cumsum(mask) - 1, clipped at 0 on padding (so padding is harmless)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


class _ReservedLayer(DynamicLayer):
    """A full-attention cache layer that appends into a buffer with ``reserve`` free slots.

    ``DynamicLayer`` concatenates on every step (a copy of the whole cache per token, per
    layer); this layer writes the new keys/values into spare capacity and exposes
    ``keys``/``values`` as views of the filled part (the same numbers, so the same results).
    Repeating the batch (a shared prefix) copies once, straight into a new buffer with room left;
    keeping a subset of rows in order (finished rows dropped) moves the kept rows forward inside
    the buffer, so neither re-reserves on the next step. Other selections (repeats, a new order)
    give plain tensors again and the next update re-reserves.
    """

    def __init__(self, reserve: int):
        super().__init__()
        self.reserve = int(reserve)
        self._kbuf = self._vbuf = None

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, t = self.get_seq_length(), key_states.shape[-2]
        kb = self._kbuf
        if kb is None or n + t > kb.shape[-2] or kb.shape[0] != key_states.shape[0]:
            shape = (*key_states.shape[:-2], n + t + self.reserve, key_states.shape[-1])
            kb, vb = key_states.new_empty(shape), value_states.new_empty(shape)
            if n:
                kb[..., :n, :] = self.keys
                vb[..., :n, :] = self.values
            self._kbuf, self._vbuf = kb, vb
        self._kbuf[..., n : n + t, :] = key_states
        self._vbuf[..., n : n + t, :] = value_states
        self.keys, self.values = self._kbuf[..., : n + t, :], self._vbuf[..., : n + t, :]
        return self.keys, self.values

    def batch_repeat_interleave(self, repeats: int) -> None:
        n = self.get_seq_length()
        if n == 0 or self._kbuf is None:
            super().batch_repeat_interleave(repeats)
            self._kbuf = self._vbuf = None
            return
        bufs = []
        for filled in (self.keys, self.values):
            b, *mid, _, d = filled.shape
            buf = filled.new_empty((b * repeats, *mid, n + self.reserve, d))
            buf.view(b, repeats, *mid, n + self.reserve, d)[..., :n, :] = filled[:, None]
            bufs.append(buf)
        self._kbuf, self._vbuf = bufs
        self.keys, self.values = self._kbuf[..., :n, :], self._vbuf[..., :n, :]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        n = self.get_seq_length()
        keep = indices.tolist()
        in_place = (
            n > 0
            and self._kbuf is not None
            and all(a < b for a, b in pairwise([-1, *keep]))  # strictly ascending from 0 on
            and (not keep or keep[-1] < self._kbuf.shape[0])
        )
        if not in_place:
            super().batch_select_indices(indices)
            self._kbuf = self._vbuf = None
            return
        m = len(keep)
        first = next((i for i, j in enumerate(keep) if i != j), m)  # rows before it stay where they are
        if first < m:
            moved = indices[first:].to(self._kbuf.device)
            for buf in (self._kbuf, self._vbuf):
                buf[first:m, ..., :n, :] = buf[..., :n, :].index_select(0, moved)
        self._kbuf, self._vbuf = self._kbuf[:m], self._vbuf[:m]
        self.keys, self.values = self._kbuf[..., :n, :], self._vbuf[..., :n, :]


def prefill_shared_prefix(model, cache, seqs: list[list[int]], p: int, pad: int, device):
    """Run the token prefix ``seqs[0][:p]`` that all ``seqs`` share once (when ``p > 0``) and repeat
    its KV cache over the rows; return ``(suffix_ids (B, L - p), mask (B, L), position_ids
    (B, L - p))`` for the row-specific rest, left-padded *after* the prefix (padding sits between
    prefix and suffix, masked; positions ``cumsum(mask) - 1`` are those of the unpadded row)."""
    if p:
        base = model.base_model
        prefix = torch.tensor([seqs[0][:p]], dtype=torch.long, device=device)  # (1, P)
        base(input_ids=prefix, use_cache=True, **{cache_kwarg(base): cache})
        cache.batch_repeat_interleave(len(seqs))
    suffix, suffix_mask = left_pad([s[p:] for s in seqs], pad, device)
    mask = torch.cat([suffix_mask.new_ones(len(seqs), p), suffix_mask], dim=1)
    return suffix, mask, positions_from_mask(mask)[:, p:]


def new_cache(model, reserve: int = 0) -> DynamicCache:
    """An empty KV cache laid out for ``model`` (sliding-window layers where the config has them);
    ``reserve > 0`` gives full-attention layers room for that many appended tokens without copies."""
    try:
        cache = DynamicCache(config=model.config)
    except (TypeError, ValueError):  # older signatures / configs the cache cannot read
        cache = DynamicCache()
    if reserve > 0 and hasattr(cache, "layers"):
        cache.layers = [
            _ReservedLayer(reserve) if type(layer) is DynamicLayer else layer for layer in cache.layers
        ]
    return cache


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def row_seed(seed: int, index: int, sample: int) -> int:
    """A 63-bit seed for (run seed, prompt index, sample index): stable across processes."""
    digest = hashlib.sha256(f"{seed}:{index}:{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def nucleus_size(sorted_probs: torch.Tensor, top_p: float) -> int:
    """How many of the descending ``sorted_probs`` the top-p (nucleus) set keeps: the smallest head
    whose mass reaches ``top_p`` (the token that crosses it is kept; at least one token)."""
    if top_p >= 1.0:
        return int(sorted_probs.numel())
    return max(1, int(((sorted_probs.cumsum(0) - sorted_probs) < top_p).sum()))


def sample_tokens(
    logits: torch.Tensor,
    temperature: float,
    top_p: float,
    generators: Sequence[torch.Generator],
    head: int = 64,
) -> list[int]:
    """One token per row of ``logits`` (B, V) from ``softmax(logits / temperature)`` restricted to its
    top-p set, row b drawing with ``generators[b]`` on CPU.

    The nucleus is read from the ``head`` most likely tokens when they hold at least ``top_p`` of
    the mass (a full sort of the vocabulary otherwise), and the draw is over the nucleus only: the
    same distribution as filtering the whole vocabulary, without a vocabulary-sized sort and draw
    per row and step.
    """
    probs = (logits.float() / temperature).softmax(-1).cpu()
    top, order = probs.topk(min(head, probs.shape[-1]), dim=-1)  # descending
    out = []
    for b, gen in enumerate(generators):
        if top_p >= 1.0:
            out.append(int(torch.multinomial(probs[b], 1, generator=gen)))
            continue
        p, o = top[b], order[b]
        if float(p.sum()) < top_p:  # the nucleus reaches past the head
            p, o = probs[b].sort(descending=True)
        n = nucleus_size(p, top_p)
        out.append(int(o[torch.multinomial(p[:n], 1, generator=gen)]))
    return out


# --------------------------------------------------------------------------- core loop


@torch.no_grad()
def _decode_batch(
    model,
    tok,
    prompt_ids: list[list[int]],
    cfg: GenerationConfig,
    *,
    generators: list[torch.Generator] | None = None,
    min_shared_prefix: int = 8,
) -> list[list[int]]:
    """Decode one batch with ``cfg``'s length and sampling settings; return the new token ids of
    each row (EOS excluded).

    ``generators is None`` means greedy; otherwise row b samples with ``generators[b]``.

    Three savings that do not change the result (up to float rounding):

    - a token prefix shared by all rows (system prompt, instruction: often half the prompt) is
      run once and its KV cache repeated over the batch; the row-specific rest is left-padded
      after it, so padding sits *between* prefix and suffix and is masked out, and position ids
      ``cumsum(mask) - 1`` stay those of the unpadded row;
    - identical prompts (the ``n`` samples of one prompt) are prefilled once and their cache rows
      repeated;
    - rows that emitted EOS are dropped from the batch (and the cache) at once.
    """
    device = model_device(model)
    eos_t = torch.tensor(sorted(stop_token_ids(model, tok)), device=device)
    pad = pad_token_id(tok)
    bsz = len(prompt_ids)
    uniq: dict[tuple, int] = {}  # distinct prompts (n samples of one prompt are prefilled once)
    inv = torch.tensor([uniq.setdefault(tuple(s), len(uniq)) for s in prompt_ids], device=device)
    distinct = [list(s) for s in uniq]
    kw = cache_kwarg(model)
    p = common_prefix_len(prompt_ids) if bsz > 1 else 0
    if p < min_shared_prefix:
        p = 0
    # room for every token after the first update (the shared prefix, or whole prompts), so the
    # buffer is reserved once per batch (and once more when the prefix rows are repeated)
    longest = max(len(s) for s in prompt_ids)
    cache = new_cache(model, reserve=cfg.max_new_tokens + (longest - p if p else 0))
    step_ids, mask, pos = prefill_shared_prefix(model, cache, distinct, p, pad, device)  # U rows
    rows = list(range(bsz))  # original row of each live batch row
    out: list[list[int]] = [[] for _ in range(bsz)]
    for step in range(cfg.max_new_tokens):
        logits = (
            model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=pos,
                use_cache=True,
                logits_to_keep=1,
                **{kw: cache},
            )
            .logits[:, -1, :]
            .float()
        )  # (B_live, V); at step 0 one row per distinct prompt
        if step == 0 and len(distinct) < bsz:  # one row per prompt again: repeat the cache rows
            cache.batch_select_indices(inv)
            logits, mask, pos = logits[inv], mask[inv], pos[inv]
        if generators is None:
            nxt = logits.argmax(-1)  # (B_live,)
        else:
            draws = sample_tokens(logits, cfg.temperature, cfg.top_p, [generators[r] for r in rows])
            nxt = torch.tensor(draws, dtype=torch.long, device=device)
        finished = torch.isin(nxt, eos_t)  # (B_live,)
        done, toks = finished.tolist(), nxt.tolist()  # one transfer, not one per row
        for r, d, v in zip(rows, done, toks, strict=True):
            if not d:
                out[r].append(v)
        if all(done):
            break
        if any(done):  # shrink the batch: keep only live rows
            keep = torch.nonzero(~finished).flatten()
            cache.batch_select_indices(keep)
            rows = [rows[i] for i in keep.tolist()]
            nxt, mask, pos = nxt[keep], mask[keep], pos[keep]
        step_ids = nxt[:, None]
        mask = torch.cat([mask, torch.ones((mask.shape[0], 1), dtype=mask.dtype, device=device)], dim=1)
        pos = pos[:, -1:] + 1
    return out


def _batches(prompt_ids: list[list[int]], batch_size: int) -> list[list[int]]:
    """Index batches in order of prompt length (longest first) so padding stays small."""
    order = sorted(range(len(prompt_ids)), key=lambda i: (-len(prompt_ids[i]), i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _decode_text(tok, ids: list[int]) -> str:
    return tok.decode(ids, skip_special_tokens=True).strip()


def _encode_all(tok, prompts: Sequence[Prompt], system: str | None) -> list[list[int]]:
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of prompts, not a single string")
    return [encode_prompt(tok, p, system) for p in prompts]


# --------------------------------------------------------------------------- public API


def generate_greedy(
    model,
    tok,
    prompts: Sequence[Prompt],
    cfg: GenerationConfig | None = None,
    *,
    progress: bool = False,
    system: str | None = None,
) -> list[str]:
    """Greedy continuation of each prompt; returns the decoded new text (stripped), in input order.

    ``prompts`` are user messages (str) or chat message lists, rendered with the model's chat
    template by :func:`analysis.models.tokens.render_prompt` (``system`` adds a system message).
    ``cfg``: ``max_new_tokens`` and ``batch_size`` (its sampling fields are not used).
    """
    cfg = GenerationConfig() if cfg is None else cfg
    prompt_ids = _encode_all(tok, prompts, system)
    texts: list[str] = [""] * len(prompt_ids)
    for idx in _progress(_batches(prompt_ids, cfg.batch_size), progress, "greedy"):
        new = _decode_batch(model, tok, [prompt_ids[i] for i in idx], cfg)
        for i, ids in zip(idx, new, strict=True):
            texts[i] = _decode_text(tok, ids)
    return texts


def generate_sample(
    model,
    tok,
    prompts: Sequence[Prompt],
    cfg: GenerationConfig | None = None,
    *,
    n: int = 1,
    seed: int = 0,
    progress: bool = False,
    system: str | None = None,
    seeds: Sequence[int] | None = None,
    first_sample: int = 0,
) -> list[list[str]]:
    """``n`` samples per prompt from ``softmax(logits / temperature)`` (top-p filtered).

    Returns ``texts[i][j]`` = sample j of prompt i. Sample (i, j) uses a generator seeded from
    ``(seed, i, j)``: the same seed gives the same samples whatever the batch size. With
    ``seeds`` (one per prompt) it is seeded from ``(seeds[i], 0, j)`` instead, so a prompt's
    samples do not depend on its position in ``prompts`` either. ``first_sample`` shifts the sample
    index: ``texts[i][j]`` is then seeded as sample ``first_sample + j`` (a later block of a larger
    draw: blocks ``[0, a)`` and ``[a, n)`` together are the samples of one draw of ``n``).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if seeds is not None and len(seeds) != len(prompts):
        raise ValueError(f"seeds has {len(seeds)} entries for {len(prompts)} prompts")
    cfg = GenerationConfig() if cfg is None else cfg
    prompt_ids = _encode_all(tok, prompts, system)
    flat = [(i, j) for i in range(len(prompt_ids)) for j in range(n)]  # one row per (prompt, sample)
    flat_ids = [prompt_ids[i] for i, _ in flat]
    texts: list[list[str]] = [[""] * n for _ in prompt_ids]
    for idx in _progress(_batches(flat_ids, cfg.batch_size), progress, "sample"):
        gens = [
            torch.Generator().manual_seed(
                row_seed(seed, flat[r][0], first_sample + flat[r][1])
                if seeds is None
                else row_seed(seeds[flat[r][0]], 0, first_sample + flat[r][1])
            )
            for r in idx
        ]
        new = _decode_batch(model, tok, [flat_ids[r] for r in idx], cfg, generators=gens)
        for r, ids in zip(idx, new, strict=True):
            i, j = flat[r]
            texts[i][j] = _decode_text(tok, ids)
    return texts


def _progress(batches: list, enabled: bool, desc: str):
    if not enabled:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc=desc, unit="batch")
