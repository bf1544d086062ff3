"""Personalized reward models on frozen backbone features (design section 3.1).

Registry with metadata and close-match suggestions on a typo::

    >>> from analysis.rewards import make_reward_model, REGISTRY
    >>> sorted(REGISTRY)
    ['lore', 'oracle', 'pal', 'per_user_bt', 'shared_bt', 'vpl']
    >>> rm = make_reward_model("lore", rank=4, seed=1)

Every method: ``fit(train, val) -> self``, ``reward(user_ids, features) -> (N,)``,
``reward_text(user_ids, prompts, responses)``, ``save(dir)`` / :func:`load_reward_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis.errors import lookup
from analysis.rewards.base import RewardModel, RMConfig, load_config_json
from analysis.rewards.lore import LoRe, LoReConfig
from analysis.rewards.oracle import OracleConfig, OracleRM
from analysis.rewards.pal import PAL, PALConfig
from analysis.rewards.per_user_bt import PerUserBT, PerUserBTConfig
from analysis.rewards.shared_bt import SharedBT, SharedBTConfig
from analysis.rewards.vpl import VPL, VPLConfig


@dataclass(frozen=True)
class MethodInfo:
    """Registry entry: the class, whether it uses the user id, its input kind, a one-line summary."""

    cls: type
    personalized: bool
    input_kind: str
    summary: str


REGISTRY: dict[str, MethodInfo] = {
    "shared_bt": MethodInfo(SharedBT, False, "features", "one linear BT head for all users (baseline)"),
    "per_user_bt": MethodInfo(PerUserBT, True, "features", "independent linear BT head per user"),
    "lore": MethodInfo(
        LoRe, True, "features", "low-rank shared basis, per-user simplex weights (Bose et al. 2025)"
    ),
    "pal": MethodInfo(
        PAL, True, "features", "mixture of K prototype ideal points, scaled cosine (Chen et al. 2024)"
    ),
    "vpl": MethodInfo(
        VPL, True, "features", "variational user latent from context pairs (Poddar et al. 2024)"
    ),
    "oracle": MethodInfo(OracleRM, True, "text", "planted reward of synthetic users (upper bound)"),
}
FEATURE_METHODS = tuple(m for m, info in REGISTRY.items() if info.input_kind == "features")


def method_info(method: str) -> MethodInfo:
    """Registry entry of ``method``; a typo raises ``ValueError`` with close matches."""
    return lookup(REGISTRY, method, "reward method")


def make_reward_model(method: str, **config) -> RewardModel:
    """Instantiate a method by name; unknown config keys raise with the valid ones listed."""
    return method_info(method).cls(**config)


def load_reward_model(path: str | Path) -> RewardModel:
    """Load a saved RM folder, dispatching on ``config.json``'s ``method``."""
    meta = load_config_json(path)
    return method_info(str(meta.get("method"))).cls.load(path)


__all__ = [
    "FEATURE_METHODS",
    "LoRe",
    "LoReConfig",
    "MethodInfo",
    "OracleConfig",
    "OracleRM",
    "PAL",
    "PALConfig",
    "PerUserBT",
    "PerUserBTConfig",
    "REGISTRY",
    "RMConfig",
    "RewardModel",
    "SharedBT",
    "SharedBTConfig",
    "VPL",
    "VPLConfig",
    "load_reward_model",
    "make_reward_model",
    "method_info",
]
