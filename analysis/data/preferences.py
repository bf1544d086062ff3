"""Generic per-user preference files: JSON lines ``{user_id, prompt, chosen, rejected}``
with optional ``pair_id`` and ``split`` (train / val / test; ``validation`` and ``dev`` are read
as ``val``, see :data:`SPLIT_ALIASES`).

Example
-------
>>> import tempfile, pathlib
>>> from analysis.data.records import PreferencePair
>>> path = pathlib.Path(tempfile.mkdtemp()) / "prefs.jsonl"
>>> pairs = [PreferencePair("u1", "Say hi", "Hi!", "Go away", "u1/0", "train")]
>>> write_preferences(path, pairs)
1
>>> read_preferences(path) == pairs
True
"""

from __future__ import annotations

import os
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from analysis.data.readers import get_field, iter_jsonl
from analysis.data.records import SPLITS, DataError, DatasetCard, PreferencePair
from analysis.data.splits import split_items
from analysis.io import write_jsonl

REQUIRED = ("user_id", "prompt", "chosen", "rejected")


SPLIT_ALIASES = {"validation": "val", "dev": "val"}  # Hugging Face / common names for the val split


def read_preferences(
    path: str | os.PathLike, *, val_frac: float = 0.15, test_frac: float = 0.2, seed: int = 0
) -> list[PreferencePair]:
    """Read a preference JSONL file.

    Every line needs non-empty string ``user_id, prompt, chosen, rejected``. ``pair_id`` defaults
    to ``"<user_id>/<line>"`` and must be unique. ``split`` must be train / val / test
    (``validation`` and ``dev`` are accepted for ``val``, case-insensitively); when *no*
    line has a split, splits are assigned per user by prompt with :func:`assign_splits`; a file
    where only some lines have one is an error.
    """
    path = Path(path)
    rows: list[tuple[int, dict]] = []
    has_split: list[bool] = []
    seen: dict[str, int] = {}
    for line, rec in iter_jsonl(path):
        vals = {k: get_field(rec, k, path=path, line=line) for k in REQUIRED}
        pid = rec.get("pair_id")
        pid = (
            str(get_field(rec, "pair_id", path=path, line=line, kind=(str, int)))
            if pid not in (None, "")
            else ""
        )
        pid = pid or f"{vals['user_id']}/{line}"
        if pid in seen:
            raise DataError(
                f"duplicate pair_id (first on line {seen[pid]})", path=str(path), line=line, field="pair_id"
            )
        seen[pid] = line
        split = rec.get("split")
        if split not in (None, ""):
            norm = str(split).strip().lower()
            split = SPLIT_ALIASES.get(norm, norm)
            if split not in SPLITS:
                raise DataError(
                    f"split must be one of {SPLITS} (or {tuple(SPLIT_ALIASES)} for val), got {rec['split']!r}",
                    path=str(path),
                    line=line,
                    field="split",
                )
        has_split.append(split not in (None, ""))
        rows.append((line, vals | {"pair_id": pid, "split": split or "train"}))
    if not rows:
        raise DataError("no preference pairs in file", path=str(path))
    if any(has_split) and not all(has_split):
        line = rows[has_split.index(False)][0]
        raise DataError(
            "missing split (other lines have one: give all or none)", path=str(path), line=line, field="split"
        )
    pairs = [PreferencePair(**vals) for _, vals in rows]
    if not any(has_split):
        pairs = assign_splits(pairs, val_frac=val_frac, test_frac=test_frac, seed=seed)
    return pairs


def write_preferences(path: str | os.PathLike, pairs: Iterable[PreferencePair]) -> int:
    """Write pairs as JSONL atomically (temp file + rename); returns the number written."""
    return write_jsonl(path, (p.to_dict() for p in pairs))


def assign_splits(
    pairs: list[PreferencePair], *, val_frac: float = 0.15, test_frac: float = 0.2, seed: int = 0
) -> list[PreferencePair]:
    """Re-split each user's pairs by prompt (all pairs of one prompt share a split), seeded per user."""
    by_user: dict[str, list[str]] = defaultdict(list)
    for p in pairs:
        by_user[p.user_id].append(p.prompt)
    split = {
        u: split_items(prompts, None, val_frac=val_frac, test_frac=test_frac, seed=f"{seed}-{u}")
        for u, prompts in by_user.items()
    }
    return [
        PreferencePair(p.user_id, p.prompt, p.chosen, p.rejected, p.pair_id, split[p.user_id][p.prompt])
        for p in pairs
    ]


def preference_card(
    pairs: list[PreferencePair],
    *,
    name: str,
    source: str,
    task: str = "preferences",
    negatives=None,
    notes: str = "",
) -> DatasetCard:
    """A :class:`DatasetCard` for a pair list (per_user = pairs per user, n_items = distinct prompts)."""
    per_user = dict(sorted(Counter(p.user_id for p in pairs).items()))
    splits = Counter(p.split for p in pairs)
    split_note = "splits: " + ", ".join(f"{s}={splits.get(s, 0)}" for s in SPLITS)
    return DatasetCard(
        name=name,
        source=source,
        task=task,
        n_users=len(per_user),
        n_items=len({p.prompt for p in pairs}),
        n_pairs=len(pairs),
        negatives=negatives,
        notes=f"{notes}; {split_note}" if notes else split_note,
        per_user=per_user,
    )


def per_user_stats(per_user: dict[str, int]) -> dict[str, float]:
    """``min / median / max`` of a per-user count dict (zeros when empty)."""
    vals = list(per_user.values())
    if not vals:
        return {"min": 0, "median": 0, "max": 0}
    return {"min": min(vals), "median": statistics.median(vals), "max": max(vals)}
