"""The study run cache: results under ``<cache_dir>/studies/<code_version>/``, keyed by settings.

Everything expensive is cached keyed by a fingerprint of exactly the settings it depends on
(config keys, model id + weight fingerprint, data), so an interrupted report resumes where it
stopped and a later study reuses an earlier one's work. Files are written atomically through
:mod:`analysis.io`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from analysis.io import read_json, write_json, write_text
from analysis.provenance import code_version


def key_hash(obj) -> str:
    """Short stable hash of any JSON-able object (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StudyCache:
    """JSON / DataFrame results under ``<cache_dir>/studies/<code_version>/<kind>/<key>.json``,
    written atomically."""

    def __init__(self, cache_dir: str | os.PathLike | None):
        from analysis.models.embedded import cache_dir as user_cache

        self.root = Path(cache_dir) if cache_dir else user_cache() / "studies-cache"
        self.root = self.root / "studies" / code_version()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, kind: str, key) -> Path:
        return self.root / kind / f"{key if isinstance(key, str) else key_hash(key)}.json"

    def json(self, kind: str, key, fn: Callable[[], object]):
        """``fn()`` once; later calls with the same key read the stored JSON."""
        p = self.path(kind, key)
        if p.exists():
            return read_json(p)
        value = fn()
        write_json(p, value)
        return value

    def frame(self, kind: str, key, fn: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        p = self.path(kind, key)
        if p.exists():
            return pd.read_json(io.StringIO(p.read_text()), orient="table", convert_dates=False)
        df = fn().reset_index(drop=True)
        write_text(p, df.to_json(orient="table", index=False, double_precision=15))
        return df
