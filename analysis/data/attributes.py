"""Attribute-preference users: planted linear preferences over surface attributes of a text.

Used to label pairs of *model samples* (e.g. two base-policy generations for the same prompt)
with known per-user preferences, a second synthetic setting beside the style users of
:mod:`analysis.data.synthetic`. User ``u`` has weights ``w_u`` over :data:`ATTRIBUTES` and the
planted reward

    r_u(y) = sum_a w_u[a] * f_a(y)

where ``f_a`` are the features of :func:`attribute_features`. Users come in opposite pairs:
user ``2j+1`` has ``w = -w_{2j}``, so at least two users disagree on every pair. Weights are
unit-L2 Gaussian draws from ``random.Random(seed)``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from analysis.data.records import DatasetCard, PreferencePair
from analysis.data.splits import split_items
from analysis.errors import ConfigError

ATTRIBUTES = ("length", "question", "numbers", "exclamation", "capitalised", "colon")


def attribute_features(text: str) -> dict[str, float]:
    """Surface features of ``text``, each roughly in [0, 1]:

    length = min(n_words, 40) / 20; question / exclamation / colon = 1 if the character occurs;
    numbers = 1 if any digit occurs; capitalised = fraction of words starting with a capital.
    """
    words = text.split()
    n = len(words)
    return {
        "length": min(n, 40) / 20,
        "question": float("?" in text),
        "numbers": float(any(c.isdigit() for c in text)),
        "exclamation": float("!" in text),
        "capitalised": sum(w[:1].isupper() for w in words) / n if n else 0.0,
        "colon": float(":" in text),
    }


def attribute_reward(weights: dict[str, float], text: str) -> float:
    """``sum_a weights[a] * f_a(text)``; unknown attribute names raise ``ValueError``."""
    unknown = set(weights) - set(ATTRIBUTES)
    if unknown:
        raise ConfigError(f"unknown attributes {sorted(unknown)}; known: {', '.join(ATTRIBUTES)}")
    f = attribute_features(text)
    return float(sum(w * f[a] for a, w in weights.items()))


def planted_weights(n_users: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per-user unit-norm weights; odd users are the negation of the user before them."""
    rng = random.Random(f"attr-weights-{seed}")
    out: dict[str, dict[str, float]] = {}
    for u in range(n_users):
        if u % 2 == 1:
            prev = out[f"user{u - 1:02d}"]
            out[f"user{u:02d}"] = {a: -w for a, w in prev.items()}
            continue
        raw = [rng.gauss(0.0, 1.0) for _ in ATTRIBUTES]
        norm = math.sqrt(sum(x * x for x in raw)) or 1.0
        out[f"user{u:02d}"] = {a: x / norm for a, x in zip(ATTRIBUTES, raw, strict=True)}
    return out


@dataclass
class AttributePairs:
    """Output of :func:`attribute_preference_pairs`: the pairs, the planted weights, a card."""

    pairs: list[PreferencePair]
    weights: dict[str, dict[str, float]]
    card: DatasetCard

    def reward(self, user_id: str, text: str) -> float:
        """The planted (oracle) reward of ``user_id`` for ``text``."""
        return attribute_reward(self.weights[user_id], text)


def attribute_preference_pairs(
    prompts: list[str],
    samples: dict[str, list[str]],
    n_users: int = 6,
    seed: int = 0,
    *,
    val_frac: float = 0.15,
    test_frac: float = 0.2,
    min_margin: float = 1e-6,
) -> AttributePairs:
    """Label pairs of samples by each user's planted attribute reward.

    For every prompt and user, two distinct samples of ``samples[prompt]`` are drawn (seeded);
    ``chosen`` is the one with the higher ``r_u``. Prompts with fewer than two distinct samples,
    and draws whose rewards differ by less than ``min_margin``, give no pair (counted in the card
    notes). Prompts are split train / val / test (the same split for all users).
    ``pair_id = "<user>/p<prompt index>"``.
    """
    if n_users < 1:
        raise ConfigError(f"n_users must be >= 1, got {n_users}")
    missing = [p for p in prompts if p not in samples]
    if missing:
        raise ValueError(f"{len(missing)} prompts have no samples, e.g. {missing[0][:60]!r}")
    weights = planted_weights(n_users, seed)
    rng = random.Random(f"attr-pairs-{seed}")
    keys = [f"p{i}" for i in range(len(prompts))]
    split = split_items(keys, None, val_frac=val_frac, test_frac=test_frac, seed=seed)
    pairs: list[PreferencePair] = []
    n_few, n_tie = 0, 0
    for key, prompt in zip(keys, prompts, strict=True):
        distinct = sorted(set(s for s in samples[prompt] if s.strip()))
        if len(distinct) < 2:
            n_few += 1
            continue
        for user_id, w in weights.items():
            a, b = rng.sample(distinct, 2)
            ra, rb = attribute_reward(w, a), attribute_reward(w, b)
            if abs(ra - rb) < min_margin:
                n_tie += 1
                continue
            chosen, rejected = (a, b) if ra > rb else (b, a)
            pairs.append(PreferencePair(user_id, prompt, chosen, rejected, f"{user_id}/{key}", split[key]))
    per_user = {u: sum(p.user_id == u for p in pairs) for u in weights}
    card = DatasetCard(
        name=f"attribute-users-seed{seed}",
        source="synthetic",
        task="attribute_preferences",
        n_users=n_users,
        n_items=len(prompts),
        n_pairs=len(pairs),
        negatives="model samples labelled by planted attribute weights",
        synthetic=True,
        notes=(
            f"SYNTHETIC labels: planted linear attribute preferences over {', '.join(ATTRIBUTES)}; "
            f"odd users are opposite to the previous user; {n_few} prompts had < 2 distinct samples, "
            f"{n_tie} draws were ties (no pair)."
        ),
        per_user=per_user,
    )
    return AttributePairs(pairs=pairs, weights=weights, card=card)
