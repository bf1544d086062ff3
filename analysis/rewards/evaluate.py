"""RM accuracy per pair, per user and overall (design section 2).

    RM accuracy = mean over pairs of 1[r_u(x, y_w) > r_u(x, y_l)]   (ties count 0.5)

averaged per user first, then over users, with a 95% bootstrap interval over users
(:func:`analysis.metrics.intervals.summarize_by_user`, the one place means and intervals are computed).
"""

from __future__ import annotations

import pandas as pd
import torch

from analysis.features.passes import PairFeatures
from analysis.metrics.intervals import pairwise_accuracy, per_user_means, summarize_by_user
from analysis.rewards.base import RewardModel


@torch.no_grad()
def pair_rewards(rm: RewardModel, feats: PairFeatures) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_chosen, r_rejected), each (N,), through features or text according to ``rm.input_kind``."""
    if rm.input_kind == "text":
        if not feats.chosen_text:
            raise ValueError(f"{rm.method} scores text but these PairFeatures carry no texts")
        return (
            rm.reward_text(feats.user_ids, feats.prompts, feats.chosen_text),
            rm.reward_text(feats.user_ids, feats.prompts, feats.rejected_text),
        )
    return rm.reward(feats.user_ids, feats.chosen), rm.reward(feats.user_ids, feats.rejected)


def rm_accuracy(rm: RewardModel, feats: PairFeatures) -> pd.DataFrame:
    """One row per pair: user_id, pair_id, r_chosen, r_rejected, correct in {0, 0.5, 1}, known_user."""
    rc, rr = pair_rewards(rm, feats)
    rc, rr = rc.detach().cpu().double().numpy(), rr.detach().cpu().double().numpy()
    return pd.DataFrame(
        {
            "user_id": list(feats.user_ids),
            "pair_id": list(feats.pair_ids) if feats.pair_ids else [""] * len(feats),
            "r_chosen": rc,
            "r_rejected": rr,
            "correct": pairwise_accuracy(rc, rr),
            "known_user": [rm.knows_user(u) for u in feats.user_ids],
        }
    )


def summarize_rm_accuracy(df: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict:
    """``{"mean", "ci_low", "ci_high", "n_users", "n"}`` over users (bootstrap over users)."""
    return summarize_by_user(list(df["user_id"]), df["correct"].to_numpy(), n_boot=n_boot, seed=seed)


def per_user_accuracy(df: pd.DataFrame, train_counts: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per user: user_id, accuracy, n_pairs (evaluated), train_pairs (0 for unseen users)."""
    acc = per_user_means(list(df["user_id"]), df["correct"].to_numpy())
    n = df.groupby("user_id", sort=False).size().to_dict()
    rows = [
        {
            "user_id": u,
            "accuracy": a,
            "n_pairs": int(n[u]),
            "train_pairs": int((train_counts or {}).get(u, 0)),
        }
        for u, a in acc.items()
    ]
    return pd.DataFrame(rows, columns=["user_id", "accuracy", "n_pairs", "train_pairs"])


def pairs_per_user_table(feats: PairFeatures) -> pd.DataFrame:
    """Pairs per user and split (train / val / test columns, plus total): the overfitting context."""
    df = pd.DataFrame({"user_id": feats.user_ids, "split": feats.splits})
    table = pd.crosstab(df["user_id"], df["split"]).reindex(columns=["train", "val", "test"], fill_value=0)
    table["total"] = table.sum(axis=1)
    return table.reset_index().rename_axis(columns=None)
