"""Shared Bradley-Terry reward model: one linear head for every user (the non-personalized baseline).

    r(x, y) = a^T phi(x, y)          a: (H,), phi standardized with the training mean / std

Trained with the Bradley-Terry loss ``-log sigmoid(r(x, y_w) - r(x, y_l))`` (Bradley & Terry
1952; the reward-model objective of Ouyang et al. 2022, "Training language models to follow
instructions with human feedback"). No bias: it cancels in every pairwise comparison.
It takes no user input, so users with opposite preferences on the same pairs cancel out.
Unknown users: identical to known ones (there is nothing per user).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from analysis.rewards.base import RewardModel, RMConfig


@dataclass
class SharedBTConfig(RMConfig):
    """RMConfig only (see :class:`analysis.rewards.base.RMConfig`)."""


class _Linear(torch.nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.a = torch.nn.Parameter(torch.zeros(dim))


class SharedBT(RewardModel):
    """One linear head ``r = a^T phi`` for all users."""

    method = "shared_bt"
    config_cls = SharedBTConfig
    paper = "Bradley-Terry reward model (Ouyang et al. 2022)"

    def _build(self, dim: int, n_users: int) -> torch.nn.Module:
        return _Linear(dim)

    def _score(self, uidx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x @ self.module_.a  # (N, H) @ (H,) -> (N,)
