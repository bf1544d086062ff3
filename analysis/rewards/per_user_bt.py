"""Per-user Bradley-Terry: an independent linear head for each user.

    r_u(x, y) = a_u^T phi(x, y)       A = [a_u]: (U, H)

Each head is trained with the Bradley-Terry loss on its own user's pairs only (the heads share
nothing, so a user with few pairs overfits: report pairs per user). The common "individual
reward model" baseline of personalized RLHF (e.g. Jang et al. 2023, "Personalized Soups";
Poddar et al. 2024 and Chen et al. 2024 use it as a baseline).
Unknown users (fallback): the mean head ``mean_u a_u`` (population mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from analysis.rewards.base import RewardModel, RMConfig, gather_user_param


@dataclass
class PerUserBTConfig(RMConfig):
    """RMConfig plus ``l2``: penalty ``l2 * mean_u ||a_u||^2`` against overfitting small users."""

    l2: float = 1e-3


class _Heads(torch.nn.Module):
    def __init__(self, dim: int, n_users: int):
        super().__init__()
        self.A = torch.nn.Parameter(torch.zeros(n_users, dim))


class PerUserBT(RewardModel):
    """Independent heads ``r_u = a_u^T phi``."""

    method = "per_user_bt"
    config_cls = PerUserBTConfig
    paper = "independent per-user Bradley-Terry heads (baseline in Poddar et al. 2024, Chen et al. 2024)"

    def _build(self, dim: int, n_users: int) -> torch.nn.Module:
        return _Heads(dim, n_users)

    def _score(self, uidx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        A = self.module_.A
        heads = gather_user_param(A, uidx, A.mean(0))  # (N, H)
        return (heads * x).sum(-1)

    def _extra_loss(self, step: int):
        return self.config.l2 * self.module_.A.pow(2).sum(-1).mean()
