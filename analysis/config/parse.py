"""Typed, validated study configuration and the two presets (design sections 1 and 5).

A :class:`StudyConfig` is built from a preset and then overridden, in this order, by a YAML or
JSON file, by ``--set key=value`` on the command line, and by papermill parameters. Every
override is validated: an unknown key or a value of the wrong type raises :class:`ConfigError`
naming the key (with a close-match suggestion for typos).

>>> cfg = load_config("embedded", {"seeds": [0, 1]})
>>> cfg.policy_model
'smollm2-135m-instruct'
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from analysis.config.presets import PRESETS
from analysis.config.schema import CONFIG_VERSION, ICL_POOLS, PA_POLICY_DATASETS, StudyConfig
from analysis.errors import ConfigError, lookup


def choices() -> dict[str, tuple[str, ...]]:
    """The allowed values of each choice key, read from the registries of the algorithms.

    Nothing is copied here: a retriever, rendering, task, RM method, data source or dtype added to
    its registry is accepted by the config at once. The registries are imported when a config is
    validated (not when this module is imported: the decoders import :mod:`analysis.config.parse`).

    >>> c = choices()
    >>> c["retriever"], "lore" in c["methods"], "news_headline" in c["task"]
    (('bm25', 'random', 'recency'), True, True)
    """
    from analysis.data.loaders import TASK_SOURCES
    from analysis.data.preflamp import NEGATIVES
    from analysis.data.tasks import TASKS
    from analysis.evaluation.policy_accuracy import VARIANTS
    from analysis.generation.icl import RENDERINGS, RETRIEVERS
    from analysis.models.loading import DTYPE_CHOICES
    from analysis.rewards import FEATURE_METHODS
    from analysis.rewards.base import REWARD_NORMS

    return {
        "dtype": tuple(DTYPE_CHOICES),
        "preflamp_source": tuple(TASK_SOURCES),
        "negatives": tuple(NEGATIVES),
        "real_negatives": tuple(NEGATIVES),
        "icl_rendering": tuple(RENDERINGS),
        "icl_pool": ICL_POOLS,
        "honest_tau": ("headline", "all"),
        "reward_norm": REWARD_NORMS,
        "retriever": tuple(RETRIEVERS),
        "task": tuple(TASKS),
        "methods": tuple(FEATURE_METHODS),  # a list key: every element must be a trainable RM method
        "pa_variants": tuple(VARIANTS),
        "pa_policy_datasets": PA_POLICY_DATASETS,
    }


_POSITIVE = (
    "threads",
    "n_users",
    "n_test_items",
    "min_profile",
    "k",
    "max_new_tokens",
    "max_prompt_tokens",
    "batch_size",
    "n_boot",
    "attribute_prompts",
    "attribute_samples",
)


def _check_type(key: str, value: Any, tp: Any) -> Any:
    """Validate (and lightly coerce: int -> float) ``value`` against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _check_type(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"config key '{key}': expected {tp}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"config key '{key}': expected None, got {value!r}")
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config key '{key}': expected a list, got {type(value).__name__} {value!r}")
        (arg,) = typing.get_args(tp)
        return [_check_type(f"{key}[{i}]", v, arg) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {type(value).__name__} {value!r}")
        kt, vt = typing.get_args(tp)
        return {_check_type(key, k, kt): _check_type(f"{key}.{k}", v, vt) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float) and isinstance(value, bool):
        raise ConfigError(f"config key '{key}': expected {tp.__name__}, got bool {value!r}")
    if not isinstance(value, tp):
        raise ConfigError(f"config key '{key}': expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def validate(cfg: StudyConfig) -> StudyConfig:
    """Check values beyond their types (choices, positivity, non-empty lists)."""
    for key, allowed in choices().items():
        val = getattr(cfg, key)
        for i, v in enumerate(val) if isinstance(val, list) else [(None, val)]:
            name = key if i is None else f"{key}[{i}]"
            lookup(allowed, v, "value", prefix=f"config key '{name}': ")
    if not (cfg.device == "cpu" or cfg.device.startswith("cuda") or cfg.device == "mps"):
        raise ConfigError(f"config key 'device': {cfg.device!r} is not cpu, cuda, cuda:N or mps")
    for key in _POSITIVE:
        if getattr(cfg, key) < 1:
            raise ConfigError(f"config key '{key}': must be >= 1, got {getattr(cfg, key)}")
    for key in ("models", "methods", "seeds", "budgets", "w_values", "datasets", "pa_variants"):
        if not getattr(cfg, key):
            raise ConfigError(f"config key '{key}': must not be empty")
    if any(w < 0 for w in [*cfg.w_values, *cfg.inspector_w]) or cfg.rgd_w < 0:
        raise ConfigError("config key 'w_values'/'rgd_w'/'inspector_w': RGD weights must be >= 0")
    if cfg.selection_n < 1:
        raise ConfigError(f"config key 'selection_n': must be >= 1, got {cfg.selection_n}")
    if cfg.selection_args_cells < 0:
        raise ConfigError(f"config key 'selection_args_cells': must be >= 0, got {cfg.selection_args_cells}")
    if cfg.best_of_n < 0:
        raise ConfigError(f"config key 'best_of_n': must be >= 0, got {cfg.best_of_n}")
    if cfg.shard_users < 0:
        raise ConfigError(f"config key 'shard_users': must be >= 0, got {cfg.shard_users}")
    _validate_sizes_and_sampling(cfg)
    lookup(PRESETS, cfg.preset, "preset", prefix="config key 'preset': ")
    return cfg


def _validate_sizes_and_sampling(cfg: StudyConfig) -> None:
    """Data sizes and sampling settings (kept apart from the generic checks above)."""
    prof = cfg.synthetic_profile
    if len(prof) != 2 or not 1 <= prof[0] <= prof[1]:
        raise ConfigError(
            f"config key 'synthetic_profile': expected [min, max] with 1 <= min <= max, got {prof}"
        )
    if cfg.synthetic_pool and cfg.synthetic_pool < prof[1] + cfg.n_test_items:
        raise ConfigError(
            f"config key 'synthetic_pool': {cfg.synthetic_pool} items cannot give a user "
            f"{prof[1]} profile + {cfg.n_test_items} test items (use 0 for automatic)"
        )
    for key in ("synthetic_pool", "max_real_users", "max_real_profile"):
        if getattr(cfg, key) < 0:
            raise ConfigError(
                f"config key '{key}': must be >= 0 (0 = automatic / all), got {getattr(cfg, key)}"
            )
    if cfg.attribute_samples < 2:
        raise ConfigError(
            f"config key 'attribute_samples': a pair needs >= 2 samples, got {cfg.attribute_samples}"
        )
    if not 0 < cfg.pair_test_frac <= 0.6:
        raise ConfigError(f"config key 'pair_test_frac': must be in (0, 0.6], got {cfg.pair_test_frac}")
    if not cfg.sample_temperature > 0:
        raise ConfigError(f"config key 'sample_temperature': must be > 0, got {cfg.sample_temperature}")
    if not 0 < cfg.sample_top_p <= 1:
        raise ConfigError(f"config key 'sample_top_p': must be in (0, 1], got {cfg.sample_top_p}")


def check_runnable(cfg: StudyConfig) -> None:
    """Checks that need the machine, made before a report starts: real data paths must exist.

    Kept out of :func:`validate` so presets (e.g. ``paper``, whose LaMP path the user supplies)
    can be loaded, printed and saved anywhere.
    """
    sources = {cfg.preflamp_source} | {
        d.removesuffix("_preflamp") for d in cfg.datasets if d.endswith("_preflamp")
    }
    for source in sorted(sources - {"synthetic"}):
        path = cfg.data_paths.get(source, "")
        if not path and source == "news_category":
            continue  # the vendored subset (analysis/data/vendored/)
        if not path:
            raise ConfigError(
                f"config key 'data_paths': the {source} data is used but data_paths.{source} is not set "
                f"(e.g. --set data_paths='{{{source}: /path/to/{source}}}')"
            )
        if not Path(path).expanduser().exists():
            raise ConfigError(f"config key 'data_paths.{source}': {path} does not exist")


def absolute_data_paths(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``overrides`` with each relative local path of ``data_paths`` made absolute (from the current
    folder): the report runs its notebooks in the run folder, where a relative path would not resolve.
    Hub ids (``hub:owner/name``) and empty paths are kept as they are."""
    from analysis.data.preferences import is_hub_source

    out = dict(overrides or {})
    paths = out.get("data_paths")
    if isinstance(paths, dict):
        out["data_paths"] = {
            k: v
            if not isinstance(v, str) or not v or is_hub_source(v)
            else str(Path(v).expanduser().resolve())
            for k, v in paths.items()
        }
    return out


def apply_overrides(cfg: StudyConfig, overrides: dict[str, Any] | None) -> StudyConfig:
    """Return a copy of ``cfg`` with ``overrides`` applied, type-checked and validated."""
    if not overrides:
        return validate(dataclasses.replace(cfg))
    hints = typing.get_type_hints(StudyConfig)
    changes = {}
    for key, value in overrides.items():
        lookup(hints, key, "config key")
        changes[key] = _check_type(key, value, hints[key])
    return validate(dataclasses.replace(cfg, **changes))


def load_config(
    preset: str = "embedded", overrides: dict[str, Any] | None = None, path: str | None = None
) -> StudyConfig:
    """Preset -> file (YAML/JSON, optional) -> overrides. A file may name its own ``preset``."""
    file_values: dict[str, Any] = {}
    if path:
        file_values = read_config_file(path)
        preset = file_values.pop("preset", preset)
    lookup(PRESETS, preset, "preset")
    cfg = apply_overrides(StudyConfig(), {**PRESETS[preset], "preset": preset})
    cfg = apply_overrides(cfg, file_values)
    return apply_overrides(cfg, overrides)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (errors name the file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of keys to values")
    data.pop("version", None)
    return data


def dump_config(cfg: StudyConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML (or JSON by suffix), atomically, with a version key."""
    from analysis.io import write_json, write_text

    data = {"version": CONFIG_VERSION, **cfg.to_dict()}
    if str(path).endswith(".json"):
        write_json(path, data)
    else:
        write_text(path, yaml.safe_dump(data, sort_keys=False))


def parse_set(items: list[str | list[str]] | None) -> dict[str, Any]:
    """Parse ``--set key=value`` items; values are YAML (``seeds=[0,1]``, ``device=cuda``).

    An item may be a list of words (``--set data_paths={mine: prefs.jsonl}`` split by a shell, as
    ``make report ARGS="..."`` does): they are one value, joined by single spaces.

    >>> parse_set([["data_paths={mine:", "prefs.jsonl}"], "seeds=[0, 1]"])
    {'data_paths': {'mine': 'prefs.jsonl'}, 'seeds': [0, 1]}
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if not isinstance(item, str):
            item = " ".join(item)
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {exc}") from exc
    return out
