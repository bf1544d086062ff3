"""Generic per-user preference files: JSON lines ``{user_id, prompt, chosen, rejected}``
(or CSV, parquet, a hub dataset, with a column mapping: :func:`load_preferences`)
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

from analysis.data.readers import get_field, get_id, iter_jsonl
from analysis.data.records import SPLITS, DataError, DatasetCard, PreferencePair
from analysis.data.splits import split_items
from analysis.io import write_jsonl

REQUIRED = ("user_id", "prompt", "chosen", "rejected")
COLUMNS = {  # the column-mapping keys of a user's preference file and their default column names
    "user": "user_id",
    "prompt": "prompt",
    "chosen": "chosen",
    "rejected": "rejected",
    "split": "split",
    "pair_id": "pair_id",
}
SAME = "chosen == rejected"  # the DatasetCard.dropped reason of a pair whose two responses are equal


SPLIT_ALIASES = {"validation": "val", "dev": "val"}  # Hugging Face / common names for the val split


def is_hub_source(source: str) -> bool:
    """Whether ``source`` names a hub dataset: ``hub:owner/name``, or ``owner/name`` that is not a
    local path and has no file suffix."""
    import re

    from analysis.data.hub import TABLE_EXT

    s = str(source)
    if s.startswith("hub:"):
        return True
    return (
        not Path(s).expanduser().exists()
        and re.fullmatch(r"[\w.-]+/[\w.-]+", s) is not None
        and Path(s).suffix.lower() not in TABLE_EXT
    )


def column_names(columns: dict[str, str] | None) -> dict[str, str]:
    """The full column mapping: :data:`COLUMNS` updated by ``columns`` (an unknown key is an error)."""
    from analysis.errors import ConfigError, lookup

    out = dict(COLUMNS)
    for key, col in (columns or {}).items():
        lookup(COLUMNS, key, "column mapping key")
        if not isinstance(col, str) or not col:
            raise ConfigError(f"column mapping {key!r}: expected a column name, got {col!r}")
        out[key] = col
    return out


def _source_rows(source: str | os.PathLike):
    """``(source_split, location, record)`` of a file / folder (JSONL, CSV, JSON, parquet) or hub id."""
    from analysis.data.hub import TABLE_EXT, iter_hub_rows, iter_local_rows

    s = str(source)
    if is_hub_source(s):
        yield from iter_hub_rows(s.removeprefix("hub:"))
        return
    p = Path(s).expanduser()
    if p.is_file() and p.suffix.lower() not in TABLE_EXT:  # any other suffix: JSON lines
        for line, rec in iter_jsonl(p):
            yield None, {"path": str(p), "line": line, "record": None}, rec
        return
    yield from iter_local_rows(p, TABLE_EXT)


def load_preferences(
    source: str | os.PathLike,
    *,
    columns: dict[str, str] | None = None,
    name: str | None = None,
    val_frac: float = 0.15,
    test_frac: float = 0.2,
    seed: int = 0,
) -> tuple[list[PreferencePair], DatasetCard]:
    """Per-user preference pairs and their card from a user's own file, folder or hub dataset.

    ``source``: a JSONL (any other suffix is read as JSON lines too), CSV / TSV, JSON or parquet
    file, a folder of them, or a hub id (``hub:owner/name``). ``columns`` maps ``user, prompt,
    chosen, rejected, split, pair_id`` to the file's column names (defaults: :data:`COLUMNS`).

    - ids (user, pair) may be strings or integers (read as strings, :func:`get_id`);
    - ``pair_id`` defaults to ``"<user>/<line>"`` (or record index) and must be unique;
    - a pair whose chosen and rejected responses are equal (after stripping) carries no preference:
      it is dropped and counted in the card (``dropped``, and the notes);
    - splits: the ``split`` column (train / val / test, ``validation`` / ``dev`` for val; all rows or
      none), else the source's own split names (hub splits, ``train.jsonl`` / ``test.jsonl``) when
      they include train and a held-out split, else assigned per user by prompt
      (:func:`assign_splits`).

    Every bad record raises one :class:`DataError` naming the file, the line (or record) and the field.
    """
    cols = column_names(columns)
    rows: list[tuple[dict, dict, str | None]] = []
    has_split: list[bool] = []
    seen: dict[str, str] = {}
    files: set[str] = set()
    n_rows = n_same = 0
    for src_split, loc, rec in _source_rows(source):
        n_rows += 1
        where = {"path": loc["path"], "line": loc.get("line"), "record": loc.get("record")}
        files.add(loc["path"])
        vals = {"user_id": get_id(rec, cols["user"], **where)}
        for key in ("prompt", "chosen", "rejected"):
            vals[key] = get_field(rec, cols[key], **where)
        pid = get_id(rec, cols["pair_id"], **where, default=None)
        pid = pid if pid not in (None, "") else ""
        split = rec.get(cols["split"])
        if split not in (None, ""):
            norm = str(split).strip().lower()
            split = SPLIT_ALIASES.get(norm, norm)
            if split not in SPLITS:
                raise DataError(
                    f"split must be one of {SPLITS} (or {tuple(SPLIT_ALIASES)} for val), got {rec[cols['split']]!r}",
                    **where,
                    field=cols["split"],
                )
        else:
            split = None
        rows.append((where, vals | {"pair_id": pid}, split or src_split))
        has_split.append(split is not None)
    if not rows:
        raise DataError("no preference pairs in file", path=str(source))
    if any(has_split) and not all(has_split):
        where = rows[has_split.index(False)][0]
        raise DataError(
            "missing split (other lines have one: give all or none)", **where, field=cols["split"]
        )
    several = len(files) > 1
    pairs: list[PreferencePair] = []
    for where, vals, split in rows:
        pid = vals["pair_id"]
        if not pid:
            tag = f"{Path(where['path']).stem}:" if several else ""
            pid = f"{vals['user_id']}/{tag}{where['line'] if where['line'] is not None else where['record']}"
        at = f"line {where['line']}" if where["line"] is not None else f"record {where['record']}"
        at = f"{where['path']} {at}" if several else at
        if pid in seen:
            raise DataError(f"duplicate pair_id (first at {seen[pid]})", **where, field=cols["pair_id"])
        seen[pid] = at
        if vals["chosen"].strip() == vals["rejected"].strip():
            n_same += 1
            continue
        pairs.append(PreferencePair(**(vals | {"pair_id": pid, "split": split or "train"})))
    if not pairs:
        raise DataError(f"no usable preference pairs: all {n_rows} have {SAME}", path=str(source))
    splits = {s for _, _, s in rows}
    if all(has_split):
        how = f"splits from the '{cols['split']}' column"
    elif None not in splits and "train" in splits and len(splits) > 1:
        how = "splits from the source's split names"
    else:
        pairs = assign_splits(pairs, val_frac=val_frac, test_frac=test_frac, seed=seed)
        how = f"splits assigned per user by prompt (val {val_frac:g}, test {test_frac:g}, seed {seed})"
    card = preference_card(
        pairs,
        name=name or str(source),
        source="preferences",
        negatives="from the file's own comparisons",
        notes=f"{n_rows} rows of {source}; {n_same} pairs with {SAME} dropped; {how}",
    )
    card.dropped = {SAME: n_same}
    return pairs, card


def read_preferences(
    path: str | os.PathLike, *, val_frac: float = 0.15, test_frac: float = 0.2, seed: int = 0
) -> list[PreferencePair]:
    """The pairs of a preference file (:func:`load_preferences` without its card).

    Every line needs ``user_id, prompt, chosen, rejected`` (ids may be integers). ``pair_id``
    defaults to ``"<user_id>/<line>"`` and must be unique. ``split`` must be train / val / test
    (``validation`` and ``dev`` are accepted for ``val``, case-insensitively); when *no*
    line has a split, splits are assigned per user by prompt with :func:`assign_splits`; a file
    where only some lines have one is an error. Pairs with ``chosen == rejected`` are dropped.
    """
    return load_preferences(path, val_frac=val_frac, test_frac=test_frac, seed=seed)[0]


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
