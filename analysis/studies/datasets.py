"""The study datasets: synthetic users, Pref-LaMP user tasks, preference pairs by dataset name.

Study 1's datasets are a registry (:data:`DATASETS`, name -> :class:`DatasetSpec`: its builder and
what it is); :func:`register_dataset` adds one, :func:`study1_dataset` builds one by name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from analysis.config.schema import StudyConfig
from analysis.data.records import DataError, DatasetCard, PreferencePair, UserTask
from analysis.decoding.base import GenerationConfig
from analysis.errors import ConfigError, unknown_message
from analysis.studies.cache import StudyCache
from analysis.studies.models import model_key


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

    Each user has up to ``cfg.n_test_items`` UserTasks (generation targets). News Category
    authors hold out their ``cfg.n_test_items`` newest articles, all with one shared profile of
    the older ones (:func:`analysis.data.news_category.load_news_category`, ``n_test``). LaMP
    files bring their own targets (their loader is not given ``n_test``: each LaMP question is
    one task; the first ``n_test_items`` tasks of a user are kept).

    Real data keeps every user with >= ``min_profile`` profile items, or the ``max_real_users``
    users with the largest profiles (ties by user id) when that is > 0, and each user's
    ``max_profile`` newest profile items (default ``cfg.max_real_profile``; 0 or ``None`` keeps
    all): the same items for every task of a user when the tasks share a profile.
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
    kw = (
        {"min_profile": cfg.min_profile, "n_test": cfg.n_test_items}
        if source == "news_category"
        else {"task": cfg.task}
    )
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
    from analysis.config.algorithms import generation_config
    from analysis.decoding.base import generate_greedy

    gen = generation_config(cfg)

    def fn(prompts: list[str]) -> list[str]:
        return generate_greedy(model, tok, prompts, gen)

    return fn


def base_sample_fn(cfg: StudyConfig, model, tok):
    """``(prompts, seeds) -> texts``: one base sample per prompt at the ``base_sample`` negatives'
    temperature and top_p, prompt i seeded by ``seeds[i]`` (:func:`analysis.data.preflamp.prompt_seed`)."""
    from dataclasses import replace

    from analysis.config.algorithms import generation_config
    from analysis.data.preflamp import SAMPLE_TEMPERATURE, SAMPLE_TOP_P
    from analysis.decoding.base import generate_sample

    sample = replace(generation_config(cfg), temperature=SAMPLE_TEMPERATURE, top_p=SAMPLE_TOP_P)

    def fn(prompts: list[str], seeds: list[int]) -> list[str]:
        return [s[0] for s in generate_sample(model, tok, prompts, sample, n=1, seeds=seeds)]

    return fn


def icl_other_prompt_fn(cfg: StudyConfig, tok):
    """``task -> chat messages``: the project's ICL prompt (:func:`analysis.generation.icl.build_icl_prompt`)
    with ``ICL_OTHER_K`` BM25-retrieved examples of ``task.profile`` (the ``icl_other`` negatives)."""
    from dataclasses import replace

    from analysis.config.algorithms import icl_config
    from analysis.data.preflamp import ICL_OTHER_K
    from analysis.generation.icl import build_icl_prompt

    conf = replace(icl_config(cfg, ICL_OTHER_K), retriever="bm25")  # the kind's cache id names bm25

    def fn(task: UserTask) -> list[dict]:
        return build_icl_prompt(tok, cfg.task, task, conf).messages

    return fn


def preflamp_pairs(
    cfg: StudyConfig, tasks: list[UserTask], model, tok, cache: StudyCache, source: str | None = None
) -> list[PreferencePair]:
    """Pref-LaMP pairs of ``tasks`` (negatives: one of :data:`analysis.data.preflamp.NEGATIVES`, the
    generated kinds cached): ``cfg.negatives`` for the synthetic users, ``cfg.real_negatives`` for real ones
    (``source``: the tasks' source; None infers it)."""
    from analysis.data.preflamp import build_pref_lamp

    gen_id = f"{model_key(model)}|max_new_tokens={cfg.max_new_tokens}"
    real = (source != "synthetic") if source else not is_synthetic(cfg, tasks)
    pairs, _ = build_pref_lamp(
        tasks,
        task=cfg.task,
        negatives=cfg.real_negatives if real else cfg.negatives,
        generate_fn=base_generate_fn(cfg, model, tok),
        sample_fn=base_sample_fn(cfg, model, tok),
        icl_prompt_fn=icl_other_prompt_fn(cfg, tok),
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
    from analysis.config.algorithms import generation_config
    from analysis.data.attributes import attribute_preference_pairs
    from analysis.data.synthetic import make_items
    from analysis.data.tasks import zero_shot_prompt
    from analysis.decoding.base import generate_sample

    gen = generation_config(cfg)
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
            GenerationConfig(temperature=1.0, max_new_tokens=gen.max_new_tokens, batch_size=gen.batch_size),
            n=n_samples,
            seed=cfg.seed,
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
    card: DatasetCard | None = (
        None  # a loader's card (users, pairs, splits, dropped rows); None: from the pairs
    )


@dataclass(frozen=True)
class DatasetSpec:
    """One study-1 dataset: ``build(cfg, name, model, tok, cache) -> Dataset`` and what it is.

    ``kind``: how its pairs are made (``preflamp``: a user's own text vs the base policy's or
    another user's; ``synthetic``: the synthetic world's oracle preferences; ``public``: a public
    preference set); ``real``: whether it is evidence for a claim (not one of this project's synthetic worlds, whose planted users are known-answer checks); ``description``: one line.
    """

    name: str
    build: Callable[..., Dataset]
    kind: str
    real: bool
    description: str


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add ``spec`` to :data:`DATASETS` (a name is registered once unless ``replace``)."""
    if spec.name in DATASETS and not replace:
        raise ValueError(f"study-1 dataset {spec.name!r} is already registered")
    DATASETS[spec.name] = spec
    return spec


def _synthetic_preflamp(cfg, name, model, tok, cache) -> Dataset:
    data = synthetic_data(cfg)
    return Dataset(
        name, preflamp_pairs(cfg, data.tasks, model, tok, cache, source="synthetic"), styles=data.styles
    )


def _synthetic_style_swap(cfg, name, model, tok, cache) -> Dataset:
    from analysis.data.synthetic import style_swap_pairs

    data = synthetic_data(cfg)
    return Dataset(name, style_swap_pairs(data, seed=cfg.seed), styles=data.styles)


def _synthetic_attributes(cfg, name, model, tok, cache) -> Dataset:
    ap = attribute_pairs(cfg, model, tok, cache)
    return Dataset(name, ap.pairs, attribute_weights=ap.weights)


def _real_preflamp(cfg, name, model, tok, cache) -> Dataset:
    source = name.split("_preflamp")[0]
    return Dataset(name, preflamp_pairs(cfg, user_tasks(cfg, source), model, tok, cache, source=source))


def _public(cfg, name, model, tok, cache) -> Dataset:
    from analysis.data.public_sets import load_public_preferences

    params = {"seed": cfg.seed, "n_users": cfg.n_users, **cfg.public_sets.get(name, {})}
    params["path"] = os.path.expanduser(cfg.data_paths.get(name, "") or "")
    return Dataset(name, load_public_preferences(name, params)[0])


for _spec in (
    DatasetSpec(
        "synthetic_preflamp", _synthetic_preflamp, "preflamp", False, "synthetic users' Pref-LaMP pairs"
    ),
    DatasetSpec(
        "synthetic_style_swap",
        _synthetic_style_swap,
        "synthetic",
        False,
        "synthetic users: their own style vs another user's on the same item",
    ),
    DatasetSpec(
        "synthetic_attributes",
        _synthetic_attributes,
        "synthetic",
        False,
        "attribute users over base-policy samples (oracle weights known)",
    ),
    DatasetSpec(
        "lamp_preflamp", _real_preflamp, "preflamp", True, "LaMP authors' Pref-LaMP pairs (data_paths.lamp)"
    ),
    DatasetSpec(
        "news_category_preflamp",
        _real_preflamp,
        "preflamp",
        True,
        "News Category authors' Pref-LaMP pairs",
    ),
    DatasetSpec("personal_llm", _public, "public", True, "PersonalLLM: simulated users weighting 10 RMs"),
    DatasetSpec("psoups", _public, "public", True, "P-SOUPS: 6 GPT-4-labelled users"),
    DatasetSpec("tldr", _public, "public", True, "Reddit TL;DR summaries, per labeller"),
):
    register_dataset(_spec)
STUDY1_DATASETS = tuple(DATASETS)  # the names registered here (DATASETS also holds later ones)


def study1_dataset(cfg: StudyConfig, name: str, model, tok, cache: StudyCache) -> Dataset:
    """Build the preference pairs of a study-1 dataset by name (see :data:`DATASETS`); any other
    name is the user's own preference file or hub dataset ``data_paths.<name>``."""
    spec = DATASETS.get(name)
    if spec is None:  # not registered: the user's own preferences (config checked data_paths names it)
        from analysis.studies.user_datasets import user_preference_dataset

        pairs, card = user_preference_dataset(cfg, name)
        return Dataset(name, pairs, card=card)
    return spec.build(cfg, name, model, tok, cache)


def check_datasets(cfg: StudyConfig) -> StudyConfig:
    """Every study-1 dataset is built in or a user's preference dataset named in ``data_paths``
    (a typo of a built-in name gets a close match); ``data_columns`` only maps named datasets' columns.

    Checked where the names are resolved (the study, the report runner, the sweep), before any
    model work; the config layer does not know the registry. Returns ``cfg``.
    """
    from analysis.data.preferences import column_names

    for i, name in enumerate(cfg.datasets):
        if name in STUDY1_DATASETS or cfg.data_paths.get(name):
            continue
        raise ConfigError(
            f"config key 'datasets[{i}]': {unknown_message('study-1 dataset', name, STUDY1_DATASETS)}; "
            f"or your own preference file: --set datasets=[{name}] --set data_paths='{{{name}: FILE}}'"
        )
    from analysis.data.preferences import is_hub_source

    for name in cfg.datasets:  # a user's dataset: its file exists (hub ids are checked on load)
        path = cfg.data_paths.get(name, "")
        if name not in STUDY1_DATASETS and not is_hub_source(path) and not Path(path).expanduser().exists():
            raise ConfigError(f"config key 'data_paths.{name}': {path} does not exist")
    for name, cols in cfg.data_columns.items():
        if name in STUDY1_DATASETS:
            raise ConfigError(
                f"config key 'data_columns.{name}': column mappings are for your own datasets, not built-in ones"
            )
        try:
            column_names(cols)
        except ConfigError as e:
            raise ConfigError(f"config key 'data_columns.{name}': {e}") from None
    return cfg


# The study-2/3 settings (Pref-LaMP sources) whose users are real people.
REAL_SETTINGS = frozenset({"lamp", "news_category"})


def is_real(name: str) -> bool:
    """Whether dataset or study-2/3 setting ``name`` may enter a claim's verdict: a registered
    dataset by its ``real`` flag (this project's synthetic worlds are known-answer checks, never
    evidence), a Pref-LaMP source by :data:`REAL_SETTINGS`, and any other name is a user's own
    preference dataset (``data_paths.<name>``), which is evidence about the user's data."""
    spec = DATASETS.get(str(name))
    if spec is not None:
        return spec.real
    if str(name) == "synthetic":
        return False
    return True
