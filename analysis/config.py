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
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from analysis.errors import ConfigError

CONFIG_VERSION = 1
ICL_POOLS = ("train", "profile")  # icl_pool: the RMs' training items (ICL parity) or the whole profile


@dataclass
class StudyConfig:
    """Everything a study run depends on. Field comments are the documentation."""

    preset: str = "embedded"  # name of the preset this config started from
    # --- models
    policy_model: str = "smollm2-135m-instruct"  # causal LM for studies 1-2 (embedded name, folder or hub id)
    models: list[str] = field(
        default_factory=lambda: ["smollm2-135m-instruct"]
    )  # study 3: models across sizes
    model_sizes_b: dict[str, float] = field(default_factory=lambda: {"smollm2-135m-instruct": 0.135})
    device: str = "cpu"  # cpu | cuda | cuda:N
    dtype: str = "auto"  # one of analysis.models.DTYPES; auto: bfloat16 on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), else float32 (models.resolve_dtype)
    threads: int = 2  # torch.set_num_threads on CPU
    trust_remote_code: bool = False  # never on unless asked for
    feature_layer: int = -1  # hidden layer giving phi(x, y) (index into hidden_states)
    # --- data
    datasets: list[str] = field(
        default_factory=lambda: ["synthetic_preflamp", "synthetic_style_swap", "synthetic_attributes"]
    )  # study 1 datasets
    preflamp_source: str = "synthetic"  # study 2-3 users: one of analysis.data.loaders.TASK_SOURCES
    data_paths: dict[str, str] = field(
        default_factory=dict
    )  # e.g. {"news_category": "...jsonl", "lamp": "dir"}
    task: str = "news_headline"  # one of analysis.data.tasks.TASKS
    n_users: int = 6  # synthetic users (or max authors/users taken from real data)
    n_test_items: int = 3  # held-out generation targets per user
    min_profile: int = 5  # real data: minimum profile size per user
    negatives: str = "base"  # Pref-LaMP rejected responses: one of analysis.data.preflamp.NEGATIVES
    # sizes of the synthetic world and of the real-author data (power of study 1: test pairs per dataset)
    synthetic_profile: list[int] = field(
        default_factory=lambda: [12, 20]
    )  # synthetic users: profile items per user, drawn uniformly from [min, max]
    synthetic_pool: int = (
        0  # synthetic news items shared by all users; 0 = max(60, max profile + n_test_items + 10)
    )
    attribute_prompts: int = 30  # synthetic_attributes: prompts (items) whose base samples users label
    attribute_samples: int = (
        4  # synthetic_attributes: base-policy samples per prompt (pairs are drawn among them)
    )
    max_real_users: int = (
        0  # real data: at most this many users, largest profiles first; 0 = every user with >= min_profile
    )
    max_real_profile: int = 40  # real data: each user's newest profile items kept (0 = all)
    real_negatives: str = (
        "base"  # Pref-LaMP negatives for real users (news_category, lamp): base | other_user
    )
    pair_test_frac: float = (
        0.2  # Pref-LaMP pairs: share of each user's (or the shared pool's) items held out as test pairs
    )
    public_sets: dict[str, dict[str, int | float | str]] = field(
        default_factory=dict
    )  # settings of the public study-1 sets, e.g. {"personal_llm": {"alpha": 0.01}} (analysis.data.public_sets)
    # --- reward models
    methods: list[str] = field(
        default_factory=lambda: ["shared_bt", "per_user_bt", "lore", "pal", "vpl"]
    )  # trained RM methods: names in analysis.rewards.FEATURE_METHODS
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    budgets: list[int] = field(default_factory=lambda: [25, 300])  # training step budgets (RM population)
    rm_bootstrap: bool = True  # train each RM on a per-user bootstrap resample of the training pairs (seeded)
    # --- decoding
    w_values: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 1.5, 2.0])
    pa_variants: list[str] = field(
        default_factory=lambda: ["score", "policy"]
    )  # study 1 policy-accuracy variants (analysis.policy_accuracy.VARIANTS); policy needs a top-k candidate pass (~3x the cost of the rest of study 1's model work)
    k: int = 10  # ARGS top-k candidates
    rgd_w: float = 1.0  # w used for RGD generations in studies 2-3
    inspector_w: list[float] = field(
        default_factory=lambda: [0.5, 2.0]
    )  # study 2 (main setting): extra ARGS weights generated for the inspector (notebook 04); each costs one ARGS run per RM and user
    best_of_n: int = 4  # n for best-of-n (0 disables)
    sample_temperature: float = 0.7  # sampling temperature of best-of-n and of the sampled base
    sample_top_p: float = 0.9  # nucleus (top-p) threshold of best-of-n and of the sampled base (1 = off)
    sampled_base: bool = (
        True  # study 2: a "sampled base" system (one sample, same settings) beside base greedy
    )
    icl_pool: str = (
        "train"  # ICL retrieves from: train = the items the RMs were trained on (ICL parity) | profile = all
    )
    icl_k: list[int] = field(default_factory=lambda: [1, 2, 4])
    icl_rendering: str = "chat_turns"  # one of analysis.icl.RENDERINGS
    retriever: str = "bm25"  # one of analysis.icl.RETRIEVERS
    max_new_tokens: int = 24
    max_prompt_tokens: int = 1024
    batch_size: int = 16
    shard_users: int = 0  # generations are computed and cached per shard of this many users (0: one shard)
    # --- evaluation
    rouge_stemming: bool = True  # LaMP's own evaluation used no stemming; both are reported
    n_boot: int = 1000
    honest_tau: str = "headline"  # study 1: honest tau interval for headline = both variants at rgd_w (claim 1) | all settings
    seed: int = 0  # data generation / bootstrap seed
    # --- output
    cache_dir: str = ""  # intermediate results; empty = <output root>/cache

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint(self, keys: list[str] | None = None) -> str:
        """Short hash of the config (or of ``keys`` only): names cache folders."""
        d = self.to_dict()
        if keys is not None:
            d = {k: d[k] for k in keys}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


PRESETS: dict[str, dict[str, Any]] = {
    # The default (issue 12): real News Category authors first. Without data_paths.news_category the
    # subset vendored in the package is read (real authors from a fresh clone; --set
    # data_paths='{news_category: /your/full/file.jsonl}' reads a full file). Study 1 gains
    # news_category_preflamp (chosen: the author's headline; rejected: the base model's, real_negatives)
    # and studies 2-3 run on every vendored author with >= min_profile articles; the synthetic world
    # stays as a second, labelled setting (other-user negatives: with base-policy negatives every RM
    # separates SmolLM2's plain headlines from the planted styles perfectly, so tau is undefined).
    # Power: 5 methods x 4 seeds x 4 budgets = 80 RMs per dataset; 40% of each author's items are
    # test pairs (all of each author's articles: ~213 real test pairs). The policy variant of policy
    # accuracy (a top-k candidate pass per response token, ~3x the model work of the rest of study 1)
    # is off here and on in `paper` (--set pa_variants='[score, policy]').
    "embedded": {
        "negatives": "other_user",
        "preflamp_source": "news_category",
        "datasets": [
            "news_category_preflamp",
            "synthetic_preflamp",
            "synthetic_style_swap",
            "synthetic_attributes",
        ],
        "seeds": [0, 1, 2, 3],
        "budgets": [25, 75, 150, 300],
        "max_real_profile": 0,
        "pair_test_frac": 0.4,
        "pa_variants": ["score"],
        "batch_size": 48,  # decode steps with 48 rows: 1.5x the throughput of 16 on a 2-core CPU
        "inspector_w": [],  # ARGS at rgd_w only: two more weights would add ~6 min on a 2-core CPU
    },
    # The quick synthetic-only configuration (the default before issue 12): 6 synthetic users,
    # 20 RMs per dataset, both policy-accuracy variants. A few minutes; tests start from it.
    "embedded_synthetic": {"negatives": "other_user"},
    "paper": {
        "policy_model": "Qwen/Qwen2.5-0.5B-Instruct",
        "models": [
            "Qwen/Qwen2.5-0.5B-Instruct",
            "Qwen/Qwen2.5-1.5B-Instruct",
            "Qwen/Qwen2.5-3B-Instruct",
            "Qwen/Qwen2.5-7B-Instruct",
        ],
        "model_sizes_b": {
            "Qwen/Qwen2.5-0.5B-Instruct": 0.5,
            "Qwen/Qwen2.5-1.5B-Instruct": 1.5,
            "Qwen/Qwen2.5-3B-Instruct": 3.0,
            "Qwen/Qwen2.5-7B-Instruct": 7.0,
        },
        "device": "cuda",
        "dtype": "bfloat16",
        # study 1: the public sets of analysis.data.public_sets (hub, or data_paths.<name> = a local copy)
        "datasets": ["personal_llm", "psoups", "tldr"],
        "preflamp_source": "lamp",
        "negatives": "base",
        "data_paths": {"lamp": ""},  # the user's LaMP-4 folder: {train,dev}_{questions,outputs}.json
        "n_users": 200,
        "max_real_users": 200,
        "n_test_items": 1,
        "seeds": [0, 1, 2],
        "budgets": [100, 500, 1000],
        "k": 10,
        "best_of_n": 16,
        "icl_k": [1, 2, 4, 8],
        "max_new_tokens": 32,
        "max_prompt_tokens": 2048,
        "batch_size": 32,
        "shard_users": 50,  # 4 generation shards of 50 users per model: one sweep task each
        "n_boot": 2000,
    },
}


def choices() -> dict[str, tuple[str, ...]]:
    """The allowed values of each choice key, read from the registries of the algorithms.

    Nothing is copied here: a retriever, rendering, task, RM method, data source or dtype added to
    its registry is accepted by the config at once. The registries are imported when a config is
    validated (not when this module is imported: the decoders import :mod:`analysis.config`).

    >>> c = choices()
    >>> c["retriever"], "lore" in c["methods"], "news_headline" in c["task"]
    (('bm25', 'random', 'recency'), True, True)
    """
    from analysis.data.loaders import TASK_SOURCES
    from analysis.data.preflamp import NEGATIVES
    from analysis.data.tasks import TASKS
    from analysis.icl import RENDERINGS, RETRIEVERS
    from analysis.models import DTYPE_CHOICES
    from analysis.policy_accuracy import VARIANTS
    from analysis.rewards import FEATURE_METHODS

    return {
        "dtype": tuple(DTYPE_CHOICES),
        "preflamp_source": tuple(TASK_SOURCES),
        "negatives": tuple(NEGATIVES),
        "real_negatives": tuple(NEGATIVES),
        "icl_rendering": tuple(RENDERINGS),
        "icl_pool": ICL_POOLS,
        "honest_tau": ("headline", "all"),
        "retriever": tuple(RETRIEVERS),
        "task": tuple(TASKS),
        "methods": tuple(FEATURE_METHODS),  # a list key: every element must be a trainable RM method
        "pa_variants": tuple(VARIANTS),
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


def _suggest(key: str, options) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


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
            if v not in allowed:
                name = key if i is None else f"{key}[{i}]"
                raise ConfigError(
                    f"config key '{name}': {v!r} is not one of {list(allowed)}{_suggest(str(v), allowed)}"
                )
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
    if cfg.best_of_n < 0:
        raise ConfigError(f"config key 'best_of_n': must be >= 0, got {cfg.best_of_n}")
    if cfg.shard_users < 0:
        raise ConfigError(f"config key 'shard_users': must be >= 0, got {cfg.shard_users}")
    _validate_sizes_and_sampling(cfg)
    if cfg.preset not in PRESETS:
        raise ConfigError(
            f"config key 'preset': unknown preset {cfg.preset!r}{_suggest(cfg.preset, PRESETS)}"
        )
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


def apply_overrides(cfg: StudyConfig, overrides: dict[str, Any] | None) -> StudyConfig:
    """Return a copy of ``cfg`` with ``overrides`` applied, type-checked and validated."""
    if not overrides:
        return validate(dataclasses.replace(cfg))
    hints = typing.get_type_hints(StudyConfig)
    changes = {}
    for key, value in overrides.items():
        if key not in hints:
            raise ConfigError(f"unknown config key '{key}'{_suggest(key, hints)}")
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
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'{_suggest(preset, PRESETS)}; presets: {sorted(PRESETS)}")
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


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """Parse ``--set key=value`` items; values are YAML (``seeds=[0,1]``, ``device=cuda``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {exc}") from exc
    return out
