"""Rows of a public dataset, from local files or the Hugging Face hub, and prompt-level splits.

Shared by the public preference-set loaders (:mod:`analysis.data.public_sets`):

- :func:`iter_rows` yields ``(source_split, location, record)`` from a local file or folder
  (JSON / JSONL / parquet) or from the hub through ``datasets.load_dataset`` (imported lazily;
  a missing package or no hub access is one :class:`HubError` line, never a traceback).
- :func:`assign_prompt_splits` puts every *prompt* in one split for all users, so no prompt text
  of a validation or test pair appears in any training pair of any user.

A local file's source split comes from its name or its folder (the hub's parquet layouts:
``train-00000-of-00001.parquet``, ``comparisons/validation/0000.parquet``); ``validation``,
``valid`` and ``dev`` mean ``val``.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from pathlib import Path

from analysis.data.readers import read_records
from analysis.data.records import DataError
from analysis.data.splits import split_counts, split_items

_FILE_EXT = (".json", ".jsonl", ".ndjson", ".parquet")
TABLE_EXT = (*_FILE_EXT, ".csv", ".tsv")  # what a user's own preference file may be
_SPLIT_NAMES = {
    "train": "train",
    "test": "test",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
}


class HubError(DataError):
    """The hub could not be reached, or the optional ``datasets`` package is missing."""


def split_name(name: str) -> str | None:
    """``train`` / ``val`` / ``test`` for a hub split or file name (``validation-0000`` -> ``val``)."""
    head = re.split(r"[-_.]", name.lower(), maxsplit=1)[0]
    return _SPLIT_NAMES.get(head)


def iter_local_rows(
    path: str | os.PathLike, extensions: tuple[str, ...] = _FILE_EXT
) -> Iterator[tuple[str | None, dict, dict]]:
    """``(source_split, location, record)`` for each record of a file or of every file under a folder
    (a folder's files with one of ``extensions``)."""
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
        if not files:
            raise DataError(f"no {'/'.join(extensions)} files in this folder", path=str(p))
    elif p.exists():
        files = [p]
    else:
        raise DataError("file not found", path=str(p))
    root = p if p.is_dir() else p.parent  # folder names above the given path say nothing
    for f in files:
        split = split_name(f.stem) or (split_name(f.parent.name) if f.parent != root else None)
        for line, index, rec in read_records(f):
            yield split, {"path": str(f), "line": line, "record": index}, rec


def iter_hub_rows(
    hub_id: str, config: str | None = None, *, revision: str | None = None, hint: str = ""
) -> Iterator[tuple[str | None, dict, dict]]:
    """Rows of every split of a hub dataset (``datasets.load_dataset(hub_id, config, revision=...)``)."""
    where = f"hub:{hub_id}" + (f" ({config})" if config else "")
    try:
        import datasets
    except ImportError:
        raise HubError(
            "loading from the Hugging Face hub needs the optional 'datasets' package: "
            f"pip install 'personalized-alignment-analysis[hub]'{hint}",
            path=where,
        ) from None
    kw = {"revision": revision} if revision else {}
    try:
        dd = datasets.load_dataset(hub_id, config, **kw)
    except Exception as e:  # noqa: BLE001 - network, auth, offline mode and missing-config errors differ by version
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise HubError(
            f"cannot load it from the Hugging Face hub ({type(e).__name__}: {msg}){hint}", path=where
        ) from None
    splits = dd.items() if hasattr(dd, "items") else [("train", dd)]
    for name, ds in splits:
        for i, rec in enumerate(ds):
            yield split_name(name), {"path": f"{where}[{name}]", "record": i}, dict(rec)


def iter_rows(
    path: str | os.PathLike | None, hub_id: str, config: str | None = None, **hub_kw
) -> Iterator[tuple[str | None, dict, dict]]:
    """Local rows when ``path`` is given (and non-empty), else hub rows."""
    if path:
        return iter_local_rows(path)
    return iter_hub_rows(hub_id, config, **hub_kw)


_RANK = {None: 0, "train": 0, "val": 1, "test": 2}


def note_prompt(prompts: dict[str, str | None], prompt: str, split: str | None) -> None:
    """Record ``prompt``'s source split; one seen in several keeps the most held-out (test > val > train)."""
    if prompt not in prompts or _RANK[split] > _RANK[prompts[prompt]]:
        prompts[prompt] = split


def assign_prompt_splits(
    prompts: dict[str, str | None],
    *,
    val_frac: float,
    test_frac: float,
    seed: int,
    n_prompts: int | None = None,
) -> dict[str, str]:
    """``{prompt: split}`` for every prompt kept, one split per prompt across all users.

    ``prompts`` maps each prompt to its source split (or ``None``). When the source has a train
    split and a held-out one, its splits are kept (see :func:`note_prompt` for a prompt seen in
    several), and a missing val (or test) split is carved from the
    train prompts with ``val_frac`` (``test_frac``). Otherwise the prompts are split with
    :func:`analysis.data.splits.split_items`. ``n_prompts`` keeps a seeded sample of that many
    prompts in the ``val_frac`` / ``test_frac`` proportions (fewer where a split has fewer).
    """
    sources = {s for s in prompts.values() if s}
    use_source = "train" in sources and len(sources) > 1
    out: dict[str, str] = {}
    if use_source:
        held = {p: s for p, s in prompts.items() if s in ("val", "test")}
        rest = sorted(p for p in prompts if p not in held)
        carve = split_items(
            rest,
            val_frac=0.0 if "val" in sources else val_frac,
            test_frac=0.0 if "test" in sources else test_frac,
            seed=seed,
        )
        out = {**carve, **held}
    else:
        out = split_items(sorted(prompts), val_frac=val_frac, test_frac=test_frac, seed=seed)
    if n_prompts is not None and n_prompts < len(out):
        _, n_val, n_test = split_counts(n_prompts, val_frac, test_frac)
        want = {"val": n_val, "test": n_test, "train": n_prompts - n_val - n_test}
        rng = random.Random(f"{seed}-prompts")
        kept: dict[str, str] = {}
        for split in ("train", "val", "test"):
            pool = sorted(p for p, s in out.items() if s == split)
            rng.shuffle(pool)
            kept.update({p: split for p in pool[: want[split]]})
        out = kept
    if not any(s == "train" for s in out.values()):
        raise DataError("no training prompts left after splitting (too few prompts?)")
    return out
