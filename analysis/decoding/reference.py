"""Reference ARGS: the plain algorithm, recomputed from scratch every step (design 3.2).

Kept simple and obviously correct; it is the oracle for the cached implementation's
equivalence tests and the baseline of ``benchmarks/bench_args.py``. One prompt at a time, no
KV cache, no padding. At step t, with ``ids = encode_prompt(x) + y_{<t}``:

1. ``log pi(. | x, y_{<t}) = log_softmax(model(ids).logits[-1])``; take its top-k ``C_t``.
2. For each ``v`` in ``C_t``: run ``model(ids + [v])`` from scratch and take the features of the
   last position, ``phi(x, y_{<t} v) = select_hidden(outputs, layer)[-1]`` -> ``r_u`` (feature
   RMs), or decode the text ``y_{<t} v`` -> ``rm.reward_text`` (text RMs).
3. ``s_t(v) = log pi(v | ...) + w * r_u(x, y_{<t} v)``; keep the argmax or sample from
   ``softmax(s_t / T)``; stop at a stop token or after ``max_new_tokens``.

Cost: O(k * T^2) token positions per response, against O(k * T) for the cached version.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from analysis.decoding.args import (
    ArgsConfig,
    ArgsOutput,
    aligned_inputs,
    pick,
    prompt_generator,
    reward_path,
    rm_device,
    text_rewards,
    warn_unknown_users,
)
from analysis.decoding.base import stop_token_ids


@torch.no_grad()
def _reference_one(model, tok, rm, prompt, user_id, cfg: ArgsConfig, path, layer, stops, gen) -> ArgsOutput:
    from analysis.models import encode_prompt

    device = next(model.parameters()).device
    prompt_ids = encode_prompt(tok, prompt)
    gen_ids: list[int] = []
    scores, lps, rews = [], [], []
    finished = False
    for _ in range(cfg.max_new_tokens):
        ids = torch.tensor([prompt_ids + gen_ids], device=device)  # (1, P + t - 1)
        logp = torch.log_softmax(
            model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1].float(), dim=-1
        )  # (V,)
        top_lp, top_ids = logp.topk(min(cfg.k, logp.shape[-1]))  # (k,)
        if path == "features":
            from analysis.features import select_hidden

            cand = torch.cat([ids.expand(len(top_ids), -1), top_ids[:, None]], dim=1)  # (k, P + t)
            out = model(input_ids=cand, attention_mask=torch.ones_like(cand), output_hidden_states=True)
            feats = select_hidden(out, layer)[:, -1].float()  # (k, H)
            r = rm.reward([user_id] * len(top_ids), feats.to(rm_device(rm))).to(top_lp)
            is_stop = torch.tensor([int(v) in stops for v in top_ids], device=r.device)
            if bool(is_stop.any()):  # a stop candidate gets the reward of the prefix without it
                out_p = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
                r_p = rm.reward([user_id], select_hidden(out_p, layer)[:, -1].float().to(rm_device(rm)))
                r = torch.where(is_stop, r_p.to(r), r)
        elif path == "text":
            r = text_rewards(rm, tok, [user_id], [prompt], [gen_ids], top_ids[None], stops)[0].to(top_lp)
        else:
            r = torch.zeros_like(top_lp)
        s = top_lp + cfg.w * r
        j = int(pick(s[None], cfg.mode, cfg.temperature, [gen])[0])
        v = int(top_ids[j])
        gen_ids.append(v)
        scores.append(float(s[j]))
        lps.append(float(top_lp[j]))
        rews.append(float(r[j]) if path != "none" else float("nan"))
        if v in stops:
            finished = True
            break
    return ArgsOutput.from_steps(tok, user_id, prompt, gen_ids, scores, lps, rews, finished)


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

    Sampling uses the same per-prompt generators as the cached version (one draw per step), so
    both make the same draws.
    """
    cfg = (ArgsConfig() if cfg is None else cfg).validate()
    prompts, user_ids = aligned_inputs(prompts, user_ids)
    path = reward_path(rm, model, cfg.w)
    if layer is None:
        layer = rm.backbone.layer if path == "features" else -1
    warn_unknown_users(rm, user_ids)
    stops = stop_token_ids(model, tok)
    it = enumerate(zip(prompts, user_ids, strict=True))
    return [
        _reference_one(model, tok, rm, p, u, cfg, path, layer, stops, prompt_generator(cfg.seed, i))
        for i, (p, u) in tqdm(it, total=len(prompts), desc="reference ARGS", disable=not progress)
    ]
