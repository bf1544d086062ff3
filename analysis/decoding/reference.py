"""Reference ARGS: the plain algorithm, recomputed from scratch every step (design 3.2).

Written from the definition alone and sharing no helper with the cached implementation
(:mod:`analysis.decoding.args`), so that a bug there shows as a difference: it is the oracle of
the cached path's equivalence tests and the baseline of ``benchmarks/bench_args.py``. Only the
output type :class:`~analysis.decoding.args.ArgsOutput` (a plain record) is shared. One prompt
at a time, no KV cache, no padding. At step t, with ``ids = encode_prompt(x) + y_{<t}``:

1. ``log pi(. | x, y_{<t}) = log_softmax(model(ids).logits[-1])``; take its top-k ``C_t``.
2. For each ``v`` in ``C_t``, the reward of the text prefix ``y_{<t} v``: for a feature RM on
   the policy's own backbone, run ``model(ids + [v])`` from scratch and score the features of
   the last position, ``select_hidden(outputs, layer)[-1]``, with ``rm.reward``; for a text RM
   (or a feature RM on a separate backbone, through its featurizer) decode ``y_{<t} v`` and
   score it with ``rm.reward_text`` (a whitespace-only prefix is scored as ``" ."`` for feature
   RMs, which cannot featurize it: the project's empty-prefix rule). A stop candidate (EOS or a
   generation-config stop id) gets the reward of the prefix ``y_{<t}`` without it. Rewards are
   those the RM returns, i.e. already centred per user and scaled (the RM's own normalisation).
3. ``s_t(v) = log pi(v | ...) + w * r_u(x, y_{<t} v)``; keep the argmax (first on ties) or
   draw one candidate from ``softmax(s_t / T)`` with the prompt's generator; stop at a stop
   token or after ``max_new_tokens``.

Cost: O(k * T^2) token positions per response, against O(k * T) for the cached version.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from analysis.decoding.args import ArgsConfig, ArgsOutput
from analysis.decoding.base import row_seed
from analysis.errors import ConfigError


def _how_rewarded(rm, model, w) -> str:
    """``"none"`` (no RM, w = 0), ``"features"`` (the policy's own hidden states) or ``"text"``."""
    from analysis.models.loading import model_id

    if rm is None:
        if w != 0:
            raise ConfigError("w > 0 needs a reward model (rm=None is only allowed with w = 0)")
        return "none"
    if rm.input_kind == "text":
        return "text"
    spec = rm.backbone
    if spec.kind == "separate":
        if getattr(rm, "featurizer", None) is None:
            raise ConfigError("reward model uses a separate backbone: attach its featurizer first")
        return "text"
    if spec.model_id != model_id(model):
        raise ConfigError(
            f"reward model was trained on features of '{spec.model_id}' but the policy is '{model_id(model)}'"
        )
    return "features"


def _stop_ids(model, tok) -> set[int]:
    """EOS of the tokenizer and every eos id of the generation config (what HF generate stops at)."""
    out: set[int] = set()
    for v in (tok.eos_token_id, model.generation_config.eos_token_id):
        if v is not None:
            out.update([int(v)] if isinstance(v, int) else [int(x) for x in v])
    return out


def _prompt_text(prompt) -> str:
    """What a text RM sees as the prompt: the string, or the last user message of a chat."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else prompt[-1]["content"]


def _rm_device(rm) -> torch.device:
    mod = getattr(rm, "module_", None)
    params = list(mod.parameters()) + list(mod.buffers()) if isinstance(mod, torch.nn.Module) else []
    return params[0].device if params else torch.device("cpu")


@torch.no_grad()
def _last_features(model, rows: list[list[int]], layer: int) -> torch.Tensor:
    """Features of the last position of each of ``rows`` (equal lengths, so no padding), computed
    from scratch: (n, H) float32."""
    from analysis.features.passes import select_hidden

    device = next(model.parameters()).device
    t = torch.tensor(rows, device=device)
    out = model(input_ids=t, attention_mask=torch.ones_like(t), output_hidden_states=True)
    return select_hidden(out, layer)[:, -1].float()


def _prefix_rewards(model, tok, rm, how, prompt, prompt_ids, user_id, prefixes, layer) -> torch.Tensor:
    """r_u(x, y) of each generated-id list in ``prefixes`` (all of one length), from scratch:
    (n,) float32 on CPU."""
    if not prefixes:
        return torch.zeros(0)
    if how == "features":
        f = _last_features(model, [prompt_ids + p for p in prefixes], layer)
        r = rm.reward([user_id] * len(prefixes), f.to(_rm_device(rm)))
    else:
        texts = [tok.decode(p, skip_special_tokens=True) for p in prefixes]
        if rm.input_kind == "features":
            texts = [t if t.strip() else " ." for t in texts]
        n = len(texts)
        r = rm.reward_text([user_id] * n, [_prompt_text(prompt)] * n, texts)
    return torch.as_tensor(r, dtype=torch.float32).detach().cpu().reshape(len(prefixes))


@torch.no_grad()
def _reference_one(model, tok, rm, prompt, user_id, cfg: ArgsConfig, *, how, layer, stops, gen):
    w, k, max_new_tokens, mode, T = cfg.w, cfg.k, cfg.max_new_tokens, cfg.mode, cfg.temperature
    from analysis.models.tokens import encode_prompt

    device = next(model.parameters()).device
    prompt_ids = encode_prompt(tok, prompt)
    gen_ids: list[int] = []
    scores, lps, rews = [], [], []
    finished = False
    for _ in range(max_new_tokens):
        ids = torch.tensor([prompt_ids + gen_ids], device=device)
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1].float()
        logp = torch.log_softmax(logits, dim=-1)  # (V,)
        top_lp, top_ids = torch.topk(logp, min(k, logp.numel()))
        cands = [int(v) for v in top_ids]
        if how == "none":
            r = torch.zeros(len(cands))
        else:

            def rewards(prefixes):
                return _prefix_rewards(model, tok, rm, how, prompt, prompt_ids, user_id, prefixes, layer)

            grown = [v for v in cands if v not in stops]
            by_token = dict(zip(grown, rewards([gen_ids + [v] for v in grown]).tolist(), strict=True))
            if len(grown) < len(cands):  # a stop candidate: the reward of the prefix without it
                here = float(rewards([gen_ids])[0])
            r = torch.tensor([by_token[v] if v in by_token else here for v in cands])
        s = top_lp + w * r.to(top_lp)
        if mode == "greedy":
            j = int(torch.argmax(s))
        else:
            probs = torch.softmax(s.detach().float().cpu() / T, dim=-1)
            j = int(torch.multinomial(probs, 1, generator=gen)[0])
        gen_ids.append(cands[j])
        scores.append(float(s[j]))
        lps.append(float(top_lp[j]))
        rews.append(float(r[j]) if how != "none" else float("nan"))
        if cands[j] in stops:
            finished = True
            break
    body = len(gen_ids) - 1 if finished else len(gen_ids)
    return ArgsOutput(
        user_id=user_id,
        prompt=prompt,
        tokens=gen_ids,
        text=tok.decode(gen_ids, skip_special_tokens=True),
        step_scores=scores,
        step_logprobs=lps,
        step_rewards=rews,
        reward=rews[body - 1] if body else float("nan"),
        finished=finished,
    )


def reference_args(
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
    """Reference ARGS (same arguments and outputs as :func:`analysis.decoding.args.args_generate`;
    one prompt at a time, so ``cfg.batch_size`` is not used).

    Sampling draws prompt i's candidates with a generator seeded from ``(seed, i)`` (one draw per
    step, ``torch.multinomial`` over the k candidates in top-k order), the documented rule of the
    cached version, so both make the same draws.
    """
    cfg = (ArgsConfig() if cfg is None else cfg).validate()  # the config's own checks, not the path's
    prompts, user_ids = list(prompts), [str(u) for u in user_ids]
    if len(prompts) != len(user_ids):
        raise ConfigError(f"got {len(prompts)} prompts but {len(user_ids)} user ids")
    how = _how_rewarded(rm, model, cfg.w)
    if layer is None:
        layer = rm.backbone.layer if how == "features" else -1
    stops = _stop_ids(model, tok)
    it = enumerate(zip(prompts, user_ids, strict=True))
    return [
        _reference_one(
            model,
            tok,
            rm,
            p,
            u,
            cfg,
            how=how,
            layer=layer,
            stops=stops,
            gen=torch.Generator().manual_seed(row_seed(int(cfg.seed), i, 0)),
        )
        for i, (p, u) in tqdm(it, total=len(prompts), desc="reference ARGS", disable=not progress)
    ]
