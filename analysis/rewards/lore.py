"""LoRe: low-rank personalized reward model (Bose et al. 2025, "LoRe: Personalizing LLMs via
Low-Rank Reward Modeling").

    r_u(x, y) = phi(x, y)^T V w_u,      V: (H, K) basis shared by all users,
                                        w_u = softmax(W_u) in the K-simplex, W: (U, K)

Trained jointly with the Bradley-Terry loss (reference: Adam lr 0.01, ~1000 iterations, rank K
in {1, 5, ..., 50}). A new user fits only its weights ``w_u`` with ``V`` frozen
(:meth:`LoRe.adapt_users`).
Unknown users (fallback): the mean of the known users' simplex weights, ``mean_u softmax(W_u)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from analysis.errors import ConfigError
from analysis.features.passes import PairFeatures
from analysis.rewards.base import RewardModel, RMConfig, gather_user_param, per_user_mean


@dataclass
class LoReConfig(RMConfig):
    """RMConfig plus ``rank`` K of the shared basis."""

    rank: int = 8

    def validate(self) -> None:
        super().validate()
        if self.rank < 1:
            raise ConfigError(f"rank must be >= 1, got {self.rank}")


class _LoRe(torch.nn.Module):
    def __init__(self, dim: int, n_users: int, rank: int):
        super().__init__()
        self.V = torch.nn.Parameter(torch.randn(dim, rank) / dim**0.5)
        self.W = torch.nn.Parameter(0.01 * torch.randn(n_users, rank))


class LoRe(RewardModel):
    """``r_u = phi^T V softmax(W_u)``."""

    method = "lore"
    config_cls = LoReConfig
    paper = "Bose et al. 2025, LoRe: Personalizing LLMs via Low-Rank Reward Modeling"

    def _build(self, dim: int, n_users: int) -> torch.nn.Module:
        return _LoRe(dim, n_users, self.config.rank)

    def _score(self, uidx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        w = F.softmax(self.module_.W, dim=-1)  # (U, K)
        wu = gather_user_param(w, uidx, w.mean(0))  # (N, K)
        return ((x @ self.module_.V) * wu).sum(-1)  # (N, H) @ (H, K) -> (N, K) -> (N,)

    def adapt_users(self, pairs: PairFeatures, steps: int = 300, lr: float = 0.05) -> LoRe:
        """Few-shot personalization: add the users of ``pairs`` not seen in training and fit only
        their weights W_u (basis V frozen), Bradley-Terry loss, full batch."""
        self._check_fitted()
        new = [u for u in dict.fromkeys(pairs.user_ids) if u not in self._index]
        if not new:
            return self
        m = self.module_
        W_new = torch.zeros(len(new), self.config.rank, requires_grad=True)
        offset = len(self.users_)
        local = {u: i for i, u in enumerate(new)}
        rows = [i for i, u in enumerate(pairs.user_ids) if u in local]
        ui = torch.tensor([local[pairs.user_ids[i]] for i in rows])
        xc = self._standardize(pairs.chosen[rows].float()) @ m.V.detach()  # (n, K)
        xr = self._standardize(pairs.rejected[rows].float()) @ m.V.detach()
        opt = torch.optim.Adam([W_new], lr=lr)
        for _ in range(steps):
            w = F.softmax(W_new, -1)[ui]
            loss = -F.logsigmoid(((xc - xr) * w).sum(-1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        m.W = torch.nn.Parameter(torch.cat([m.W.detach(), W_new.detach()]))
        self.users_ = self.users_ + new
        self._index.update({u: offset + i for i, u in enumerate(new)})
        c_new = torch.zeros(len(new))
        if self.config.center_reward:  # the new users' centres from their own pairs (offset-free RGD)
            with torch.no_grad():
                idx = ui + offset
                raw = torch.cat(
                    [
                        self._score(idx, self._standardize(pairs.chosen[rows].float())),
                        self._score(idx, self._standardize(pairs.rejected[rows].float())),
                    ]
                )
                c_new = per_user_mean(raw, torch.cat([ui, ui]), len(new))
        m.register_buffer("reward_center", torch.cat([m.reward_center, c_new]))
        return self
