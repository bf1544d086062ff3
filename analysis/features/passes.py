"""Backbone features for reward models: one-pass prefix features and an on-disk cache (design 6).

For a causal backbone the hidden state at position ``j`` depends only on tokens ``<= j``, so one
teacher-forced forward pass of ``x + y`` gives, for every response position ``t = 1..T``,

    phi(x, y_{<=t}) = h_layer[s + t - 1]          (H,)
    log pi(y_t | x, y_{<t}) = log_softmax(logits[s + t - 2])[y_t]

where ``s = len(encode_prompt(tok, x))`` is the explicit response-start offset (the one rule of
:mod:`analysis.models.loading`: a sequence is ``encode_prompt(...) + encode_response(...)``). Padding is
handled with an attention mask and explicit ``position_ids``, so a sequence gives the same
numbers alone or inside a left- or right-padded batch (tested to 1e-5).

A *separate* backbone (another model or tokenizer, e.g. the MiniLM encoder) goes through
:class:`TextFeaturizer`, which re-tokenizes text: slower, but it works with anything.

Example
-------
>>> from analysis.models.tiny import build_tiny_model
>>> model, tok = build_tiny_model("llama")
>>> pf = prefix_features(model, tok, ["Write a headline."], ["city council vote"])
>>> pf.features[0].shape[0] == len(pf.response_ids[0])
True
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from analysis.data.records import DataError
from analysis.models.tokens import (
    cache_kwarg,
    common_prefix_len,
    encode_prompt,
    encode_response,
    pad_token_id,
    render_prompt,
)

POOLINGS = ("last", "mean")
KINDS = ("shared", "separate")


@dataclass(frozen=True)
class BackboneSpec:
    """Which frozen model and layer produced a feature vector.

    Attributes
    ----------
    model_id: :func:`analysis.models.loading.model_id` of the backbone.
    layer: index into ``outputs.hidden_states`` (``output_hidden_states=True``); -1 = last, which in
        HF models already includes the final norm.
    kind: ``"shared"`` (the policy causal LM itself: fast path) or ``"separate"`` (text path).
    pooling: ``"last"`` (causal: hidden state of the last response token) or ``"mean"``
        (encoders: attention-masked mean over all tokens).
    """

    model_id: str
    layer: int = -1
    kind: str = "shared"
    pooling: str = "last"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"BackboneSpec.kind must be one of {KINDS}, got {self.kind!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"BackboneSpec.pooling must be one of {POOLINGS}, got {self.pooling!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BackboneSpec:
        return cls(**{k: d[k] for k in ("model_id", "layer", "kind", "pooling") if k in d})


def select_hidden(outputs, layer: int) -> torch.Tensor:
    """The hidden states of ``layer`` from model outputs: (B, L, H).

    The one place that picks the layer; the ARGS fast path calls it too, so features during
    decoding are the features the reward model was trained on.
    """
    hs = getattr(outputs, "hidden_states", None)
    if hs is None:
        raise ValueError(
            "model outputs carry no hidden_states: call the model with output_hidden_states=True"
        )
    n = len(hs)
    if not -n <= layer < n:
        raise ValueError(
            f"layer {layer} out of range: this model has {n} hidden-state layers (0..{n - 1} or -1)"
        )
    return hs[layer]


def is_causal_lm(model) -> bool:
    """True for a model with an LM head (prefix features, ``pooling="last"``)."""
    get = getattr(model, "get_output_embeddings", None)
    return get is not None and get() is not None


# --------------------------------------------------------------------------- prefix features


@dataclass
class PrefixFeatures:
    """Per-response prefix features from one forward pass.

    ``features[i]``: (T_i, H) float32, row t-1 = phi(x, y_{<=t}); ``logprobs[i]``: (T_i,)
    = log pi(y_t | x, y_{<t}); ``response_ids[i]``: (T_i,) int64; ``prompt_lens[i]``: the
    response-start offset s_i in the sequence ``encode_prompt + encode_response``.
    """

    features: list[torch.Tensor]
    logprobs: list[torch.Tensor]
    response_ids: list[torch.Tensor]
    prompt_lens: list[int]

    def __len__(self) -> int:
        return len(self.features)


def _encode_pairs(
    tok, prompts: Sequence, responses: Sequence[str]
) -> tuple[list[list[int]], list[list[int]]]:
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    p_ids, r_ids = [], []
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        if not isinstance(r, str) or not r.strip():
            raise DataError(
                "response is empty: every scored response needs at least one token",
                record=i,
                field="response",
            )
        pi, ri = encode_prompt(tok, p), encode_response(tok, r)
        if not pi:
            raise DataError("prompt renders to zero tokens", record=i, field="prompt")
        if not ri:
            raise DataError(f"response {r!r} encodes to zero tokens", record=i, field="response")
        p_ids.append(pi)
        r_ids.append(ri)
    return p_ids, r_ids


def _supports_logits_to_keep(model) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def _pad_batch(seqs: list[list[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Pad to (B, L); return ids, attention mask and each row's offset of its first real token."""
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    offsets = []
    for b, s in enumerate(seqs):
        off = L - len(s) if side == "left" else 0
        ids[b, off : off + len(s)] = torch.tensor(s, dtype=torch.long)
        mask[b, off : off + len(s)] = 1
        offsets.append(off)
    return ids, mask, offsets


@torch.no_grad()
def _forward(model, seqs, pad_id, *, layer, padding_side, need_from: list[int] | None):
    """Run one padded batch. Returns hidden (B, L, H), logits or None, offsets, logits start.

    ``need_from[b]``: first sequence index whose logits row b needs (None = no logits needed).
    Logits are kept only for the columns ``>= min needed`` (``logits_to_keep``) when supported.
    """
    ids, mask, offsets = _pad_batch(seqs, pad_id, padding_side)
    device = next(model.parameters()).device
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # real tokens get 0..len-1 on either side
    kwargs = dict(
        attention_mask=mask.to(device), position_ids=position_ids.to(device), output_hidden_states=True
    )
    L = ids.shape[1]
    start = 0
    if _supports_logits_to_keep(model):
        if need_from is None:
            kwargs["logits_to_keep"] = 1
        else:
            start = min(off + n for off, n in zip(offsets, need_from, strict=True))
            kwargs["logits_to_keep"] = L - start
    out = model(ids.to(device), **kwargs)
    hidden = select_hidden(out, layer)
    logits = out.logits if need_from is not None else None
    if logits is not None and logits.shape[1] == L:  # model ignored logits_to_keep
        start = 0
    return hidden, logits, offsets, start


def prefix_features(
    model,
    tok,
    prompts: Sequence,
    responses: Sequence[str],
    *,
    layer: int = -1,
    batch_size: int = 16,
    padding_side: str = "right",
    progress: bool = False,
) -> PrefixFeatures:
    """phi(x, y_{<=t}) and log pi(y_t | x, y_{<t}) for every response token, one pass per batch.

    Sequences are sorted by length before batching (less padding); results come back in input
    order and do not depend on the batch composition or ``padding_side`` ("right" or "left").
    Raises :class:`DataError` for an empty response.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    p_ids, r_ids = _encode_pairs(tok, prompts, responses)
    n = len(p_ids)
    feats: list = [None] * n
    lps: list = [None] * n
    order = sorted(range(n), key=lambda i: len(p_ids[i]) + len(r_ids[i]))
    pad_id = pad_token_id(tok)
    for b0 in tqdm(range(0, n, batch_size), desc="prefix features", disable=not progress, unit="batch"):
        idx = order[b0 : b0 + batch_size]
        seqs = [p_ids[i] + r_ids[i] for i in idx]
        need = [len(p_ids[i]) - 1 for i in idx]  # logits of y_1 come from the last prompt position
        hidden, logits, offsets, start = _forward(
            model, seqs, pad_id, layer=layer, padding_side=padding_side, need_from=need
        )
        for b, i in enumerate(idx):
            s, T, off = len(p_ids[i]), len(r_ids[i]), offsets[b]
            feats[i] = hidden[b, off + s : off + s + T].float().cpu()  # (T, H): positions of y_1..y_T
            rows = logits[b, off + s - 1 - start : off + s - 1 - start + T].float()  # (T, V)
            tgt = torch.tensor(r_ids[i], device=rows.device)
            lps[i] = torch.log_softmax(rows, dim=-1).gather(-1, tgt[:, None])[:, 0].cpu()
    return PrefixFeatures(
        features=feats,
        logprobs=lps,
        response_ids=[torch.tensor(r, dtype=torch.long) for r in r_ids],
        prompt_lens=[len(p) for p in p_ids],
    )


@torch.no_grad()
def sequence_features(
    model,
    tok,
    prompts: Sequence,
    responses: Sequence[str],
    *,
    layer: int = -1,
    batch_size: int = 16,
    padding_side: str = "right",
    progress: bool = False,
) -> torch.Tensor:
    """Features of full responses, (N, H) float32: the last row of :func:`prefix_features`.

    Cheaper than ``prefix_features`` (keeps one logits column only).
    """
    p_ids, r_ids = _encode_pairs(tok, prompts, responses)
    n = len(p_ids)
    out: list = [None] * n
    order = sorted(range(n), key=lambda i: len(p_ids[i]) + len(r_ids[i]))
    pad_id = pad_token_id(tok)
    for b0 in tqdm(range(0, n, batch_size), desc="sequence features", disable=not progress, unit="batch"):
        idx = order[b0 : b0 + batch_size]
        seqs = [p_ids[i] + r_ids[i] for i in idx]
        hidden, _, offsets, _ = _forward(
            model, seqs, pad_id, layer=layer, padding_side=padding_side, need_from=None
        )
        for b, i in enumerate(idx):
            out[i] = hidden[b, offsets[b] + len(seqs[b]) - 1].float().cpu()
    if not out:
        return torch.zeros(0, 0)
    return torch.stack(out)


def supports_prompt_sharing(model) -> bool:
    """Causal LMs that take ``past_key_values`` + ``position_ids`` (every HF decoder we use)."""
    params = inspect.signature(model.forward).parameters
    return (
        is_causal_lm(model)
        and ("cache" in params or "past_key_values" in params)
        and "position_ids" in params
    )


def _out_cache(outputs):
    """The KV cache a forward with ``use_cache=True`` returned (``cache`` or ``past_key_values``)."""
    cache = getattr(outputs, "cache", None)
    return outputs.past_key_values if cache is None else cache


@torch.no_grad()
def shared_prompt_pass(
    model,
    tok,
    prompts: Sequence,
    responses: Sequence[str],
    *,
    layer: int = -1,
    batch_size: int = 16,
    all_positions: bool = False,
    progress: bool = False,
) -> PrefixFeatures:
    """Prefix features with every prompt token run once: the fast path of the studies' features.

    Three savings over :func:`prefix_features`, none of which changes the numbers beyond float
    rounding (tested against it): the token prefix shared by *all* prompts (chat template,
    system message, instruction) runs once per batch; each distinct prompt runs once, however
    many responses it has (chosen and rejected share it); and ``batch_size`` prompts run
    together, so the products have many rows (a few-row forward is several times slower per
    token on CPU).

    Per batch: (1) the shared prefix, its KV cache repeated over the batch; (2) the prompts' rest,
    left-padded after it (padding sits between prefix and rest and is masked; positions count
    real tokens only); (3) each prompt's cache row repeated once per response and the responses,
    right-padded, on top. ``all_positions=False`` returns ``features[i]`` of shape (1, H) (the
    last response token: phi(x, y)) and empty ``logprobs``; ``True`` returns (T_i, H) features and
    the (T_i,) log-probs of the response tokens, as :func:`prefix_features`.
    """
    p_ids, r_ids = _encode_pairs(tok, prompts, responses)
    device = next(model.parameters()).device
    pad = pad_token_id(tok)
    ckw = cache_kwarg(model)
    groups: dict[tuple, list[int]] = {}
    for i, q in enumerate(p_ids):
        groups.setdefault(tuple(q), []).append(i)
    order = sorted(groups, key=lambda q: (len(q), q))  # similar lengths together: little padding
    chunks = [order[j : j + batch_size] for j in range(0, len(order), batch_size)]
    n = len(p_ids)
    feats: list = [None] * n
    lps: list = [None] * n
    for chunk in tqdm(chunks, desc="shared-prompt features", disable=not progress, unit="batch"):
        G = len(chunk)
        C = common_prefix_len(chunk) if G > 1 else 0
        cache = None  # the model makes its default cache on the first call
        if C:
            prefix = torch.tensor([list(chunk[0][:C])], device=device)
            cache = _out_cache(model(input_ids=prefix, use_cache=True, logits_to_keep=1))
            cache.batch_repeat_interleave(G)
        rest = [list(q[C:]) for q in chunk]
        S = max(len(r) for r in rest)
        ids = torch.full((G, S), pad, dtype=torch.long)
        smask = torch.zeros((G, S), dtype=torch.long)
        for g, r in enumerate(rest):
            ids[g, S - len(r) :] = torch.tensor(r, dtype=torch.long)
            smask[g, S - len(r) :] = 1
        mask = torch.cat([torch.ones((G, C), dtype=torch.long), smask], dim=1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, C:]
        o1 = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=pos.to(device),
            use_cache=True,
            logits_to_keep=1,
            **{ckw: cache},
        )
        cache = _out_cache(o1)
        rows = [(g, i) for g, q in enumerate(chunk) for i in groups[q]]
        gidx = torch.tensor([g for g, _ in rows], device=device)
        cache.batch_select_indices(gidx)
        R, L = len(rows), max(len(r_ids[i]) for _, i in rows)
        rid = torch.full((R, L), pad, dtype=torch.long)
        rmask = torch.zeros((R, L), dtype=torch.long)
        for b, (_, i) in enumerate(rows):
            rid[b, : len(r_ids[i])] = torch.tensor(r_ids[i], dtype=torch.long)
            rmask[b, : len(r_ids[i])] = 1
        plen = torch.tensor([len(chunk[g]) for g, _ in rows])
        o2 = model(
            input_ids=rid.to(device),
            attention_mask=torch.cat([mask[gidx.cpu()], rmask], dim=1).to(device),
            position_ids=(plen[:, None] + torch.arange(L)[None, :]).to(device),
            use_cache=True,
            output_hidden_states=True,
            logits_to_keep=L if all_positions else 1,
            **{ckw: cache},
        )
        hidden = select_hidden(o2, layer)  # (R, L, H)
        for b, (g, i) in enumerate(rows):
            T = len(r_ids[i])
            if not all_positions:
                feats[i] = hidden[b, T - 1 : T].float().cpu()
                continue
            feats[i] = hidden[b, :T].float().cpu()
            # log pi(y_1 | x) from the prompt's last position, y_2..y_T from the response positions
            step_logits = torch.cat([o1.logits[g, -1:], o2.logits[b, : T - 1]], dim=0).float()  # (T, V)
            tgt = torch.tensor(r_ids[i], device=step_logits.device)
            lps[i] = torch.log_softmax(step_logits, dim=-1).gather(-1, tgt[:, None])[:, 0].cpu()
    return PrefixFeatures(
        features=feats,
        logprobs=lps if all_positions else [],
        response_ids=[torch.tensor(r, dtype=torch.long) for r in r_ids],
        prompt_lens=[len(q) for q in p_ids],
    )


def shared_prompt_features(
    model,
    tok,
    prompts: list,
    responses: list[str],
    *,
    layer: int = -1,
    batch_size: int = 16,
    progress: bool = False,
) -> torch.Tensor:
    """phi(x, y) (N, H) for full responses through :func:`shared_prompt_pass` (each prompt token
    once); the same quantity :func:`sequence_features` takes from the full sequence."""
    if not len(responses):
        return torch.zeros(0, 0)
    pf = shared_prompt_pass(
        model, tok, prompts, responses, layer=layer, batch_size=batch_size, progress=progress
    )
    return torch.cat(pf.features)


# --------------------------------------------------------------------------- separate backbone


class TextFeaturizer:
    """Features from text for any backbone: (prompts, responses) -> (N, H) float32.

    - causal LM (``spec.pooling == "last"``): ``encode_prompt + encode_response`` with the
      backbone's own tokenizer, hidden state of the last response token at ``spec.layer``
      (identical to :func:`sequence_features`).
    - encoder (``spec.pooling == "mean"``): the text pair ``(render_prompt(x), y)`` tokenized by
      the encoder's tokenizer (truncated to its max length), attention-masked mean of layer
      ``spec.layer`` over all tokens (sentence-transformers pooling).
    """

    def __init__(self, model, tok, spec: BackboneSpec, batch_size: int = 32, max_length: int = 512):
        self.model, self.tok, self.spec = model, tok, spec
        self.batch_size, self.max_length = batch_size, max_length

    @torch.no_grad()
    def __call__(self, prompts: Sequence, responses: Sequence[str]) -> torch.Tensor:
        if self.spec.pooling == "last":
            return sequence_features(
                self.model, self.tok, prompts, responses, layer=self.spec.layer, batch_size=self.batch_size
            )
        _encode_check = [r for r in responses if not isinstance(r, str) or not r.strip()]
        if _encode_check:
            raise DataError(
                "response is empty: every scored response needs at least one token", field="response"
            )
        device = next(self.model.parameters()).device
        out = []
        for b0 in range(0, len(responses), self.batch_size):
            ps = [
                p if isinstance(p, str) else render_prompt(self.tok, p)
                for p in prompts[b0 : b0 + self.batch_size]
            ]
            enc = self.tok(
                ps,
                list(responses[b0 : b0 + self.batch_size]),
                padding=True,
                truncation="only_first",
                max_length=self.max_length,
                return_tensors="pt",
            ).to(device)
            hidden = select_hidden(self.model(**enc, output_hidden_states=True), self.spec.layer)  # (B, L, H)
            m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * m).sum(1) / m.sum(1).clamp(min=1)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, 0)


def text_prefix_features(
    featurizer: TextFeaturizer, policy_tok, prompts: Sequence, response_ids, *, progress: bool = False
) -> list[torch.Tensor]:
    """Slow path: phi_sep(x, decode(y_{<=t})) for t = 1..T_i, re-tokenizing each decoded prefix.

    ``response_ids[i]`` are the policy tokens of response i; returns a list of (T_i, H).
    """
    out = []
    for p, ids in tqdm(
        list(zip(prompts, response_ids, strict=True)), desc="text prefix features", disable=not progress
    ):
        ids = [int(v) for v in ids]
        texts = [policy_tok.decode(ids[: t + 1], skip_special_tokens=True) for t in range(len(ids))]
        texts = [t if t.strip() else " ." for t in texts]  # a whitespace-only prefix still gets a feature
        out.append(featurizer([p] * len(texts), texts))
    return out


# --------------------------------------------------------------------------- pair features + cache


@dataclass
class PairFeatures:
    """Features of preference pairs, aligned with their texts. chosen / rejected: (N, H) float32."""

    user_ids: list[str]
    chosen: torch.Tensor
    rejected: torch.Tensor
    pair_ids: list[str]
    splits: list[str]
    backbone: BackboneSpec
    prompts: list = field(default_factory=list)
    chosen_text: list[str] = field(default_factory=list)
    rejected_text: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def dim(self) -> int:
        return int(self.chosen.shape[1])

    def select(self, idx: Sequence[int]) -> PairFeatures:
        idx = list(idx)
        t = torch.tensor(idx, dtype=torch.long)

        def pick(xs):
            return [xs[i] for i in idx] if xs else []

        return PairFeatures(
            pick(self.user_ids),
            self.chosen[t],
            self.rejected[t],
            pick(self.pair_ids),
            pick(self.splits),
            self.backbone,
            pick(self.prompts),
            pick(self.chosen_text),
            pick(self.rejected_text),
        )

    def subset(self, split: str) -> PairFeatures:
        """The pairs of one split (``train``, ``val`` or ``test``)."""
        return self.select([i for i, s in enumerate(self.splits) if s == split])

    def pairs_per_user(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for u in self.user_ids:
            counts[u] = counts.get(u, 0) + 1
        return counts
