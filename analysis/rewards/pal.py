"""PAL: pluralistic alignment with a mixture of learned prototypes (Chen et al. 2024, "PAL:
Pluralistic Alignment Framework for Learning from Heterogeneous Preferences", PAL-B).

    r_u(x, y) = s * cos( f(phi(x, y)), sum_k softmax(W_u)_k g_k )

``f``: projector (H -> D, linear or a one-hidden-layer MLP), ``g_k``: K learned prototype ideal
points in R^D, ``W``: (U, K) user mixture logits, ``s = exp(log_s)``: a learned scale. Reference
settings: K = 2, separate learning rates for the projector (1e-4 at 1.5B scale) and the user
weights (5e-3); here ``lr`` (projector, prototypes, scale) and ``user_lr``.
Unknown users (fallback): the mean mixture ``mean_u softmax(W_u)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from analysis.errors import ConfigError
from analysis.rewards.base import RewardModel, RMConfig, gather_user_param


@dataclass
class PALConfig(RMConfig):
    """RMConfig plus: ``n_prototypes`` K, ``proj_dim`` D, ``hidden`` (0 = linear projector),
    ``user_lr`` (learning rate of the user mixture weights), ``init_scale`` (initial s)."""

    n_prototypes: int = 2
    proj_dim: int = 32
    hidden: int = 0
    user_lr: float = 5e-2
    init_scale: float = 5.0

    def validate(self) -> None:
        super().validate()
        if self.n_prototypes < 1 or self.proj_dim < 1 or self.hidden < 0 or self.user_lr <= 0:
            raise ConfigError("need n_prototypes >= 1, proj_dim >= 1, hidden >= 0, user_lr > 0")


class _PAL(torch.nn.Module):
    def __init__(self, dim: int, n_users: int, cfg: PALConfig):
        super().__init__()
        if cfg.hidden:
            self.proj = torch.nn.Sequential(
                torch.nn.Linear(dim, cfg.hidden), torch.nn.GELU(), torch.nn.Linear(cfg.hidden, cfg.proj_dim)
            )
        else:
            self.proj = torch.nn.Sequential(torch.nn.Linear(dim, cfg.proj_dim))
        self.prototypes = torch.nn.Parameter(torch.randn(cfg.n_prototypes, cfg.proj_dim))
        self.W = torch.nn.Parameter(0.01 * torch.randn(n_users, cfg.n_prototypes))
        self.log_scale = torch.nn.Parameter(torch.tensor(float(cfg.init_scale)).log())


class PAL(RewardModel):
    """``r_u = s * cos(f(phi), sum_k softmax(W_u)_k g_k)``."""

    method = "pal"
    config_cls = PALConfig
    paper = "Chen et al. 2024, PAL: Pluralistic Alignment Framework (PAL-B)"

    def _build(self, dim: int, n_users: int) -> torch.nn.Module:
        return _PAL(dim, n_users, self.config)

    def _param_groups(self) -> list[dict]:
        m = self.module_
        shared = [p for n, p in m.named_parameters() if n != "W"]
        return [{"params": shared, "lr": self.config.lr}, {"params": [m.W], "lr": self.config.user_lr}]

    def _score(self, uidx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        m = self.module_
        w = F.softmax(m.W, dim=-1)  # (U, K)
        wu = gather_user_param(w, uidx, w.mean(0))  # (N, K)
        ideal = wu @ m.prototypes  # (N, D)
        return m.log_scale.exp() * F.cosine_similarity(m.proj(x), ideal, dim=-1, eps=1e-8)
