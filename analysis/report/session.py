"""The set-up every study notebook shares, as one call: :func:`open_run`.

>>> import tempfile
>>> run = open_run("embedded", {"seeds": [0]}, output_dir=tempfile.mkdtemp(), params={"k": None}, quiet=True)
>>> run.cfg.seeds, run.cfg.k, (run.out / "tables").is_dir()
([0], 10, True)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import analysis
from analysis.config.parse import load_config
from analysis.config.schema import StudyConfig


def reports_root() -> Path:
    """``reports/`` of the checkout this package runs from (the working directory's when installed)."""
    repo = Path(analysis.__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists():
        return repo / "reports"
    return Path.cwd() / "reports"


@dataclass
class StudyRun:
    """One notebook's run: its config, its output folder (``figures/``, ``tables/``) and its cache."""

    cfg: StudyConfig
    out: Path  # run folder; figures/ and tables/ exist inside it
    cache: str  # folder of intermediate study results (resumable, shared between runs)

    def table(self, df, name: str, settings: dict | None = None) -> Path:
        """``tables/<name>.csv`` with the run's settings columns (plus ``settings``)."""
        from analysis.report.plots import settings_columns, write_table

        return write_table(df, self.out, name, {**settings_columns(self.cfg), **(settings or {})})

    def figure(self, fig, name: str) -> dict[str, Path]:
        """``figures/<name>.png`` and ``.pdf``."""
        from analysis.report.plots import save_figure

        return save_figure(fig, self.out, name)


def open_run(
    preset: str = "embedded",  # config preset: embedded or paper
    overrides: dict | None = None,  # config keys to override (validated)
    config_path: str | None = None,  # YAML/JSON config file applied before the overrides
    output_dir: str | None = None,  # run folder; empty/None: reports/interactive-<timestamp>/
    cache_dir: str
    | None = None,  # study cache; empty/None: the config's, else reports/cache or <output_dir>/cache
    params: dict[str, Any]
    | None = None,  # notebook parameters naming config keys; None values keep the config's
    quiet: bool = False,  # skip the one-line summary and the pandas display options
) -> StudyRun:
    """Load and validate the config, create the output folders and pick the cache: a notebook's set-up.

    Under the report runner ``output_dir`` and ``cache_dir`` are given (``reports/<run-id>`` and
    ``reports/cache``). Run interactively with the defaults, the outputs go to a fresh
    ``reports/interactive-<timestamp>/`` (never next to the notebooks) and the cache to
    ``reports/cache``, so interactive runs reuse each other's and the report's results.
    """
    extra = {k: v for k, v in (params or {}).items() if v is not None}
    cfg = load_config(preset, {**(overrides or {}), **extra}, path=config_path or None)
    if output_dir:
        out = Path(output_dir)
        default_cache = out / "cache"
    else:
        root = reports_root()
        out = root / f"interactive-{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
        default_cache = root / "cache"
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    cache = str(cache_dir or cfg.cache_dir or default_cache)
    if not quiet:
        import pandas as pd

        pd.set_option("display.width", 200, "display.max_colwidth", 120)
        from analysis.models.loading import resolve_dtype
        from analysis.report.page import precision_note

        used = resolve_dtype(cfg.dtype, cfg.device)
        print(
            f"preset={cfg.preset} policy={cfg.policy_model} models={cfg.models} dtype={used} "
            f"fingerprint={cfg.fingerprint()} output={out}"
        )
        note = precision_note({"setting": cfg.dtype, "used": used, "device": cfg.device})
        if note:
            print(f"NOTE: {note}")
    return StudyRun(cfg=cfg, out=out, cache=cache)
