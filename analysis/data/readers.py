"""Careful file readers shared by every loader: one clear :class:`DataError` per bad input.

Every failure names the file, the line (JSONL) or record id (JSON) and the field, so the CLI can
print a single ``error: ...`` line. Nothing here writes files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from analysis.data.records import DataError


def read_text(path: str | os.PathLike) -> str:
    """The whole file as UTF-8 text (a UTF-8 BOM is dropped); non-UTF-8 bytes -> :class:`DataError`."""
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", path=str(p))
    if p.is_dir():
        raise DataError("is a directory, expected a file", path=str(p))
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"is not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})", path=str(p), line=line
        ) from None
    return text.removeprefix("\ufeff")


def read_json_file(path: str | os.PathLike) -> Any:
    """Parse a JSON document; malformed JSON -> :class:`DataError` with the line number."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"malformed JSON: {e.msg} (column {e.colno})", path=str(path), line=e.lineno
        ) from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file.

    Lines end at ``\n`` only (a ``\r`` before it is dropped): ``str.splitlines`` would also break
    at U+0085, U+2028 and U+2029, which ``json.dumps(..., ensure_ascii=False)`` leaves unescaped
    inside strings of real multilingual text.
    """
    text = read_text(path)
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"malformed JSON: {e.msg} (column {e.colno})", path=str(path), line=lineno
            ) from None
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, got {type(obj).__name__}", path=str(path), line=lineno)
        yield lineno, obj


def iter_csv(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, row)`` for each data row of a CSV (or, by suffix, TSV) file with a header.

    Values are strings (an empty cell is ``None``); the line number is where the row starts (a
    quoted cell may span lines). A row with more cells than the header -> :class:`DataError`.
    """
    import csv
    import io

    p = Path(path)
    text = read_text(p)
    reader = csv.DictReader(
        io.StringIO(text, newline=""), delimiter="\t" if p.suffix.lower() == ".tsv" else ","
    )
    start = 2
    try:
        for row in reader:
            if None in row:
                raise DataError(
                    f"{len(reader.fieldnames or [])} header columns but more cells in this row",
                    path=str(p),
                    line=start,
                )
            if any(v not in (None, "") for v in row.values()):
                yield start, {k: (v if v != "" else None) for k, v in row.items()}
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"malformed CSV: {e}", path=str(p), line=reader.line_num) from None


def read_records(path: str | os.PathLike) -> Iterator[tuple[int | None, int | None, dict]]:
    """Records of a JSONL, CSV / TSV, JSON (a list, or ``{"data": [...]}``) or parquet file.

    Yields ``(line, index, record)``: ``line`` for JSONL and CSV, ``index`` (0-based) otherwise.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        for lineno, obj in iter_jsonl(p):
            yield lineno, None, obj
        return
    if suffix in (".csv", ".tsv"):
        for lineno, obj in iter_csv(p):
            yield lineno, None, obj
        return
    if suffix == ".parquet":
        try:
            import pandas as pd

            frame = pd.read_parquet(p)
        except ImportError as e:
            raise DataError(f"reading parquet needs pyarrow ({e})", path=str(p)) from None
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a corrupt file
            raise DataError(f"unreadable parquet file: {e}", path=str(p)) from None
        for i, row in enumerate(frame.to_dict(orient="records")):
            yield None, i, {k: _native(v) for k, v in row.items()}
        return
    obj = read_json_file(p)
    if isinstance(obj, dict):
        for key in ("data", "rows", "records", "train", "examples"):
            if isinstance(obj.get(key), list):
                obj = obj[key]
                break
    if not isinstance(obj, list):
        raise DataError(f"expected a JSON list of records, got {type(obj).__name__}", path=str(p))
    for i, rec in enumerate(obj):
        if not isinstance(rec, dict):
            raise DataError(f"expected a JSON object, got {type(rec).__name__}", path=str(p), record=i)
        yield None, i, rec


def get_field(
    rec: dict,
    name: str,
    *,
    path: str | os.PathLike | None = None,
    line: int | None = None,
    record: str | int | None = None,
    kind: type | tuple[type, ...] = str,
    allow_empty: bool = False,
    default: Any = ...,
) -> Any:
    """``rec[name]`` checked for presence, type and (for strings) non-emptiness."""
    loc = {"path": None if path is None else str(path), "line": line, "record": record, "field": name}
    if name not in rec or rec[name] is None:
        if default is not ...:
            return default
        raise DataError("missing field", **loc)
    value = rec[name]
    if not isinstance(value, kind) or (
        kind is not bool and isinstance(value, bool) and bool not in _tuple(kind)
    ):
        want = "/".join(k.__name__ for k in _tuple(kind))
        raise DataError(f"expected {want}, got {type(value).__name__}", **loc)
    if isinstance(value, str) and not allow_empty and not value.strip():
        raise DataError("is an empty string", **loc)
    return value


def get_id(
    rec: dict,
    name: str,
    *,
    path: str | os.PathLike | None = None,
    line: int | None = None,
    record: str | int | None = None,
    default: Any = ...,
) -> Any:
    """An id field (``user_id``, ``pair_id``, ...) as a string: crowd-annotation exports write ids as
    numbers, so an int (or an integral float, as pandas writes an int column with gaps) is read as
    its decimal string; a bool, a fractional number or an empty string -> :class:`DataError`."""
    value = get_field(rec, name, path=path, line=line, record=record, kind=(str, int, float), default=default)
    if isinstance(value, float):
        if not value.is_integer():
            loc = {"path": None if path is None else str(path), "line": line, "record": record, "field": name}
            raise DataError(f"expected a string or integer id, got {value!r}", **loc)
        value = int(value)
    return value if isinstance(value, str) or value is default else str(value)


def _native(value: Any) -> Any:
    """numpy arrays / scalars from parquet (nested lists and structs) -> plain Python objects."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_native(v) for v in value]
    return value


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
