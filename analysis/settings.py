"""The one place where a :class:`~analysis.config.StudyConfig` becomes the algorithms' own configs.

Studies, the CLI and notebooks build every algorithm setting through these functions, so a study
key (``k``, ``max_new_tokens``, ``retriever``, ...) maps to the same algorithm field everywhere.
Each builder returns a validated config object of the algorithm's module; the algorithms keep
their own defaults for the fields a study does not set.

Layer: above the algorithms (icl, rewards, decoding, policy accuracy), below generation and
studies. :mod:`analysis.config` validates the *choices* against the same registries
(:func:`analysis.config.choices`).

>>> from analysis.config import load_config
>>> cfg = load_config("embedded", {"k": 5, "max_new_tokens": 12, "retriever": "recency"})
>>> args_config(cfg, w=0.5)
ArgsConfig(w=0.5, k=5, max_new_tokens=12, mode='greedy', temperature=1.0, seed=0, batch_size=48)
>>> icl_config(cfg, k=2).retriever, icl_config(cfg, k=2).k
('recency', 2)
>>> rm_config(cfg, "lore", seed=1, budget=25).steps
25
"""

from __future__ import annotations

from analysis.config import StudyConfig
from analysis.decoding.args import ArgsConfig
from analysis.decoding.base import GenerationConfig
from analysis.decoding.best_of_n import BestOfNConfig
from analysis.errors import ConfigError
from analysis.icl import ICLConfig
from analysis.policy_accuracy import PolicyAccuracyConfig
from analysis.rewards import RMConfig, method_info


def model_kwargs(cfg: StudyConfig) -> dict:
    """Keyword arguments of :func:`analysis.models.load_model` (device, dtype, threads, remote code)."""
    return {
        "device": cfg.device,
        "dtype": cfg.dtype,
        "threads": cfg.threads,
        "trust_remote_code": cfg.trust_remote_code,
    }


def generation_config(cfg: StudyConfig) -> GenerationConfig:
    """Greedy / sampled decoding: ``max_new_tokens`` and ``batch_size``."""
    return GenerationConfig(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)


def args_config(cfg: StudyConfig, w: float | None = None) -> ArgsConfig:
    """ARGS decoding at weight ``w`` (default: ``rgd_w``), top-``k``, greedy, ``batch_size`` prompts
    per batch (each scores ``k`` candidate rows per step; rows that stop leave the batch)."""
    return ArgsConfig(
        w=float(cfg.rgd_w if w is None else w),
        k=cfg.k,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
    ).validate()


def best_of_n_config(cfg: StudyConfig) -> BestOfNConfig | None:
    """Best-of-n sampling with ``n = best_of_n`` at ``sample_temperature`` / ``sample_top_p`` (the
    settings of the study's shared samples; None when ``best_of_n`` is 0)."""
    if cfg.best_of_n == 0:
        return None
    return BestOfNConfig(
        n=cfg.best_of_n,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.sample_temperature,
        top_p=cfg.sample_top_p,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
    ).validate()


def icl_config(cfg: StudyConfig, k: int) -> ICLConfig:
    """In-context learning with ``k`` examples: ``retriever``, ``icl_rendering``, ``max_prompt_tokens``."""
    return ICLConfig(
        k=k,
        retriever=cfg.retriever,
        rendering=cfg.icl_rendering,
        max_prompt_tokens=cfg.max_prompt_tokens,
        seed=cfg.seed,
    )


def rm_config(cfg: StudyConfig, method: str, seed: int, budget: int) -> RMConfig:
    """Training config of one RM of the population (``method``'s own config class)."""
    if method not in cfg.methods:
        raise ConfigError(f"config key 'methods': {method!r} is not one of this config's {cfg.methods}")
    conf = method_info(method).cls.config_cls(seed=seed, steps=budget)
    conf.validate()
    return conf


def policy_accuracy_config(cfg: StudyConfig) -> PolicyAccuracyConfig:
    """Policy accuracy over ``w_values`` with ``n_boot`` bootstrap resamples seeded by ``seed``."""
    return PolicyAccuracyConfig(
        ws=tuple(float(w) for w in cfg.w_values), n_boot=cfg.n_boot, seed=cfg.seed
    ).validate()


__all__ = [
    "args_config",
    "best_of_n_config",
    "generation_config",
    "icl_config",
    "model_kwargs",
    "policy_accuracy_config",
    "rm_config",
]
