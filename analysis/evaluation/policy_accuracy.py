"""Policy accuracy: does the RGD scoring function built from an RM rank y_w above y_l? (design 2)

Two variants, each with and without length normalisation (divide by |y|), for many w at once:

- ``score`` (default): teacher-force each response and sum the ARGS step scores of its own
  tokens, ``S_u(y) = sum_t [ log pi(y_t | x, y_{<t}) + w * r_u(x, y_{<=t}) ]``.
- ``policy``: the log-likelihood under the RGD-adapted policy, whose step distribution is
  ``softmax_{v in C_t}(s_t(v) / T)`` over ``C_t = topk_t ∪ {y_t}``::

      log pi_RGD(y) = sum_t [ s_t(y_t) / T - logsumexp_{v in C_t} s_t(v) / T ]

``PA = mean over pairs of 1[score(y_w) > score(y_l)]`` (ties 0.5), per user then over users with a
bootstrap interval (:func:`analysis.metrics.intervals.summarize_by_user`).

Cost model (design 6). :func:`prepare_pa_data` runs once per dataset and is independent of the
RM: one teacher-forced pass per batch of responses (:func:`analysis.features.passes.prefix_features`:
``log pi(y_t|.)`` and ``phi(x, y_{<=t})`` for every t) and, for the ``policy`` variant, one more
pass per response that appends all T*k candidates to the teacher-forced KV cache with a 4D mask
(candidate v of step t sees ``x + y_{<t}`` and itself), giving the candidates' ids, log-probs and
features. Each (RM, w) evaluation is then tensor math plus one ``rm.reward`` call over the stored
features.

With w = 0 the ``score`` variant is exactly the base model's ranking accuracy
``1[log pi(y_w|x) > log pi(y_l|x)]``. The ``policy`` variant at w = 0 is the ranking accuracy of
the top-k-truncated base policy; it equals the base ranking accuracy exactly when ``k >= |V|``
(every token is a candidate), and only approximately for small k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pandas as pd
import torch
from tqdm.auto import tqdm

from analysis.data.records import PreferencePair
from analysis.errors import ConfigError
from analysis.features.passes import PrefixFeatures
from analysis.metrics.intervals import pairwise_accuracy, per_user_means, summarize_by_user
from analysis.rewards.base import PrefixRows

VARIANTS = ("score", "policy")
SIDES = ("chosen", "rejected")


@dataclass
class PolicyAccuracyConfig:
    """Settings of a policy-accuracy evaluation."""

    ws: tuple[float, ...] = field(default=(0.0, 0.5, 1.0, 1.5, 2.0), metadata={"help": "RGD weights w >= 0"})
    variants: tuple[str, ...] = field(default=VARIANTS, metadata={"help": "score and/or policy"})
    temperature: float = field(default=1.0, metadata={"help": "temperature T of the policy variant"})
    n_boot: int = field(default=2000, metadata={"help": "bootstrap resamples over users"})
    seed: int = field(default=0, metadata={"help": "bootstrap seed"})

    def validate(self) -> PolicyAccuracyConfig:
        if not self.ws:
            raise ConfigError("ws is empty: give at least one w")
        bad = [w for w in self.ws if not w >= 0]
        if bad:
            raise ConfigError(f"every w must be >= 0, got {bad}")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ConfigError(f"variants must be a non-empty subset of {VARIANTS}, got {list(self.variants)}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature!r}")
        return self


@dataclass
class SideData:
    """All responses of one side (chosen or rejected), packed along tokens (sum_i T_i = M).

    lengths (N,); token_ids (M,); logp (M,) = log pi(y_t|x, y_{<t}); feats (M, H) = phi(x, y_{<=t});
    optional policy data: cand_ids (M, k), cand_logp (M, k), cand_feats (M, k, H),
    cand_is_own (M, k) = candidate equals y_t (already counted as the own token).
    """

    lengths: torch.Tensor
    token_ids: torch.Tensor
    logp: torch.Tensor
    feats: torch.Tensor
    cand_ids: torch.Tensor | None = None
    cand_logp: torch.Tensor | None = None
    cand_feats: torch.Tensor | None = None
    cand_is_own: torch.Tensor | None = None

    def segment(self) -> torch.Tensor:
        """Response index of every packed token (M,)."""
        return torch.repeat_interleave(torch.arange(len(self.lengths)), self.lengths)

    def token_lists(self) -> list[list[int]]:
        return [t.tolist() for t in torch.split(self.token_ids, self.lengths.tolist())]


@dataclass
class PAData:
    """RM-independent per-pair data for policy accuracy (see :func:`prepare_pa_data`)."""

    user_ids: list[str]
    pair_ids: list[str]
    prompts: list
    model_id: str
    layer: int
    k: int | None
    chosen: SideData
    rejected: SideData

    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def has_policy(self) -> bool:
        return self.chosen.cand_ids is not None


# --------------------------------------------------------------------------- preparation


@torch.no_grad()
def _candidates(model, prompt_ids: list[int], resp_ids: list[int], k: int, layer: int, chunk: int):
    """Top-k candidates of every response step with their log-probs and features.

    Returns cand_ids (T, k), cand_logp (T, k), cand_feats (T, k, H) float32.
    """
    from analysis.decoding.args import check_full_attention_cache, lm_logits
    from analysis.decoding.base import model_device, new_cache
    from analysis.features.passes import select_hidden
    from analysis.models.tokens import cache_kwarg

    device = model_device(model)
    base = model.base_model
    P, T = len(prompt_ids), len(resp_ids)
    ids = torch.tensor([prompt_ids + resp_ids], device=device)
    cache = new_cache(model)
    ckw = cache_kwarg(base)
    out = base(input_ids=ids, attention_mask=torch.ones_like(ids), **{ckw: cache}, use_cache=True)
    check_full_attention_cache(cache)
    logp = torch.log_softmax(lm_logits(model, out.last_hidden_state[0, P - 1 : P + T - 1]), dim=-1)  # (T, V)
    cand_logp, cand_ids = logp.topk(min(k, logp.shape[-1]), dim=-1)  # (T, k)
    kk = cand_ids.shape[1]
    feats = []
    steps_per_chunk = max(1, chunk // kk)
    for t0 in range(0, T, steps_per_chunk):
        t1 = min(T, t0 + steps_per_chunk)
        q = (t1 - t0) * kk
        step = torch.arange(t0, t1, device=device).repeat_interleave(kk)  # (q,) step index t (0-based)
        # candidate for step t sits at position P + t and sees x + y_{<t} (positions < P + t) and itself
        keys = torch.arange(P + T, device=device)
        allowed = torch.cat(
            [keys[None, :] < (P + step)[:, None], torch.eye(q, dtype=torch.bool, device=device)], 1
        )
        dtype = out.last_hidden_state.dtype
        mask = torch.zeros(1, 1, q, P + T + q, dtype=dtype, device=device)
        mask.masked_fill_(~allowed[None, None], torch.finfo(dtype).min)
        o = base(
            input_ids=cand_ids[t0:t1].reshape(1, q),
            attention_mask=mask,
            position_ids=(P + step)[None],
            **{ckw: cache},
            use_cache=True,
            output_hidden_states=True,
        )
        feats.append(select_hidden(o, layer)[0].float().cpu())  # (q, H)
        cache.crop(-q)
    H = feats[0].shape[-1]
    return cand_ids.cpu(), cand_logp.float().cpu(), torch.cat(feats).view(T, kk, H)


def _side(model, tok, prompts, pf, *, layer, k, policy, chunk, dtype, progress, desc):
    """:class:`SideData` of one side from its prefix pass ``pf`` (+ the top-k candidate pass)."""
    from analysis.models.tokens import encode_prompt

    side = SideData(
        lengths=torch.tensor([len(r) for r in pf.response_ids], dtype=torch.long),
        token_ids=torch.cat(pf.response_ids),
        logp=torch.cat(pf.logprobs).float(),
        feats=torch.cat(pf.features).to(dtype),
    )
    if policy:
        ci, cl, cf = [], [], []
        for p, r in tqdm(
            list(zip(prompts, pf.response_ids, strict=True)),
            desc=f"candidates ({desc})",
            disable=not progress,
        ):
            a, b, c = _candidates(model, encode_prompt(tok, p), r.tolist(), k, layer, chunk)
            ci.append(a)
            cl.append(b)
            cf.append(c.to(dtype))
        side.cand_ids, side.cand_logp, side.cand_feats = torch.cat(ci), torch.cat(cl), torch.cat(cf)
        side.cand_is_own = side.cand_ids == side.token_ids[:, None]
    return side


def _prefix_pass(model, tok, prompts, responses, *, layer, batch_size, progress):
    """Prefix features and log-probs of every response token (:class:`analysis.features.passes.PrefixFeatures`):
    chosen and rejected share their prompt's forward pass where the model allows it."""
    from analysis.features.passes import prefix_features, shared_prompt_pass, supports_prompt_sharing

    fn = shared_prompt_pass if supports_prompt_sharing(model) else prefix_features
    kw = {"all_positions": True} if fn is shared_prompt_pass else {}
    return fn(model, tok, prompts, responses, layer=layer, batch_size=batch_size, progress=progress, **kw)


def prepare_pa_data(
    model,
    tok,
    pairs: Sequence[PreferencePair],
    *,
    layer: int = -1,
    k: int = 10,
    policy: bool = True,
    batch_size: int = 16,
    chunk: int = 256,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> PAData:
    """Precompute everything policy accuracy needs from the policy model, once per dataset.

    ``policy=False`` skips the candidate pass (enough for the ``score`` variant). ``chunk`` caps
    the candidate queries per forward; ``dtype`` (e.g. ``torch.float16``) halves the memory of
    the stored features, about ``2 * sum_i T_i * (k + 1) * H * 4`` bytes in float32.
    """
    from analysis.models.loading import model_id

    if not (isinstance(k, int) and k >= 1):
        raise ConfigError(f"k must be an integer >= 1, got {k!r}")
    pairs = list(pairs)
    if not pairs:
        raise ConfigError("no preference pairs to evaluate")
    prompts = [p.prompt for p in pairs]
    n = len(pairs)
    pf = _prefix_pass(
        model,
        tok,
        prompts * len(SIDES),
        [getattr(p, s) for s in SIDES for p in pairs],
        layer=layer,
        batch_size=batch_size,
        progress=progress,
    )
    sides = {}
    for j, s in enumerate(SIDES):
        part = slice(j * n, (j + 1) * n)
        one = PrefixFeatures(
            pf.features[part], pf.logprobs[part], pf.response_ids[part], pf.prompt_lens[part]
        )
        sides[s] = _side(
            model,
            tok,
            prompts,
            one,
            layer=layer,
            k=k,
            policy=policy,
            chunk=chunk,
            dtype=dtype,
            progress=progress,
            desc=s,
        )
    return PAData(
        user_ids=[p.user_id for p in pairs],
        pair_ids=[p.pair_id for p in pairs],
        prompts=prompts,
        model_id=model_id(model),
        layer=layer,
        k=k if policy else None,
        **sides,
    )


def prefix_rows(data: PAData) -> PrefixRows:
    """Every own prefix ``y_<=t`` of both sides of ``data`` as
    :class:`analysis.rewards.base.PrefixRows` (user id + feature row each): run on the training
    pairs, what :meth:`analysis.rewards.base.RewardModel.fit_reward_normalisation` fits the reward
    centre and scale on, so that they are the statistics of what policy accuracy and ARGS score."""
    users: list[str] = []
    feats = []
    for s in SIDES:
        d: SideData = getattr(data, s)
        users += [data.user_ids[i] for i in d.segment().tolist()]
        feats.append(d.feats)
    return PrefixRows(users, torch.cat(feats))


# --------------------------------------------------------------------------- rewards of every step


def _chunked_reward(rm, users: list[str], feats: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    from analysis.decoding.args import rm_device

    dev = rm_device(rm)
    out = [
        rm.reward(users[i : i + chunk], feats[i : i + chunk].to(dev, torch.float32)).float().cpu()
        for i in range(0, feats.shape[0], chunk)
    ]
    return torch.cat(out) if out else torch.zeros(0)


def _text_prompt(p) -> str:
    from analysis.decoding.args import prompt_text

    return prompt_text(p)


def step_rewards(rm, data: PAData, tok=None, *, need_candidates: bool = True) -> dict[str, tuple]:
    """r_u of every own prefix (M,) and every candidate prefix (M, k) of each side.

    Feature RMs use the stored features (their backbone must be the data's model and layer);
    text RMs (oracle, separate backbone) score decoded prefix texts and need ``tok``.
    """
    from analysis.decoding.args import reward_texts

    kind = getattr(rm, "input_kind", None)
    spec = getattr(rm, "backbone", None)
    text = kind == "text" or (spec is not None and spec.kind == "separate")
    if not text:
        if spec is None:
            raise ConfigError(f"reward model {type(rm).__name__} has no backbone spec")
        if spec.model_id != data.model_id or spec.layer != data.layer:
            raise ConfigError(
                f"reward model features come from '{spec.model_id}' layer {spec.layer}, but the data was "
                f"prepared from '{data.model_id}' layer {data.layer}: prepare the data with the RM's backbone"
            )
    elif tok is None:
        raise ConfigError("a text reward model needs the policy tokenizer (tok=) to decode prefixes")
    out = {}
    for s in SIDES:
        d: SideData = getattr(data, s)
        seg = d.segment()
        users = [data.user_ids[i] for i in seg.tolist()]
        own = cand = None
        want_cand = need_candidates and d.cand_ids is not None
        if not text:
            own = _chunked_reward(rm, users, d.feats)
            if want_cand:
                kk = d.cand_ids.shape[1]
                cand = _chunked_reward(
                    rm,
                    [u for u in users for _ in range(kk)],
                    d.cand_feats.reshape(-1, d.cand_feats.shape[-1]),
                ).view(-1, kk)
        else:
            own_t, cand_t, us, ps = [], [], [], []
            for ids in d.token_lists():
                for t in range(len(ids)):
                    own_t.append(tok.decode(ids[: t + 1], skip_special_tokens=True))
            ps_tok = [_text_prompt(data.prompts[i]) for i in seg.tolist()]
            own = reward_texts(rm, users, ps_tok, own_t)
            if want_cand:
                kk = d.cand_ids.shape[1]
                pos = 0
                for i, ids in enumerate(d.token_lists()):
                    for t in range(len(ids)):
                        for v in d.cand_ids[pos].tolist():
                            cand_t.append(tok.decode(ids[:t] + [v], skip_special_tokens=True))
                            us.append(data.user_ids[i])
                            ps.append(_text_prompt(data.prompts[i]))
                        pos += 1
                cand = reward_texts(rm, us, ps, cand_t).view(-1, kk)
        out[s] = (own, cand)
    return out


# --------------------------------------------------------------------------- evaluation


def _segment_sum(values: torch.Tensor, seg: torch.Tensor, n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.float64).index_add_(0, seg, values.double())


def response_scores(
    d: SideData, own_r, cand_r, w: float, variant: str, temperature: float = 1.0
) -> torch.Tensor:
    """Per-response score (N,) float64 of one side: ``S_u(y)`` or ``log pi_RGD(y)`` (unnormalised)."""
    seg, n = d.segment(), len(d.lengths)
    s_own = d.logp.double() + w * own_r.double()  # (M,)
    if variant == "score":
        return _segment_sum(s_own, seg, n)
    if d.cand_ids is None or cand_r is None:
        raise ConfigError("the policy variant needs candidate data: prepare_pa_data(..., policy=True)")
    s_c = (d.cand_logp.double() + w * cand_r.double()).masked_fill(d.cand_is_own, float("-inf"))  # (M, k)
    logz = torch.logsumexp(torch.cat([s_own[:, None], s_c], dim=1) / temperature, dim=1)
    return _segment_sum(s_own / temperature - logz, seg, n)


@dataclass
class PolicyAccuracyResult:
    """``summary``: one row per (variant, length_norm, w) with mean / ci_low / ci_high / n_users / n;
    ``per_user``: per-user accuracy; ``per_pair``: scores and correctness of every pair;
    ``rm_accuracy``: summarize_by_user of the RM's own accuracy (full-response rewards)."""

    summary: pd.DataFrame
    per_user: pd.DataFrame
    per_pair: pd.DataFrame
    rm_accuracy: dict


def policy_accuracy(
    rm, data: PAData, cfg: PolicyAccuracyConfig | None = None, *, tok=None
) -> PolicyAccuracyResult:
    """Policy accuracy of ``rm`` on prepared ``data`` for every w, variant and length normalisation.

    ``cfg``: the weights, variants, temperature and bootstrap (:class:`PolicyAccuracyConfig`;
    default ``PolicyAccuracyConfig()``; ``ws`` are taken as floats). ``rm=None`` evaluates the base
    policy alone (only w = 0 is meaningful then). ``tok``: the policy tokenizer, needed by a text RM.

    Example (with a policy ``model, tok``, a trained feature RM ``rm`` and its test pairs)::

        data = prepare_pa_data(model, tok, test_pairs, layer=rm.backbone.layer, k=10)
        res = policy_accuracy(rm, data, PolicyAccuracyConfig(ws=(0, 1, 2)))
        res.summary.query("variant == 'score' and not length_norm")
    """
    cfg = PolicyAccuracyConfig() if cfg is None else cfg
    cfg = replace(cfg, ws=tuple(float(w) for w in cfg.ws), variants=tuple(cfg.variants)).validate()
    need_c = "policy" in cfg.variants
    if need_c and not data.has_policy:
        raise ConfigError("the policy variant needs candidate data: prepare_pa_data(..., policy=True)")
    if rm is None:
        if any(w != 0 for w in cfg.ws):
            raise ConfigError("w > 0 needs a reward model")
        zero = {
            s: (
                torch.zeros_like(getattr(data, s).logp),
                torch.zeros_like(getattr(data, s).cand_logp) if need_c else None,
            )
            for s in SIDES
        }
        rewards, rm_acc = zero, {}
    else:
        from analysis.decoding.args import warn_unknown_users

        warn_unknown_users(rm, data.user_ids)
        rewards = step_rewards(rm, data, tok, need_candidates=need_c)
        last = {s: rewards[s][0][torch.cumsum(getattr(data, s).lengths, 0) - 1] for s in SIDES}
        acc = pairwise_accuracy(last["chosen"].numpy(), last["rejected"].numpy())
        rm_acc = summarize_by_user(data.user_ids, acc, n_boot=cfg.n_boot, seed=cfg.seed)
    rows, users_rows, pair_rows = [], [], []
    n_tok = {s: getattr(data, s).lengths.double() for s in SIDES}
    for variant in cfg.variants:
        for w in cfg.ws:
            raw = {
                s: response_scores(getattr(data, s), *rewards[s], w, variant, cfg.temperature) for s in SIDES
            }
            for norm in (False, True):
                sc = {s: (raw[s] / n_tok[s] if norm else raw[s]).numpy() for s in SIDES}
                correct = pairwise_accuracy(sc["chosen"], sc["rejected"])
                summ = summarize_by_user(data.user_ids, correct, n_boot=cfg.n_boot, seed=cfg.seed)
                key = {"variant": variant, "length_norm": norm, "w": w}
                rows.append({**key, **summ})
                n_by_user = pd.Series(data.user_ids).value_counts()
                for u, m in per_user_means(data.user_ids, correct).items():
                    users_rows.append({**key, "user_id": u, "accuracy": m, "n_pairs": int(n_by_user[u])})
                pair_rows.append(
                    pd.DataFrame(
                        {
                            **key,
                            "user_id": data.user_ids,
                            "pair_id": data.pair_ids,
                            "score_chosen": sc["chosen"],
                            "score_rejected": sc["rejected"],
                            "correct": correct,
                        }
                    )
                )
    return PolicyAccuracyResult(
        summary=pd.DataFrame(rows),
        per_user=pd.DataFrame(users_rows),
        per_pair=pd.concat(pair_rows, ignore_index=True),
        rm_accuracy=rm_acc,
    )
