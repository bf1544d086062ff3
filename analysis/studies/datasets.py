"""The study datasets: synthetic users, Pref-LaMP user tasks, preference pairs by dataset name."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from analysis.config import ConfigError, StudyConfig
from analysis.data.records import DataError, PreferencePair, UserTask
from analysis.studies.cache import StudyCache
from analysis.studies.models import model_key

STUDY1_DATASETS = (
    "synthetic_preflamp",
    "synthetic_style_swap",
    "synthetic_attributes",
    "lamp_preflamp",
    "news_category_preflamp",
    "personal_llm",
    "psoups",
    "tldr",
)
# Which datasets (study-1 names) and study-2/3 settings (preflamp sources) hold real people's
# preferences: only these decide a claim; the synthetic worlds are known-answer checks.
REAL_DATASETS = frozenset(
    {"lamp_preflamp", "news_category_preflamp", "personal_llm", "psoups", "tldr", "lamp", "news_category"}
)


def is_real(name: str) -> bool:
    """Whether dataset or setting ``name`` holds real people's data (it may enter a claim's
    verdict). Unknown names are not real: a verdict is never decided by data not known to be
    real. The one place this is looked up (a dataset registry can replace the set)."""
    return str(name) in REAL_DATASETS


def synthetic_data(cfg: StudyConfig):
    """The synthetic world: ``n_users`` users, ``synthetic_profile`` items each, ``synthetic_pool`` items."""
    from analysis.data.synthetic import make_synthetic_users

    return make_synthetic_users(
        n_users=cfg.n_users,
        n_profile=tuple(cfg.synthetic_profile),
        n_test=cfg.n_test_items,
        seed=cfg.seed,
        n_pool=cfg.synthetic_pool or None,
    )


def user_tasks(cfg: StudyConfig, source: str | None = None, max_profile: int | None = -1) -> list[UserTask]:
    """The users of Pref-LaMP studies: synthetic, news_category or lamp.

    Real data keeps every user with >= ``min_profile`` items, or the ``max_real_users`` users
    with the largest profiles (ties by user id) when that is > 0, and each user's
    ``max_profile`` newest profile items (default ``cfg.max_real_profile``; 0 or ``None`` keeps all).
    """
    from analysis.data.loaders import default_data_path, load_tasks

    source = source or cfg.preflamp_source
    if max_profile == -1:
        max_profile = cfg.max_real_profile
    if source == "synthetic":
        return synthetic_data(cfg).tasks
    path = cfg.data_paths.get(source) or default_data_path(source)
    if not path:
        raise ConfigError(f"preflamp_source '{source}' needs data_paths.{source} (a file or folder path)")
    kw = {"min_profile": cfg.min_profile} if source == "news_category" else {"task": cfg.task}
    tasks, _ = load_tasks(source, os.path.expanduser(path), **kw)
    sizes: dict[str, int] = {}
    for t in tasks:
        sizes[t.user_id] = max(sizes.get(t.user_id, 0), len(t.profile))
    ranked = sorted(sizes, key=lambda u: (-sizes[u], u))
    keep = set(ranked[: cfg.max_real_users] if cfg.max_real_users else ranked)
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
    cfg: StudyConfig, tasks: list[UserTask], model, tok, cache: StudyCache, source: str | None = None
) -> list[PreferencePair]:
    """Pref-LaMP pairs of ``tasks`` (negatives: the base policy's cached generations or another
    user's): ``cfg.negatives`` for the synthetic users, ``cfg.real_negatives`` for real ones
    (``source``: the tasks' source; None infers it)."""
    from analysis.data.preflamp import build_pref_lamp

    gen_id = f"{model_key(model)}|max_new_tokens={cfg.max_new_tokens}"
    real = (source != "synthetic") if source else not is_synthetic(cfg, tasks)
    pairs, _ = build_pref_lamp(
        tasks,
        task=cfg.task,
        negatives=cfg.real_negatives if real else cfg.negatives,
        generate_fn=base_generate_fn(cfg, model, tok),
        cache_path=cache.root / "base_generations.jsonl",
        model_id=gen_id,
        seed=cfg.seed,
        test_frac=cfg.pair_test_frac,
    )
    return pairs


def is_synthetic(cfg: StudyConfig, tasks: list[UserTask]) -> bool:
    """Whether ``tasks`` are the synthetic world's users (their negatives follow ``cfg.negatives``;
    real users' follow ``cfg.real_negatives``)."""
    synth = {(t.user_id, t.test_id, t.test_input) for t in synthetic_data(cfg).tasks}
    return all((t.user_id, t.test_id, t.test_input) in synth for t in tasks)


def attribute_pairs(
    cfg: StudyConfig,
    model,
    tok,
    cache: StudyCache,
    n_prompts: int | None = None,
    n_samples: int | None = None,
):
    """Attribute users over base-policy samples: ``n_samples`` samples (T = 1) for ``n_prompts``
    items (None: ``cfg.attribute_samples`` / ``cfg.attribute_prompts``)."""
    n_prompts = n_prompts or cfg.attribute_prompts
    n_samples = n_samples or cfg.attribute_samples
    from analysis.data.attributes import attribute_preference_pairs
    from analysis.data.synthetic import make_items
    from analysis.data.tasks import zero_shot_prompt
    from analysis.decoding.base import generate_sample

    data = synthetic_data(cfg)
    items = (
        list(data.items.values())
        if n_prompts <= len(data.items)
        else list(make_items(n_prompts, cfg.seed).values())
    )
    prompts = [zero_shot_prompt(cfg.task, it.input) for it in items[:n_prompts]]
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
        pairs = preflamp_pairs(cfg, data.tasks, model, tok, cache, source="synthetic")
        return Dataset(name, pairs, styles=data.styles)
    if name == "synthetic_style_swap":
        data = synthetic_data(cfg)
        return Dataset(name, style_swap_pairs(data, seed=cfg.seed), styles=data.styles)
    if name == "synthetic_attributes":
        ap = attribute_pairs(cfg, model, tok, cache)
        return Dataset(name, ap.pairs, attribute_weights=ap.weights)
    if name in ("lamp_preflamp", "news_category_preflamp"):
        source = name.split("_preflamp")[0]
        return Dataset(name, preflamp_pairs(cfg, user_tasks(cfg, source), model, tok, cache, source=source))
    if name in ("personal_llm", "psoups", "tldr"):  # public sets (analysis.data.public_sets)
        from analysis.data.public_sets import load_public_preferences

        params = {"seed": cfg.seed, "n_users": cfg.n_users, **cfg.public_sets.get(name, {})}
        params["path"] = os.path.expanduser(cfg.data_paths.get(name, "") or "")
        return Dataset(name, load_public_preferences(name, params)[0])
    raise ConfigError(f"unknown study-1 dataset '{name}'; known: {', '.join(STUDY1_DATASETS)}")
