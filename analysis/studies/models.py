"""The model holder of the studies: one loaded model per process, its cache key and size."""

from __future__ import annotations

import torch

from analysis.config.schema import StudyConfig
from analysis.studies.schedule import NO_SCHEDULE, Schedule

_MODELS: dict[tuple, tuple] = {}


def get_model(cfg: StudyConfig, name: str | None = None, schedule: Schedule = NO_SCHEDULE):
    """``(model, tok)`` for ``name`` (default: the policy model), loaded once per process; torch uses
    ``schedule.threads(cfg.threads)`` threads (``cfg.threads`` unless the runner's schedule says
    otherwise, e.g. one while a report's notebook shares the CPU with another)."""
    from analysis.config.algorithms import model_kwargs
    from analysis.models.loading import load_model

    name = name or cfg.policy_model
    key = (name, cfg.device, cfg.dtype)
    if key not in _MODELS:
        if len(_MODELS) >= 1:  # keep one model in memory (study 3 walks through sizes)
            _MODELS.clear()
        _MODELS[key] = load_model(name, **model_kwargs(cfg))
    torch.set_num_threads(schedule.threads(cfg.threads))
    return _MODELS[key]


def model_key(model) -> str:
    """Model id + its weight fingerprint (:func:`analysis.features.cache.model_fingerprint`, the one
    the feature cache uses), so two models with the same name but other weights differ."""
    from analysis.features.cache import model_fingerprint
    from analysis.models.loading import model_id

    return f"{model_id(model)}#{model_fingerprint(model)}"


def model_size_b(cfg: StudyConfig, name: str, model=None) -> float:
    """Size in billions of parameters: ``cfg.model_sizes_b`` or counted from the weights."""
    if name in cfg.model_sizes_b:
        return float(cfg.model_sizes_b[name])
    model = model if model is not None else get_model(cfg, name)[0]
    return sum(p.numel() for p in model.parameters()) / 1e9
