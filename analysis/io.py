"""Atomic file output: write to a temporary file in the same folder, then rename.

Every writer in the package goes through these helpers so that an interrupted run never
leaves a half-written file behind (design section 7).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as fh:
        fh.write(text)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=indent, ensure_ascii=False, default=str)
        fh.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_open(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            n += 1
    return n


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


# --------------------------------------------------------------------------- claims
# Two processes that need the same cached results (two notebooks of a report, sweep workers) split
# the work through claim files: whoever creates a piece's claim computes it, the other skips it and
# later reads it from the cache (or takes it over when its claimant is gone).


def claim_is_stale(path: str | os.PathLike, max_age: float = 6 * 3600.0) -> bool:
    """Whether the claim at ``path`` was left by a process that no longer runs: its pid is gone on
    this host, or (another host's claim, whose process cannot be checked) it is older than
    ``max_age`` seconds. A claim being written (no pid yet) or already gone is not stale."""
    import socket
    import time

    try:
        pid, host = Path(path).read_text().split()
        age = time.time() - os.path.getmtime(path)
    except (FileNotFoundError, ValueError):
        return False
    if host != socket.gethostname():
        return age > max_age
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


@contextlib.contextmanager
def claimed(path: str | os.PathLike) -> Iterator[bool]:
    """Try to claim a piece of work: yields True if this process created the claim file ``path``
    (exclusively; a stale claim, :func:`claim_is_stale`, is taken over), False if another process
    holds it. The claim is removed when the block ends, also on an error (so others take over).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "piece.claim"
    >>> with claimed(p) as mine, claimed(p) as again:
    ...     mine, again
    (True, False)
    >>> p.exists()
    False
    """
    import socket

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = False
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not claim_is_stale(path):
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()} {socket.gethostname()}\n")
        mine = True
        break
    try:
        yield mine
    finally:
        if mine:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
