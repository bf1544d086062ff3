"""Which report run folder the inspector (notebook 04) opens, and the labels of its run picker.

:func:`pick_run`: an explicit ``run_dir``; else the run the notebook is part of (``output_dir``
when the report executes it); else ``reports/latest`` if that run finished, else the newest
finished run (``status.json``: every notebook ``ok``). A run still being written (or failed) is
never opened by default, so notebook 04 works while a second report is running.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

GEN_TABLES = ("study2_generations", "study3_generations")
REPORTS = Path(__file__).resolve().parents[2] / "reports"  # the report's default output root


def has_generations(run: Path) -> bool:
    return any((run / "tables" / f"{t}.csv").exists() for t in GEN_TABLES)


def run_state(run: str | os.PathLike) -> str:
    """``finished`` (status.json: every notebook ok), ``running``, ``failed`` or ``unknown``."""
    try:
        status = json.loads((Path(run) / "status.json").read_text())
        states = [str(v.get("status")) for v in status["notebooks"].values()]
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return "unknown"
    if states and all(s == "ok" for s in states):
        return "finished"
    return "failed" if "failed" in states else "running"


def list_runs(reports_root: str | os.PathLike) -> list[Path]:
    """Run folders under ``reports_root`` that hold generation tables, each once (the ``latest``
    link is not a second entry), newest run id first."""
    root = Path(reports_root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and has_generations(p)]
    return sorted(runs, key=lambda p: p.name, reverse=True)


def default_run(reports_root: str | os.PathLike = REPORTS) -> Path:
    """``<root>/latest`` if it finished, else the newest finished run; FileNotFoundError if none."""
    root = Path(reports_root)
    latest = root / "latest"
    if latest.exists() and has_generations(latest) and run_state(latest) == "finished":
        return latest.resolve()
    for run in list_runs(root):
        if run_state(run) == "finished":
            return run.resolve()
    raise FileNotFoundError(
        f"{root}: no finished run with generation tables (run `make report`, or pass run_dir=...)"
    )


def pick_run(run_dir: str = "", output_dir: str = "", reports_root: str | os.PathLike = "") -> Path:
    """The run notebook 04 opens (module docstring): run_dir, else its own run, else the default."""
    if run_dir:
        if not has_generations(Path(run_dir)):
            raise FileNotFoundError(
                f"run_dir={run_dir!r}: no generation tables ({', '.join(GEN_TABLES)}.csv)"
            )
        return Path(run_dir).resolve()
    own = Path(output_dir) if output_dir not in ("", ".") else None
    if own is not None and has_generations(own):
        return own.resolve()
    if not reports_root:  # a notebook opened from <repo>/notebooks: its sibling reports/ folder
        here = Path.cwd().parent / "reports"
        reports_root = here if here.is_dir() else REPORTS
    return default_run(reports_root)


def run_label(run: Path, latest: Path | None = None) -> str:
    """Dropdown label: the run id, marked ``latest`` and with its state when not finished."""
    tags = ["latest"] if latest is not None and run.resolve() == latest else []
    state = run_state(run)
    if state not in ("finished", "unknown"):
        tags.append(state)
    return run.name + (f"  ({', '.join(tags)})" if tags else "")


def run_choices(reports_root: str | os.PathLike, current: str | os.PathLike | None = None) -> list[tuple]:
    """``(label, absolute path)`` pairs for the run dropdown; ``current`` is included once."""
    root = Path(reports_root)
    latest = (root / "latest").resolve() if (root / "latest").exists() else None
    runs = [p.resolve() for p in list_runs(root)]
    if current is not None and Path(current).resolve() not in runs:
        runs.insert(0, Path(current).resolve())
    return [(run_label(r, latest), str(r)) for r in dict.fromkeys(runs)]


def item_label(test_id: str, width: int = 48) -> str:
    """A short label for a test item: a URL becomes its host and last path part."""
    s = str(test_id)
    m = re.match(r"https?://(?:www\.)?([^/]+)(/.*)?$", s)
    if m:
        parts = [p for p in (m.group(2) or "").split("/") if p]
        s = m.group(1) + (f"/…/{parts[-1]}" if len(parts) > 1 else f"/{parts[0]}" if parts else "")
    return s if len(s) <= width else s[: width - 1] + "…"
