"""Cached ARGS: reward-guided decoding with top-k candidates and weight w (design 3.2 and 6).

At step t every prompt b has a top-k candidate set ``C_t`` from the policy ``pi`` and each
candidate ``v`` gets the step score (design section 2)::

    s_t(v) = log pi(v | x, y_{<t}) + w * r_u(x, y_{<t} v)

``mode="greedy"`` keeps ``argmax_v s_t(v)``; ``mode="sample"`` draws from ``softmax(s_t / T)``.

Stop candidates (EOS and the generation config's stop ids): RMs are trained on responses
without them, so on every path (fast, text, and the reference) a stop candidate is scored with
the reward of the prefix without it, ``r_u(x, y_{<t})`` (the empty response's at t = 1).

The fast path (a feature RM whose backbone is the policy itself, ``backbone.kind == "shared"``)
never re-encodes text. One KV cache per batch of prompts (left padding, a 2D padding mask and
explicit ``position_ids``) holds ``x + y_{<t}``. Each step runs the k candidates of every prompt
as ONE forward of k query positions on top of that cache, with a custom 4D mask so that
candidate j attends to the real (non-pad) prefix and to itself, never to the other candidates::

    mask[b, 0, j, :] = [ attn2d[b, :L]  |  e_j ]      # (B, 1, k, L + k), additive float

All k candidates share the position id of the next token, so each one is computed exactly as
if it were the only continuation. The same pass yields

- the candidates' features ``select_hidden(outputs, layer)[b, j]`` -> reward (no LM head), and
- the final-norm hidden state of the chosen candidate -> the LM head is applied to that one
  row only -> the next step's logits.

Afterwards the chosen candidate's key/value (slot ``L + j``) is written into slot ``L`` of each
cache layer and the layer is sliced back to ``L + 1`` positions (a view; no copy of the cache,
no per-candidate cache copies). RGD then costs one batched k-token step per generated token.

Text RMs (``input_kind == "text"``, e.g. the oracle) and separate-backbone feature RMs go
through the text path: the candidates' texts are decoded and scored with ``rm.reward_text``,
then only the chosen token is fed to the cache.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from analysis.decoding.base import (
    model_device,
    new_cache,
    prefill_shared_prefix,
    row_seed,
    stop_token_ids,
)
from analysis.errors import ConfigError, lookup

log = logging.getLogger(__name__)

MODES = ("greedy", "sample")


@dataclass
class ArgsConfig:
    """Settings of ARGS decoding (defaults from design section 3.2 / Khanov et al. 2024)."""

    w: float = field(default=1.0, metadata={"help": "reward weight w >= 0 (0 = base greedy)"})
    k: int = field(default=10, metadata={"help": "number of top-k candidates per step"})
    max_new_tokens: int = field(default=32, metadata={"help": "maximum generated tokens"})
    mode: str = field(
        default="greedy", metadata={"help": "greedy (argmax of s_t) or sample (softmax(s_t/T))"}
    )
    temperature: float = field(default=1.0, metadata={"help": "temperature T of sample mode"})
    seed: int = field(default=0, metadata={"help": "seed of sample mode"})
    batch_size: int = field(default=8, metadata={"help": "prompts decoded together (left padding)"})

    def validate(self) -> ArgsConfig:
        if not (isinstance(self.k, int) and self.k >= 1):
            raise ConfigError(f"k must be an integer >= 1, got {self.k!r}")
        if not self.w >= 0:  # also rejects NaN
            raise ConfigError(f"w must be >= 0, got {self.w!r}")
        if not (isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1):
            raise ConfigError(f"max_new_tokens must be an integer >= 1, got {self.max_new_tokens!r}")
        lookup(MODES, self.mode, "mode")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        return self


@dataclass
class ArgsOutput:
    """One decoded response.

    ``tokens`` are the generated ids (ending with the stop token when one was emitted),
    ``text`` their decoding without special tokens. Per emitted token: ``step_scores`` = s_t of
    the chosen token, ``step_logprobs`` = log pi of it, ``step_rewards`` = r_u(x, y_{<=t}).
    ``reward`` = r_u(x, y) of the response without the stop token (the last non-stop step's
    reward, computed on exactly the generated tokens); NaN for an empty response and for
    ``rm=None`` (then ``step_rewards`` are NaN too). ``finished``: a stop token was emitted.
    """

    user_id: str
    prompt: str | list
    tokens: list[int]
    text: str
    step_scores: list[float]
    step_logprobs: list[float]
    step_rewards: list[float]
    reward: float
    finished: bool

    @classmethod
    def from_steps(
        cls, tok, user_id, prompt, tokens, scores, logprobs, rewards, finished: bool
    ) -> ArgsOutput:
        """One decoding from its per-step records; ``reward``: the last step before the stop token
        (the one rule of cached, multi-RM and reference ARGS)."""
        body = tokens[:-1] if finished else tokens
        return cls(
            user_id=user_id,
            prompt=prompt,
            tokens=tokens,
            text=tok.decode(tokens, skip_special_tokens=True),
            step_scores=scores,
            step_logprobs=logprobs,
            step_rewards=rewards,
            reward=rewards[len(body) - 1] if body else float("nan"),
            finished=finished,
        )


# --------------------------------------------------------------------------- shared helpers


def reward_path(rm, model, w: float) -> str:
    """Which way rewards are computed: ``"features"`` (fast path), ``"text"`` or ``"none"``.

    Raises ConfigError for an RM without a usable path (e.g. trained on another backbone).
    """
    from analysis.models.loading import model_id

    if rm is None:
        if w != 0:
            raise ConfigError("w > 0 needs a reward model (rm=None is only allowed with w = 0)")
        return "none"
    kind = getattr(rm, "input_kind", None)
    if kind == "text":
        return "text"
    if kind != "features":
        raise ConfigError(f"reward model {type(rm).__name__} has unknown input_kind {kind!r}")
    spec = getattr(rm, "backbone", None)
    if spec is None:
        raise ConfigError(
            f"reward model {type(rm).__name__} has no backbone spec; cannot compute its features"
        )
    if spec.kind == "separate":
        if getattr(rm, "featurizer", None) is None:
            raise ConfigError(
                f"reward model uses a separate backbone ('{spec.model_id}'): attach its featurizer first, "
                "rm.attach_featurizer(TextFeaturizer(encoder, encoder_tok, rm.backbone))"
            )
        return "text"  # reward_text through the attached TextFeaturizer
    if spec.model_id != model_id(model):
        raise ConfigError(
            f"reward model was trained on features of '{spec.model_id}' but the policy is "
            f"'{model_id(model)}': the shared-backbone fast path needs the same model "
            "(retrain the RM on this policy, or use a separate-backbone RM with a featurizer)"
        )
    return "features"


def warn_unknown_users(rm, user_ids: Sequence[str]) -> None:
    """Unknown users get the RM's documented fallback; say so once instead of staying silent."""
    if rm is None or not hasattr(rm, "knows_user"):
        return
    unknown = sorted({u for u in user_ids if not rm.knows_user(u)})
    if unknown:
        warnings.warn(
            f"{len(unknown)} user(s) unseen by the reward model ({', '.join(unknown[:5])}"
            f"{', ...' if len(unknown) > 5 else ''}): using the {getattr(rm, 'method', 'RM')} fallback",
            stacklevel=3,
        )


def rm_device(rm) -> torch.device:
    """Where a fitted feature RM keeps its tensors (its ``module_``); CPU when it has none."""
    mod = getattr(rm, "module_", None)
    for t in (*mod.parameters(), *mod.buffers()) if isinstance(mod, torch.nn.Module) else ():
        return t.device
    return torch.device("cpu")


def aligned_inputs(prompts, user_ids) -> tuple[list, list[str]]:
    """``(prompts, user_ids)`` as lists, one user id per prompt (else a ConfigError)."""
    prompts, user_ids = list(prompts), [str(u) for u in user_ids]
    if len(prompts) != len(user_ids):
        raise ConfigError(f"got {len(prompts)} prompts but {len(user_ids)} user ids")
    return prompts, user_ids


def prompt_text(prompt: str | list[dict]) -> str:
    """The plain prompt text handed to text RMs (the last user message for chat lists)."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else prompt[-1]["content"]


def text_rewards(
    rm, tok, user_ids, prompts, prefixes: list[list[int]], cand_ids: torch.Tensor, stops=frozenset()
) -> torch.Tensor:
    """Rewards of ``prefix + [candidate]`` texts for a text-path RM.

    prefixes: B lists of generated ids; cand_ids: (B, k). Returns (B, k) float32 on CPU. A stop
    candidate (in ``stops``) is scored as the prefix without it (the one stop rule, design 3.2).
    """
    B, k = cand_ids.shape
    users, ps, texts = [], [], []
    for b in range(B):
        for v in cand_ids[b].tolist():
            users.append(user_ids[b])
            ps.append(prompt_text(prompts[b]))
            texts.append(tok.decode(prefixes[b] + ([] if v in stops else [v]), skip_special_tokens=True))
    return reward_texts(rm, users, ps, texts).reshape(B, k)


def reward_texts(rm, user_ids, prompts, texts) -> torch.Tensor:
    """``rm.reward_text`` (N,) float32 on CPU, with the project's empty-prefix rule.

    A feature RM on a separate backbone cannot featurize a whitespace-only prefix (e.g. the
    first candidate is a space or a special token), so such a prefix is scored as ``" ."``, the
    convention of :func:`analysis.features.passes.text_prefix_features`. Text RMs (oracle) get the text
    unchanged (they define the empty string's reward themselves).
    """
    if getattr(rm, "input_kind", None) == "features":
        texts = [t if t.strip() else " ." for t in texts]
    return torch.as_tensor(
        rm.reward_text(list(user_ids), list(prompts), list(texts)), dtype=torch.float32
    ).cpu()


def pick(
    scores: torch.Tensor, mode: str, temperature: float, gens: Sequence[torch.Generator] | None
) -> torch.Tensor:
    """Index of the chosen candidate per row. scores: (B, k) -> (B,) long.

    Greedy: argmax (first index on ties, i.e. the higher-pi candidate). Sample: one draw per row
    from softmax(scores / T) on CPU with that row's generator ``gens[b]`` (reproducible).
    """
    if mode == "greedy":
        return scores.argmax(-1)
    probs = torch.softmax(scores.detach().float().cpu() / temperature, dim=-1)
    draws = [torch.multinomial(probs[b], 1, generator=gens[b]) for b in range(probs.shape[0])]
    return torch.cat(draws).to(scores.device)


def lm_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """LM head on final-norm hidden states (B, H) -> (B, V) float32 (with soft-capping if any)."""
    logits = model.get_output_embeddings()(hidden).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def prompt_generator(seed: int, index: int) -> torch.Generator:
    """The sampling generator of prompt ``index``: seeded from (seed, index), so draws do not
    depend on the batch size and the cached and reference ARGS make the same draws."""
    return torch.Generator().manual_seed(row_seed(int(seed), int(index), 0))


# --------------------------------------------------------------------------- cached ARGS


def _candidate_mask(attn: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive 4D mask (B, 1, k, L + k): candidate j sees the non-pad prefix and itself only."""
    B, L = attn.shape
    eye = torch.eye(k, dtype=torch.bool, device=attn.device).expand(B, k, k)
    allowed = torch.cat([attn.bool()[:, None, :].expand(B, k, L), eye], dim=-1)
    mask = torch.zeros(B, 1, k, L + k, dtype=dtype, device=attn.device)
    return mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)


def _keep_chosen(cache, L: int, chosen: torch.Tensor) -> None:
    """Move the chosen candidate's K/V (slot L + j_b) to slot L; drop the other candidates.

    Writes one slot per layer in place and slices each layer to L + 1 positions (a view).
    """
    rows = torch.arange(chosen.shape[0], device=chosen.device)
    for layer in cache.layers:
        for name in ("keys", "values"):
            t = getattr(layer, name)  # (B, heads, L + k, head_dim)
            t[:, :, L] = t[rows, :, L + chosen.to(t.device)]
            setattr(layer, name, t[:, :, : L + 1])


def check_full_attention_cache(cache) -> None:
    """Raise ConfigError unless every cache layer is a plain (full-attention) DynamicLayer."""
    from transformers.cache_utils import DynamicLayer

    for layer in cache.layers:
        if type(layer) is not DynamicLayer:
            raise ConfigError(
                f"cached ARGS needs full-attention DynamicCache layers, got {type(layer).__name__}; "
                "use analysis.decoding.reference.reference_args for this model"
            )


def _prefill(model, tok, prompts, hidden: bool):
    """Run ``prompts`` (left-padded, their shared token prefix once) into a new cache: returns
    ``(cache, cache keyword, outputs, 2D attention mask)``; ``hidden``: with all hidden states."""
    from analysis.models.tokens import cache_kwarg, common_prefix_len, encode_prompt, pad_token_id

    base = model.base_model
    ids = [encode_prompt(tok, p) for p in prompts]
    cache = new_cache(model)
    ckw = cache_kwarg(base)
    p = common_prefix_len(ids) if len(ids) > 1 else 0
    input_ids, attn, pos = prefill_shared_prefix(
        model, cache, ids, p if p >= 8 else 0, pad_token_id(tok), model_device(model)
    )
    out = base(
        input_ids=input_ids,
        attention_mask=attn,
        position_ids=pos,
        **{ckw: cache},
        use_cache=True,
        output_hidden_states=hidden,
    )
    return cache, ckw, out, attn


def _candidate_pass(base, cache, ckw: str, top_ids, attn, next_pos, dtype):
    """The k candidates of every row as one forward of k query positions on the cache (each sees
    the row's non-pad prefix and itself: :func:`_candidate_mask`), with all hidden states."""
    n, kk = top_ids.shape
    return base(
        input_ids=top_ids,
        attention_mask=_candidate_mask(attn, kk, dtype),
        position_ids=next_pos[:, None].expand(n, kk),
        **{ckw: cache},
        use_cache=True,
        output_hidden_states=True,
    )


def _gather_rows(cache, L: int, src: torch.Tensor, jt: torch.Tensor) -> None:
    """The next cache rows after a split or a drop: row i' is source row ``src[i']`` with its
    candidate ``jt[i']``'s K/V in slot L (a copy of every kept layer, (n', heads, L + 1, head_dim))."""
    for lay in cache.layers:
        for name in ("keys", "values"):
            t = getattr(lay, name)  # (n, heads, L + k, head_dim)
            setattr(lay, name, torch.cat([t[src, :, :L], t[src, :, L + jt].unsqueeze(2)], dim=2))


@torch.no_grad()
def _args_batch(model, tok, rms, prompts, user_ids, cfg: ArgsConfig, path: str, layer: int, stops, gens):
    """Decode one batch of prompts with each of ``rms`` (R >= 1; several only on the fast path).

    A "member" ``m = r * B + b`` is RM r's decoding of prompt b. A cache row holds one (prompt,
    generated tokens) history and the members currently on it (at most one per RM): all R members
    of a prompt start on one row; the k candidates of a row go through the policy once and every
    RM on it scores the same candidate features; a row is split (its cache copied) only when its
    members pick different tokens, and dropped once all its members stopped. One RM is the R = 1
    case (rows never split). ``gens[r][b]``: the sampling generator of member (r, b).

    Two savings that leave every row's computation unchanged (up to float rounding): a token
    prefix shared by all prompts (system prompt, instruction) is run once and its KV cache
    repeated over the batch (:func:`analysis.decoding.base.prefill_shared_prefix`, as greedy
    decoding does), and rows whose members all stopped are dropped from the batch and the cache
    at once. Returns one list of ArgsOutput per RM, prompts in input order.
    """
    R, B = len(rms), len(prompts)
    if path != "features" and R != 1:
        raise ValueError("several RMs share cache rows on the fast path only")
    device = model_device(model)
    base = model.base_model
    cache, ckw, out, attn = _prefill(model, tok, prompts, hidden=path == "features")
    if path == "features":
        from analysis.features.passes import select_hidden

        check_full_attention_cache(cache)
        devs = [rm_device(rm) for rm in rms]
        last = select_hidden(out, layer)[:, -1].float()
        # r_u(x, y_{<t}) of each member's current prefix: a stop candidate is scored with it (design 3.2)
        prefix_r = torch.cat(
            [rm.reward(list(user_ids), last.to(d)).float().cpu() for rm, d in zip(rms, devs, strict=True)]
        )
    logits = lm_logits(model, out.last_hidden_state[:, -1])  # (rows, V)
    next_pos = attn.sum(-1)  # (rows,) position id of the next token
    kk = min(cfg.k, logits.shape[-1])
    stop_ids = torch.tensor(sorted(stops), dtype=torch.long, device=device)
    M = R * B
    gen_ids: list[list[int]] = [[] for _ in range(M)]
    scores: list[list[float]] = [[] for _ in range(M)]
    lps: list[list[float]] = [[] for _ in range(M)]
    rews: list[list[float]] = [[] for _ in range(M)]
    done = [False] * M
    row_prompt = list(range(B))  # prompt of each cache row
    row_members = [[r * B + b for r in range(R)] for b in range(B)]  # live members on each row
    for _ in range(cfg.max_new_tokens):
        n = len(row_prompt)
        logp = torch.log_softmax(logits, dim=-1)
        top_lp, top_ids = logp.topk(kk, dim=-1)  # (n, k)
        L = cache.get_seq_length()
        if path == "features":
            out = _candidate_pass(base, cache, ckw, top_ids, attn, next_pos, out.last_hidden_state.dtype)
            feats = select_hidden(out, layer).float()  # (n, k, H)
            is_stop = torch.isin(top_ids, stop_ids).cpu()
        top_lp_c, top_ids_l = top_lp.float().cpu(), top_ids.tolist()
        # every RM scores the candidates of the rows its members are on (one call per RM)
        mem_row: dict[int, int] = {m: i for i, ms in enumerate(row_members) for m in ms}
        choice: dict[int, tuple[int, float, float]] = {}  # member -> (j, score, reward)
        for r, rm in enumerate(rms):
            ms = [m for m in range(r * B, (r + 1) * B) if m in mem_row]
            if not ms:
                continue
            rows = [mem_row[m] for m in ms]
            if path == "features":
                users = [user_ids[row_prompt[i]] for i in rows for _ in range(kk)]
                rr = rm.reward(users, feats[rows].reshape(len(rows) * kk, -1).to(devs[r])).float().cpu()
                rr = torch.where(is_stop[rows], prefix_r[ms][:, None], rr.reshape(len(rows), kk))
            elif path == "text":
                us, ps = [user_ids[row_prompt[i]] for i in rows], [prompts[row_prompt[i]] for i in rows]
                rr = text_rewards(rm, tok, us, ps, [gen_ids[m] for m in ms], top_ids[rows], stops).float()
            else:
                rr = torch.zeros(len(rows), kk)
            s = top_lp_c[rows] + cfg.w * rr
            j = pick(s, cfg.mode, cfg.temperature, [gens[r][m - r * B] for m in ms])
            for q, m in enumerate(ms):
                jq = int(j[q])
                choice[m] = (jq, float(s[q, jq]), float(rr[q, jq]))
        # the next cache rows: one per (row, chosen candidate) that still has a live member
        new_src, new_j, new_members = [], [], []
        at: dict[tuple[int, int], int] = {}
        for i, ms in enumerate(row_members):
            for m in ms:
                jq, sc, rw = choice[m]
                tokv = top_ids_l[i][jq]
                gen_ids[m].append(tokv)
                scores[m].append(sc)
                lps[m].append(float(top_lp_c[i, jq]))
                rews[m].append(rw if path != "none" else float("nan"))
                if path == "features":
                    prefix_r[m] = rw
                if tokv in stops:
                    done[m] = True
                    continue
                if (i, jq) not in at:
                    at[(i, jq)] = len(new_src)
                    new_src.append(i)
                    new_j.append(jq)
                    new_members.append([])
                new_members[at[(i, jq)]].append(m)
        if not new_src:
            break
        src = torch.tensor(new_src, device=device)
        if R == 1 or new_src == list(range(n)):
            # no row split: every row takes its chosen token in place, then the stopped rows leave
            j_rows = new_j if new_src == list(range(n)) else [choice[ms[0]][0] for ms in row_members]
            jr, all_rows = torch.tensor(j_rows, device=device), torch.arange(n, device=device)
            if path == "features":
                _keep_chosen(cache, L, jr)
                logits = lm_logits(model, out.last_hidden_state[all_rows, jr])
            else:  # feed the chosen tokens to the cache
                out = base(
                    input_ids=top_ids[all_rows, jr][:, None],
                    attention_mask=torch.cat([attn, attn.new_ones(n, 1)], dim=-1),
                    position_ids=next_pos[:, None],
                    **{ckw: cache},
                    use_cache=True,
                )
                logits = lm_logits(model, out.last_hidden_state[:, -1])
            if len(new_src) < n:
                cache.batch_select_indices(src)
                attn, next_pos, logits = attn[src], next_pos[src], logits[src]
        else:  # rows split (several RMs): copy each kept (row, candidate) into a cache row of its own
            jt = torch.tensor(new_j, device=device)
            _gather_rows(cache, L, src, jt)
            attn, next_pos = attn[src], next_pos[src]
            logits = lm_logits(model, out.last_hidden_state[src, jt])
        attn = torch.cat([attn, attn.new_ones(len(new_src), 1)], dim=-1)
        next_pos = next_pos + 1
        row_prompt = [row_prompt[i] for i in new_src]
        row_members = new_members

    return [
        [
            ArgsOutput.from_steps(
                tok, user_ids[b], prompts[b], gen_ids[m], scores[m], lps[m], rews[m], done[m]
            )
            for b, m in enumerate(range(r * B, (r + 1) * B))
        ]
        for r in range(R)
    ]


def args_generate(
    model,
    tok,
    rm,
    prompts: Sequence[str | list[dict]],
    user_ids: Sequence[str],
    cfg: ArgsConfig | None = None,
    *,
    layer: int | None = None,
    progress: bool = False,
) -> list[ArgsOutput]:
    """ARGS decoding (greedy or sampling) for ``prompts`` of ``user_ids`` under reward model ``rm``.

    Parameters
    ----------
    model, tok : the policy causal LM and its tokenizer (prompts rendered with its chat template).
    rm : a ``RewardModel`` (feature RM on this backbone -> cached fast path; text RM or
        separate-backbone RM -> text path), or None with ``w = 0`` (plain greedy through the same loop).
    cfg : the decoding settings (:class:`ArgsConfig`; default ``ArgsConfig()``), validated here.
    layer : feature layer; defaults to ``rm.backbone.layer``.

    Returns one :class:`ArgsOutput` per prompt, in input order. Sampling draws of prompt i come from a
    generator seeded from ``(cfg.seed, i)``: reproducible, and independent of ``cfg.batch_size``.

    Example
    -------
    With a tiny random model and no RM (``w = 0``: greedy decoding through the ARGS loop)::

    >>> from analysis.models.tiny import build_tiny_model
    >>> model, tok = build_tiny_model("llama")
    >>> cfg = ArgsConfig(w=0.0, k=3, max_new_tokens=4)
    >>> outs = args_generate(model, tok, None, ["Write a headline."], ["user_3"], cfg)
    >>> len(outs), outs[0].user_id, len(outs[0].tokens) <= 4
    (1, 'user_3', True)

    With a trained RM: ``args_generate(model, tok, rm, prompts, users, ArgsConfig(w=1.0, k=10))``.
    """
    cfg = (ArgsConfig() if cfg is None else cfg).validate()
    prompts, user_ids = aligned_inputs(prompts, user_ids)
    path = reward_path(rm, model, cfg.w)
    if layer is None:
        layer = rm.backbone.layer if path == "features" else -1
    warn_unknown_users(rm, user_ids)
    return _decode_batches(model, tok, [rm], prompts, user_ids, cfg, path, layer, progress, "ARGS")[0]


def _decode_batches(model, tok, rms, prompts, user_ids, cfg: ArgsConfig, path, layer, progress, desc):
    """:func:`_args_batch` over ``cfg.batch_size`` prompts at a time: one list of ArgsOutput per RM.
    Every RM gets its own sampling generators, seeded per prompt from ``(cfg.seed, index)``."""
    outs: list[list[ArgsOutput]] = [[] for _ in rms]
    stops = stop_token_ids(model, tok)
    starts = range(0, len(prompts), cfg.batch_size)
    for i in tqdm(starts, desc=f"{desc} w={cfg.w} k={cfg.k}", disable=not progress):
        idx = range(i, min(i + cfg.batch_size, len(prompts)))
        gens = [[prompt_generator(cfg.seed, b) for b in idx] for _ in rms]
        got = _args_batch(
            model, tok, rms, prompts[i : idx.stop], user_ids[i : idx.stop], cfg, path, layer, stops, gens
        )
        for r, o in enumerate(got):
            outs[r].extend(o)
    return outs


# --------------------------------------------------------------------------- several RMs at once


def args_generate_multi(
    model,
    tok,
    rms: Sequence,
    prompts: Sequence[str | list[dict]],
    user_ids: Sequence[str],
    cfg: ArgsConfig | None = None,
    *,
    progress: bool = False,
) -> list[list[ArgsOutput]]:
    """ARGS with each of ``rms`` on the same prompts: ``out[i]`` is what
    ``args_generate(model, tok, rms[i], prompts, user_ids, cfg)`` returns (same decoding rule,
    same per-prompt sampling generators), computed in one pass.

    The RMs' decodings of one prompt share a KV-cache row while their tokens agree (always at
    the first step; RMs of one study agree on about half of all later steps): the k candidates
    of a shared row go through the policy once and every RM scores the same candidate features,
    and a row is split (its cache copied) only when the RMs pick different tokens. On the study's
    real authors (5 RMs, k = 10) that halves the candidate rows; the results equal separate runs
    up to float rounding (batch composition), which the tests check token for token.

    Only for RMs on the shared-backbone fast path (feature RMs of this policy, one feature
    layer); otherwise (text RMs, a separate backbone, ``w = 0``) each RM runs on its own through
    :func:`args_generate`.
    """
    rms = list(rms)
    cfg = (ArgsConfig() if cfg is None else cfg).validate()
    prompts, user_ids = aligned_inputs(prompts, user_ids)
    paths = [reward_path(rm, model, cfg.w) for rm in rms]
    layers = {rm.backbone.layer for rm, p in zip(rms, paths, strict=True) if p == "features"}
    if not rms or set(paths) != {"features"} or len(layers) != 1:
        return [args_generate(model, tok, rm, prompts, user_ids, cfg, progress=progress) for rm in rms]
    for rm in rms:
        warn_unknown_users(rm, user_ids)
    desc = f"ARGS x{len(rms)} RMs"
    return _decode_batches(model, tok, rms, prompts, user_ids, cfg, "features", layers.pop(), progress, desc)
