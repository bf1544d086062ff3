"""Where a :class:`~analysis.config.schema.StudyConfig` becomes the algorithms' own configs.

The studies (:mod:`analysis.studies`) and the CLI build model loading, decoding (greedy, ARGS,
best-of-n samples), ICL and policy-accuracy settings through these functions, so a study key
(``k``, ``max_new_tokens``, ``retriever``, ...) maps to the same algorithm field everywhere. Each
builder returns a validated config object of the algorithm's module (or keyword arguments where
the algorithm has no config class); the algorithms keep their own defaults for the fields a study
does not set. The RMs of a population are set by their own (method, seed, budget):
:func:`rm_config`.

Layer: above the algorithms (icl, rewards, decoding, policy accuracy), below generation and
studies. :mod:`analysis.config.parse` validates the *choices* against the same registries
(:func:`analysis.config.parse.choices`).

>>> from analysis.config.parse import load_config
>>> cfg = load_config("embedded", {"k": 5, "max_new_tokens": 12, "retriever": "recency"})
>>> args_config(cfg, w=0.5)
ArgsConfig(w=0.5, k=5, max_new_tokens=12, mode='greedy', temperature=1.0, seed=0, batch_size=48)
>>> icl_config(cfg, k=2).retriever, icl_config(cfg, k=2).k
('recency', 2)
>>> rm_config(cfg, "lore", seed=1, budget=25).steps
25
"""

from __future__ import annotations

from analysis.config.schema import StudyConfig
from analysis.decoding.args import ArgsConfig
from analysis.decoding.base import GenerationConfig
from analysis.decoding.best_of_n import BestOfNConfig
from analysis.errors import ConfigError
from analysis.evaluation.policy_accuracy import PolicyAccuracyConfig
from analysis.generation.icl import ICLConfig
from analysis.rewards import RMConfig, method_info


def model_kwargs(cfg: StudyConfig) -> dict:
    """Keyword arguments of :func:`analysis.models.loading.load_model` (device, dtype, threads, remote code)."""
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


def best_of_n_config(cfg: StudyConfig, n: int | None = None) -> BestOfNConfig | None:
    """Best-of-n sampling with ``n`` samples (default ``best_of_n``) at ``sample_temperature`` /
    ``sample_top_p`` (the settings of the study's shared samples; None when ``n`` is 0)."""
    n = cfg.best_of_n if n is None else n
    if n == 0:
        return None
    return BestOfNConfig(
        n=n,
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


def rm_config(
    cfg: StudyConfig | None, method: str, seed: int, budget: int, normalize_reward: bool = True
) -> RMConfig:
    """Training config of one RM of the population (``method``'s own config class): ``seed``,
    ``budget`` steps and ``normalize_reward``. With ``cfg``, ``method`` must be one of its
    ``methods``; :func:`analysis.studies.rms.train_rm` passes None (its callers chose the method)."""
    if cfg is not None and method not in cfg.methods:
        raise ConfigError(f"config key 'methods': {method!r} is not one of this config's {cfg.methods}")
    conf = method_info(method).cls.config_cls(seed=seed, steps=budget, normalize_reward=normalize_reward)
    conf.validate()
    return conf


def policy_accuracy_config(cfg: StudyConfig) -> PolicyAccuracyConfig:
    """Policy accuracy over ``w_values`` and ``pa_variants`` with ``n_boot`` bootstrap resamples
    seeded by ``seed``."""
    return PolicyAccuracyConfig(
        ws=tuple(float(w) for w in cfg.w_values),
        variants=tuple(cfg.pa_variants),
        n_boot=cfg.n_boot,
        seed=cfg.seed,
    ).validate()


def pa_data_kwargs(cfg: StudyConfig) -> dict:
    """Keyword arguments of :func:`analysis.evaluation.policy_accuracy.prepare_pa_data`: features of layer
    ``feature_layer``, top-``k`` candidates (only when the ``policy`` variant is among
    ``pa_variants``: the score variant needs no candidate pass), ``batch_size`` prompts a pass."""
    return {
        "layer": cfg.feature_layer,
        "k": cfg.k,
        "policy": "policy" in cfg.pa_variants,
        "batch_size": cfg.batch_size,
    }


def train_prefix_kwargs(cfg: StudyConfig) -> dict | None:
    """Keyword arguments of :func:`analysis.evaluation.policy_accuracy.prepare_pa_data` for the prefix
    pass over the RMs' training pairs (``reward_norm = "prefix"``: the reward centre and scale are
    fitted on every prefix of the training responses): :func:`pa_data_kwargs` without the top-k
    candidate pass. None with ``reward_norm = "response"`` (no such pass)."""
    if cfg.reward_norm != "prefix":
        return None
    return {**pa_data_kwargs(cfg), "policy": False}


__all__ = [
    "args_config",
    "best_of_n_config",
    "generation_config",
    "icl_config",
    "model_kwargs",
    "pa_data_kwargs",
    "policy_accuracy_config",
    "rm_config",
    "train_prefix_kwargs",
]
