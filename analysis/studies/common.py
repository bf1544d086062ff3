"""Shared building blocks of the three studies: cache, models, datasets, RM populations.

Everything expensive is cached under ``<cache_dir>/studies/`` keyed by a fingerprint of exactly
the settings it depends on (config keys, model id + weight fingerprint, data), so an interrupted
report resumes where it stopped and a later study reuses an earlier one's work (study 3 reuses the
policy model's Pref-LaMP generations of study 2, study 2 reuses study 1's RMs when the data
agree). Files are written atomically through :mod:`analysis.io`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from analysis.config import ConfigError, StudyConfig
from analysis.data.records import DataError, PreferencePair, UserTask
from analysis.io import read_json, write_json, write_text

log = logging.getLogger(__name__)

STUDY1_DATASETS = (
    "synthetic_preflamp",
    "synthetic_style_swap",
    "synthetic_attributes",
    "lamp_preflamp",
    "news_category_preflamp",
)


def key_hash(obj) -> str:
    """Short stable hash of any JSON-able object (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


_NOT_COMPUTATIONAL = ("plots.py", "widgets.py", "report.py", "findings.py", "__main__.py")


def code_version() -> str:
    """Hash of the package source that cached results depend on (everything but presentation).

    Part of every cache path, so editing a reward model, decoder or metric never reuses results
    computed by the old code; figures, widgets and the report runner are excluded.
    """
    pkg = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        if f.name in _NOT_COMPUTATIONAL or f.name.startswith("cli"):
            continue
        h.update(str(f.relative_to(pkg)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


class StudyCache:
    """JSON / DataFrame results under ``<cache_dir>/studies/<code_version>/<kind>/<key>.json``,
    written atomically."""

    def __init__(self, cache_dir: str | os.PathLike | None):
        from analysis.models import cache_dir as user_cache

        self.root = Path(cache_dir) if cache_dir else user_cache() / "studies-cache"
        self.root = self.root / "studies" / code_version()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, kind: str, key) -> Path:
        return self.root / kind / f"{key if isinstance(key, str) else key_hash(key)}.json"

    def json(self, kind: str, key, fn: Callable[[], object]):
        """``fn()`` once; later calls with the same key read the stored JSON."""
        p = self.path(kind, key)
        if p.exists():
            return read_json(p)
        value = fn()
        write_json(p, value)
        return value

    def frame(self, kind: str, key, fn: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        p = self.path(kind, key)
        if p.exists():
            return pd.read_json(io.StringIO(p.read_text()), orient="table", convert_dates=False)
        df = fn().reset_index(drop=True)
        write_text(p, df.to_json(orient="table", index=False, double_precision=15))
        return df


# --------------------------------------------------------------------------- models

_MODELS: dict[tuple, tuple] = {}


def get_model(cfg: StudyConfig, name: str | None = None):
    """``(model, tok)`` for ``name`` (default: the policy model), loaded once per process."""
    from analysis.models import load_model

    name = name or cfg.policy_model
    key = (name, cfg.device, cfg.dtype)
    if key not in _MODELS:
        if len(_MODELS) >= 1:  # keep one model in memory (study 3 walks through sizes)
            _MODELS.clear()
        _MODELS[key] = load_model(
            name,
            device=cfg.device,
            dtype=cfg.dtype,
            threads=cfg.threads,
            trust_remote_code=cfg.trust_remote_code,
        )
    torch.set_num_threads(cfg.threads)
    return _MODELS[key]


def model_key(model) -> str:
    """Model id + a weight fingerprint (two models with the same name but other weights differ)."""
    from analysis.models import model_id

    params = list(model.parameters())
    vals = [round(float(p.detach().flatten()[:256].double().sum()), 6) for p in (params[0], params[-1])]
    return f"{model_id(model)}#{key_hash([vals, sum(p.numel() for p in params)])}"


def model_size_b(cfg: StudyConfig, name: str, model=None) -> float:
    """Size in billions of parameters: ``cfg.model_sizes_b`` or counted from the weights."""
    if name in cfg.model_sizes_b:
        return float(cfg.model_sizes_b[name])
    model = model if model is not None else get_model(cfg, name)[0]
    return sum(p.numel() for p in model.parameters()) / 1e9


# --------------------------------------------------------------------------- data


def synthetic_data(cfg: StudyConfig):
    from analysis.data.synthetic import make_synthetic_users

    return make_synthetic_users(n_users=cfg.n_users, n_test=cfg.n_test_items, seed=cfg.seed)


def user_tasks(cfg: StudyConfig, source: str | None = None, max_profile: int | None = 40) -> list[UserTask]:
    """The users of Pref-LaMP studies (2-3): synthetic, news_category or lamp, at most ``n_users``.

    Real data keeps the ``n_users`` users with the largest profiles (ties by user id) and each
    user's ``max_profile`` newest profile items (bounded cost; ``None`` keeps all).
    """
    from analysis.data.loaders import load_tasks

    source = source or cfg.preflamp_source
    if source == "synthetic":
        return synthetic_data(cfg).tasks
    path = cfg.data_paths.get(source)
    if not path:
        raise ConfigError(f"preflamp_source '{source}' needs data_paths.{source} (a file or folder path)")
    kw = {"min_profile": cfg.min_profile} if source == "news_category" else {"task": cfg.task}
    tasks, _ = load_tasks(source, os.path.expanduser(path), **kw)
    sizes: dict[str, int] = {}
    for t in tasks:
        sizes[t.user_id] = max(sizes.get(t.user_id, 0), len(t.profile))
    keep = set(sorted(sizes, key=lambda u: (-sizes[u], u))[: cfg.n_users])
    out = []
    per_user: dict[str, int] = {}
    for t in tasks:
        if t.user_id not in keep or per_user.get(t.user_id, 0) >= cfg.n_test_items:
            continue
        per_user[t.user_id] = per_user.get(t.user_id, 0) + 1
        if max_profile and len(t.profile) > max_profile:
            prof = sorted(t.profile, key=lambda p: (p.date or "", p.item_id))[-max_profile:]
            t = UserTask(t.user_id, prof, t.test_input, t.test_output, t.test_id, t.test_date)
        out.append(t)
    if not out:
        raise DataError(f"no users with a profile of >= {cfg.min_profile} items", path=str(path))
    return out


def base_generate_fn(cfg: StudyConfig, model, tok):
    from analysis.decoding.base import generate_greedy

    def fn(prompts: list[str]) -> list[str]:
        return generate_greedy(
            model, tok, prompts, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size
        )

    return fn


def preflamp_pairs(
    cfg: StudyConfig, tasks: list[UserTask], model, tok, cache: StudyCache
) -> list[PreferencePair]:
    """Pref-LaMP pairs of ``tasks`` (negatives: the base policy's cached generations or another user's)."""
    from analysis.data.preflamp import build_pref_lamp

    gen_id = f"{model_key(model)}|max_new_tokens={cfg.max_new_tokens}"
    pairs, _ = build_pref_lamp(
        tasks,
        task=cfg.task,
        negatives=cfg.negatives,
        generate_fn=base_generate_fn(cfg, model, tok),
        cache_path=cache.root / "base_generations.jsonl",
        model_id=gen_id,
        seed=cfg.seed,
    )
    return pairs


def attribute_pairs(cfg: StudyConfig, model, tok, cache: StudyCache, n_prompts: int = 30, n_samples: int = 4):
    """Attribute users over base-policy samples: ``n_samples`` samples at T=1 for ``n_prompts`` items."""
    from analysis.data.attributes import attribute_preference_pairs
    from analysis.data.tasks import zero_shot_prompt
    from analysis.decoding.base import generate_sample

    data = synthetic_data(cfg)
    prompts = [zero_shot_prompt(cfg.task, it.input) for it in list(data.items.values())[:n_prompts]]
    key = {
        "model": model_key(model),
        "prompts": prompts,
        "n": n_samples,
        "mnt": cfg.max_new_tokens,
        "seed": cfg.seed,
    }
    samples = cache.json(
        "attribute_samples",
        key,
        lambda: generate_sample(
            model,
            tok,
            prompts,
            n=n_samples,
            temperature=1.0,
            seed=cfg.seed,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            progress=True,
        ),
    )
    return attribute_preference_pairs(
        prompts, dict(zip(prompts, samples, strict=True)), n_users=cfg.n_users, seed=cfg.seed
    )


@dataclass
class Dataset:
    """Pairs of one study-1 dataset plus what is needed for oracle checks."""

    name: str
    pairs: list[PreferencePair]
    styles: dict[str, str] = field(default_factory=dict)
    attribute_weights: dict[str, dict[str, float]] = field(default_factory=dict)


def study1_dataset(cfg: StudyConfig, name: str, model, tok, cache: StudyCache) -> Dataset:
    """Build the preference pairs of a study-1 dataset by name (see :data:`STUDY1_DATASETS`)."""
    from analysis.data.synthetic import style_swap_pairs

    if name == "synthetic_preflamp":
        data = synthetic_data(cfg)
        return Dataset(name, preflamp_pairs(cfg, data.tasks, model, tok, cache), styles=data.styles)
    if name == "synthetic_style_swap":
        data = synthetic_data(cfg)
        return Dataset(name, style_swap_pairs(data, seed=cfg.seed), styles=data.styles)
    if name == "synthetic_attributes":
        ap = attribute_pairs(cfg, model, tok, cache)
        return Dataset(name, ap.pairs, attribute_weights=ap.weights)
    if name in ("lamp_preflamp", "news_category_preflamp"):
        tasks = user_tasks(cfg, name.split("_preflamp")[0])
        return Dataset(name, preflamp_pairs(cfg, tasks, model, tok, cache))
    raise ConfigError(f"unknown study-1 dataset '{name}'; known: {', '.join(STUDY1_DATASETS)}")


# --------------------------------------------------------------------------- reward models


class TextFeatureStore:
    """Full-response features phi(x, y) of one backbone + layer, keyed by (prompt, response), on disk.

    Datasets share many texts (the same user headline is ``chosen`` in Pref-LaMP and style-swap
    pairs; attribute pairs reuse a few samples per prompt across all users), so features are
    computed once per unique text and stored in one safetensors file. Responses to the same
    prompt share one prompt forward pass (:func:`shared_prompt_features`, equal to
    :func:`analysis.features.sequence_features` within float tolerance; tested).
    """

    def __init__(self, cache: StudyCache, model, tok, layer: int):
        self.model, self.tok, self.layer = model, tok, layer
        self.path = (
            cache.root
            / "text_features"
            / f"{key_hash([model_key(model), layer, tok.chat_template or ''])}.safetensors"
        )
        self.table: dict[str, torch.Tensor] = {}
        if self.path.exists():
            from safetensors.torch import load_file

            self.table = load_file(str(self.path))

    @staticmethod
    def key(prompt, response: str) -> str:
        return key_hash([prompt, response])

    def get(
        self, prompts: list, responses: list[str], batch_size: int = 16, progress: bool = True
    ) -> torch.Tensor:
        """(N, H) float32 features, computing and storing the missing ones."""
        from safetensors.torch import save

        from analysis.features import sequence_features
        from analysis.io import atomic_open

        keys = [self.key(p, r) for p, r in zip(prompts, responses, strict=True)]
        todo = {k: (p, r) for k, p, r in zip(keys, prompts, responses, strict=True) if k not in self.table}
        if todo:
            ps, rs = zip(*todo.values(), strict=True)
            fn = shared_prompt_features if supports_prompt_sharing(self.model) else sequence_features
            feats = fn(
                self.model,
                self.tok,
                list(ps),
                list(rs),
                layer=self.layer,
                batch_size=batch_size,
                progress=progress,
            )
            self.table.update({k: feats[i].contiguous() for i, k in enumerate(todo)})
            with atomic_open(self.path, "wb") as fh:
                fh.write(save(self.table))
        return torch.stack([self.table[k] for k in keys]) if keys else torch.zeros(0, 0)


def supports_prompt_sharing(model) -> bool:
    """Causal LMs that take ``past_key_values`` + ``position_ids`` (every HF decoder we use)."""
    import inspect

    from analysis.features import is_causal_lm

    params = inspect.signature(model.forward).parameters
    return (
        is_causal_lm(model)
        and ("cache" in params or "past_key_values" in params)
        and "position_ids" in params
    )


@torch.no_grad()
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
    """phi(x, y) (N, H) for full responses, running each distinct prompt once.

    For a group of R responses to prompt x (P tokens): one forward of x gives its KV cache, which
    is repeated R times; the responses (right-padded to L) then run on top of it with
    ``position_ids = P .. P + L - 1`` and a (R, P + L) mask. The feature of response b is the
    hidden state at its last real token (``select_hidden(outputs, layer)[b, T_b - 1]``), the
    same quantity :func:`analysis.features.sequence_features` takes from the full sequence.
    Prompt-heavy data (short headlines after ~130-token prompts) costs ~3x less.
    """
    import inspect

    from analysis.features import select_hidden
    from analysis.models import encode_prompt, encode_response

    device = next(model.parameters()).device
    params = inspect.signature(model.forward).parameters
    cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.2x
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(json.dumps(p, sort_keys=True), []).append(i)
    out: list = [None] * len(responses)
    chunks = [
        (idx[0], idx[j : j + batch_size]) for idx in groups.values() for j in range(0, len(idx), batch_size)
    ]
    for first, idx in tqdm(chunks, desc="shared-prompt features", disable=not progress, unit="batch"):
        p_ids = encode_prompt(tok, prompts[first])
        r_ids = [encode_response(tok, responses[i]) for i in idx]
        if not p_ids or any(not r for r in r_ids):
            raise DataError("empty prompt or response: every scored response needs at least one token")
        P, L, R = len(p_ids), max(len(r) for r in r_ids), len(idx)
        pre = model(torch.tensor([p_ids], device=device), use_cache=True)
        cache = getattr(pre, "cache", None)
        cache = pre.past_key_values if cache is None else cache
        cache.batch_repeat_interleave(R)  # (1, ..., P, d) -> (R, ..., P, d) per layer
        ids = torch.full((R, L), pad, dtype=torch.long)
        mask = torch.zeros((R, P + L), dtype=torch.long)
        mask[:, :P] = 1
        for b, r in enumerate(r_ids):
            ids[b, : len(r)] = torch.tensor(r)
            mask[b, P : P + len(r)] = 1
        pos = torch.arange(P, P + L).expand(R, L)
        o = model(
            ids.to(device),
            attention_mask=mask.to(device),
            position_ids=pos.to(device),
            use_cache=True,
            output_hidden_states=True,
            **{cache_kw: cache},
        )
        hidden = select_hidden(o, layer)  # (R, L, H)
        for b, (i, r) in enumerate(zip(idx, r_ids, strict=True)):
            out[i] = hidden[b, len(r) - 1].float().cpu()
    return torch.stack(out) if out else torch.zeros(0, 0)


def features(cfg: StudyConfig, model, tok, pairs: list[PreferencePair], cache: StudyCache):
    """:class:`analysis.features.PairFeatures` of ``pairs`` (deduplicated through :class:`TextFeatureStore`)."""
    from analysis.features import BackboneSpec, PairFeatures
    from analysis.models import model_id

    store = TextFeatureStore(cache, model, tok, cfg.feature_layer)
    n = len(pairs)
    both = store.get(
        [p.prompt for p in pairs] * 2,
        [p.chosen for p in pairs] + [p.rejected for p in pairs],
        batch_size=cfg.batch_size,
    )
    return PairFeatures(
        user_ids=[p.user_id for p in pairs],
        chosen=both[:n].contiguous(),
        rejected=both[n:].contiguous(),
        pair_ids=[p.pair_id for p in pairs],
        splits=[p.split for p in pairs],
        backbone=BackboneSpec(model_id(model), cfg.feature_layer, "shared", "last"),
        prompts=[p.prompt for p in pairs],
        chosen_text=[p.chosen for p in pairs],
        rejected_text=[p.rejected for p in pairs],
    )


def check_splits(feats, name: str) -> None:
    for split in ("train", "test"):
        if not any(s == split for s in feats.splits):
            raise DataError(f"dataset '{name}' has no {split} pairs (too few items per user?)")


def bootstrap_by_user(feats, seed: int):
    """A seeded bootstrap resample of ``feats`` within each user (same pair count per user).

    Used to build RM populations: with it, two seeds of a method differ in their training data as
    well as in their initialisation (full-batch methods with a fixed init would otherwise give
    identical models for every seed, i.e. duplicate points in the tau population).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    by_user: dict[str, list[int]] = {}
    for i, u in enumerate(feats.user_ids):
        by_user.setdefault(u, []).append(i)
    idx = [
        int(j) for u in sorted(by_user) for j in rng.choice(by_user[u], size=len(by_user[u]), replace=True)
    ]
    return feats.select(idx)


def train_rm(
    feats,
    method: str,
    seed: int,
    budget: int,
    cache: StudyCache,
    feat_key: str,
    bootstrap: bool = True,
    normalize_reward: bool = True,
):
    """Fit (or load from the cache) one RM of ``method`` with ``seed`` and step ``budget``.

    Trains on the ``train`` split (a per-user bootstrap resample of it, seeded by ``seed``, when
    ``bootstrap``) with early stopping on ``val``; the RM's ``study_key_`` names its cache folder.
    ``normalize_reward=False`` keeps the raw reward scale (the study-1 sensitivity row).
    """
    from analysis.rewards import load_reward_model, make_reward_model

    folder = (
        cache.root
        / "rms"
        / key_hash(
            {
                "feat": feat_key,
                "method": method,
                "seed": seed,
                "steps": budget,
                "bootstrap": bootstrap,
                "normalize_reward": normalize_reward,
                "v": 2,  # rewards centred per user (issue 11)
            }
        )
    )
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        rm = load_reward_model(folder)
    else:
        rm = make_reward_model(method, seed=seed, steps=budget, normalize_reward=normalize_reward)
        val = feats.subset("val")
        train = feats.subset("train")
        rm.fit(bootstrap_by_user(train, seed) if bootstrap else train, val if len(val) else None)
        rm.save(folder)
    rm.study_key_ = folder.name  # identifies this RM in generation caches
    return rm


def feature_key(cfg: StudyConfig, model, tok, pairs) -> str:
    from analysis.features import BackboneSpec, feature_cache_key
    from analysis.models import model_id

    return feature_cache_key(model, tok, pairs, BackboneSpec(model_id(model), cfg.feature_layer))


def rm_accuracy_row(rm, test, cfg: StudyConfig) -> tuple[dict, pd.DataFrame]:
    """RM accuracy on ``test`` pairs: summary dict (mean, lo, hi, n_users, n) and the per-pair frame."""
    from analysis.rewards.evaluate import rm_accuracy, summarize_rm_accuracy

    df = rm_accuracy(rm, test)
    s = summarize_rm_accuracy(df, n_boot=cfg.n_boot, seed=cfg.seed)
    return {
        "rm_acc": s["mean"],
        "rm_acc_lo": s["ci_low"],
        "rm_acc_hi": s["ci_high"],
        "n_users": s["n_users"],
        "n_test_pairs": s["n"],
    }, df
