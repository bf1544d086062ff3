"""Oracle reward for synthetic users: the planted reward itself (an upper bound and a
known-answer check; design section 3.1).

    style users:      r_u(x, y) = oracle_reward(style_u, y)        (analysis.data.synthetic)
    attribute users:  r_u(x, y) = sum_a w_{u,a} f_a(y)            (analysis.data.attributes)

Text in, text scored: ``input_kind = "text"``, so :meth:`reward_text` is the entry point;
:meth:`reward` (features) raises. ``fit`` learns nothing; it records the users and checks that
every training user has a planted spec. An unknown user raises a clear error (an oracle has no
population fallback). When the training pairs carry texts, ``fit`` also stores each user's mean
planted reward over their training responses and :meth:`reward_text` subtracts it (``center_reward``,
as for every method: offset-free RGD scoring, design section 2); :meth:`from_synthetic` builds an
uncentred oracle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from analysis.data.records import DataError
from analysis.rewards.base import RewardModel, RMConfig


@dataclass
class OracleConfig(RMConfig):
    """``styles``: user -> style name; ``attribute_weights``: user -> {attribute: weight}."""

    styles: dict[str, str] = field(default_factory=dict)
    attribute_weights: dict[str, dict[str, float]] = field(default_factory=dict)
    unknown_user: str = "error"


class _Empty(torch.nn.Module):
    pass


class OracleRM(RewardModel):
    """The planted per-user reward of the synthetic data (text RM)."""

    method = "oracle"
    input_kind = "text"
    config_cls = OracleConfig
    paper = "planted synthetic reward (this project, design 4.3)"

    @classmethod
    def from_synthetic(cls, data=None, *, styles=None, attribute_weights=None) -> OracleRM:
        """Build from a :class:`SyntheticData` (its ``styles``) and/or attribute weights; already fitted."""
        rm = cls(
            styles=dict(styles or getattr(data, "styles", {}) or {}),
            attribute_weights=dict(attribute_weights or getattr(data, "weights", {}) or {}),
        )
        return rm._set_users(sorted(set(rm.config.styles) | set(rm.config.attribute_weights)))

    def _set_users(self, users: list[str]) -> OracleRM:
        self.users_ = list(users)
        self._index = {u: i for i, u in enumerate(self.users_)}
        self.dim_ = 0
        self.module_ = self._build(0, len(self.users_))
        self.fit_log_ = {}
        return self

    def fit(self, train, val=None) -> OracleRM:
        known = set(self.config.styles) | set(self.config.attribute_weights)
        missing = sorted(set(train.user_ids) - known)
        if missing:
            raise DataError(f"oracle: no planted style or attribute weights for user(s) {missing[:5]}")
        self.backbone = getattr(train, "backbone", None)
        self._set_users(sorted(known))
        self.center_ = {}
        texts = getattr(train, "chosen_text", None)
        if self.config.center_reward and texts:
            sums: dict[str, list[float]] = {}
            for u, c, r in zip(train.user_ids, train.chosen_text, train.rejected_text, strict=True):
                sums.setdefault(u, []).extend([self._score_one(u, c), self._score_one(u, r)])
            self.center_ = {u: sum(v) / len(v) for u, v in sums.items()}
        return self

    def _extra_state(self) -> dict:
        return {"center": dict(getattr(self, "center_", {}))}

    def _load_extra(self, meta: dict) -> None:
        self.center_ = {str(k): float(v) for k, v in (meta.get("center") or {}).items()}

    def _build(self, dim: int, n_users: int) -> torch.nn.Module:
        return _Empty()

    def reward(self, user_ids, features):
        raise TypeError("oracle is a text reward model: call reward_text(user_ids, prompts, responses)")

    def _score_one(self, user: str, text: str) -> float:
        if user in self.config.styles:
            from analysis.data.synthetic import oracle_reward

            return float(oracle_reward(self.config.styles[user], text))
        if user in self.config.attribute_weights:
            from analysis.data.attributes import attribute_reward

            return float(attribute_reward(self.config.attribute_weights[user], text))
        raise DataError(f"oracle: user {user!r} has no planted style or attribute weights")

    @torch.no_grad()
    def reward_text(
        self, user_ids: Sequence[str], prompts: Sequence, responses: Sequence[str]
    ) -> torch.Tensor:
        if not (len(user_ids) == len(prompts) == len(responses)):
            raise ValueError(
                f"lengths differ: {len(user_ids)} users, {len(prompts)} prompts, {len(responses)} responses"
            )
        center = getattr(self, "center_", {})
        return torch.tensor(
            [self._score_one(u, r) - center.get(u, 0.0) for u, r in zip(user_ids, responses, strict=True)],
            dtype=torch.float32,
        )

    def knows_user(self, user_id: str) -> bool:
        return user_id in self.config.styles or user_id in self.config.attribute_weights
