"""Reward-model glue of the studies: pair features through the feature store, RM training, accuracy."""

from __future__ import annotations

import pandas as pd

from analysis.config.schema import StudyConfig
from analysis.data.records import DataError, PreferencePair
from analysis.studies.cache import StudyCache, key_hash


def study_spec(cfg: StudyConfig, model):
    """The backbone of the studies' RMs: the policy itself, layer ``cfg.feature_layer``, last token."""
    from analysis.features.passes import BackboneSpec
    from analysis.models.loading import model_id

    return BackboneSpec(model_id(model), cfg.feature_layer, "shared", "last")


def feature_store(cfg: StudyConfig, model, tok, cache: StudyCache):
    """The :class:`analysis.features.cache.TextFeatureStore` of the policy under ``cache``."""
    from analysis.features.cache import TextFeatureStore

    return TextFeatureStore(cache.root / "text_features", model, tok, study_spec(cfg, model))


def features(cfg: StudyConfig, model, tok, pairs: list[PreferencePair], cache: StudyCache):
    """:class:`analysis.features.passes.PairFeatures` of ``pairs`` (deduplicated through the feature store)."""
    from analysis.features.passes import PairFeatures

    store = feature_store(cfg, model, tok, cache)
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
        backbone=study_spec(cfg, model),
        prompts=[p.prompt for p in pairs],
        chosen_text=[p.chosen for p in pairs],
        rejected_text=[p.rejected for p in pairs],
    )


def check_splits(feats, name: str) -> None:
    """``feats`` (features with ``splits``, or a list of pairs) must have train and test pairs."""
    splits = feats.splits if hasattr(feats, "splits") else [p.split for p in feats]
    for split in ("train", "test"):
        if not any(s == split for s in splits):
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
    budgets: list[int] | None = None,
    reward_norm: str = "response",
    prefixes=None,
):
    """Fit (or load from the cache) one RM of ``method`` with ``seed`` and step ``budget``.

    Trains on the ``train`` split (a per-user bootstrap resample of it, seeded by ``seed``, when
    ``bootstrap``) with early stopping on ``val``; the RM's ``study_key_`` names its cache folder.
    ``normalize_reward=False`` keeps the raw reward scale (the study-1 sensitivity row).
    ``budgets`` (the population's other step budgets for this method and seed): on a cache miss
    they are all trained in one run (:meth:`analysis.rewards.base.RewardModel.fit_budgets`, the
    same models as separate fits) and cached, so their own calls are cache hits.
    ``reward_norm`` (``cfg.reward_norm``): ``prefix`` fits the reward centre and scale on
    ``prefixes`` (:class:`analysis.rewards.base.PrefixRows` of every prefix of the train split's
    responses, or a callable returning them, called only on a cache miss; the whole train split,
    not its bootstrap resample, so every seed's rewards are scaled on the same responses);
    ``response`` on the full training responses.
    """
    from analysis.config.algorithms import rm_config
    from analysis.rewards import load_reward_model, method_info

    def folder_of(steps: int):
        key = {
            "feat": feat_key,
            "method": method,
            "seed": seed,
            "steps": steps,
            "bootstrap": bootstrap,
            "normalize_reward": normalize_reward,
            "reward_norm": reward_norm,
            "v": 3,  # version of what an RM computes (2: rewards centred per user; 3: reward_norm)
        }
        return cache.root / "rms" / key_hash(key)

    def cached(folder) -> bool:
        return (folder / "config.json").exists() and (folder / "model.safetensors").exists()

    from analysis.errors import lookup
    from analysis.rewards.base import REWARD_NORMS

    lookup(REWARD_NORMS, reward_norm, "value", prefix="reward_norm: ")
    if reward_norm == "prefix" and prefixes is None:
        raise ValueError("reward_norm='prefix' needs the prefixes of the training responses (prefixes=)")
    folder = folder_of(budget)
    if cached(folder):
        rm = load_reward_model(folder)
    else:
        todo = sorted({budget, *(budgets or [])})
        todo = [b for b in todo if b == budget or not cached(folder_of(b))]
        rm0 = method_info(method).cls(rm_config(None, method, seed, budget, normalize_reward))
        val = feats.subset("val")
        train = feats.subset("train")
        pref = None
        if reward_norm == "prefix":
            pref = prefixes() if callable(prefixes) else prefixes
        fits = rm0.fit_budgets(
            bootstrap_by_user(train, seed) if bootstrap else train, val if len(val) else None, todo, pref
        )
        for b, fitted in fits.items():
            fitted.save(folder_of(b))
        rm = fits[budget]
    rm.study_key_ = folder.name  # identifies this RM in generation caches
    return rm


def feature_key(cfg: StudyConfig, model, tok, pairs) -> str:
    """:func:`analysis.features.cache.feature_cache_key` of ``pairs`` on the studies' backbone."""
    from analysis.features.cache import feature_cache_key

    return feature_cache_key(model, tok, pairs, study_spec(cfg, model))


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
