"""Where a report's time goes: per notebook, per notebook section, per study phase.

Three levels, all written into the run folder so that a report says how long each part took:

- per notebook: :func:`analysis.report.runner.run_report` (``status.json``, ``provenance.json``);
- per section of a notebook: :func:`cell_stages` reads papermill's per-cell timing of an executed
  notebook and sums it under the notebook's ``##`` headings (nothing to add to the notebooks);
- per study phase (load models, features, train RMs, policy accuracy, generations, ...):
  :func:`time_stages`, called once in a notebook's set-up cell, wraps the study modules' main phase
  functions with a timer (self time: a phase nested in another is not counted twice) and writes
  ``<run>/timings/<notebook>.json`` after every outermost phase. The wrapped functions are looked up
  by name (:data:`PHASES`); a name a study module no longer has is skipped.

>>> import tempfile, json
>>> from pathlib import Path
>>> out = Path(tempfile.mkdtemp())
>>> with StageTimer(out / "t.json", modules=()) as t:
...     with t.phase("train RMs"):
...         pass
>>> sorted(json.loads((out / "t.json").read_text())["phases"])
['train RMs']
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import json
import os
import time
from pathlib import Path

from analysis.io import write_json

NOTEBOOK_ENV = "ANALYSIS_REPORT_NOTEBOOK"  # set by run_report for the kernel: the notebook's stem
TIMINGS_DIR = "timings"
# function name (in the study modules) -> the phase its time is counted under
PHASES = {
    "get_model": "load models",
    "study1_dataset": "data and pairs",
    "user_tasks": "data and pairs",
    "synthetic_data": "data and pairs",
    "preflamp_pairs": "Pref-LaMP pairs (base generations)",
    "features": "features",
    "pa_data": "policy-accuracy data (test pairs)",
    "train_rm": "train RMs",
    "rm_accuracy_row": "RM accuracy",
    "policy_accuracy": "policy accuracy (per RM, with bootstrap)",
    "tau_table": "Kendall tau (bootstrap)",
    "generate_systems": "generations",
    "score_rows": "ROUGE scoring",
    "system_summary": "summaries (bootstrap)",
    "paired_comparison": "paired tests (bootstrap)",
    "population": "study-1 population (per-RM results)",
    "selection_samples": "best-of-n samples (study 5)",
    "sample_features": "sample features (study 5)",
    "rank_samples": "rank samples by every RM",
    "selection_args": "ARGS of the selection cells",
    "selection_statistics": "selection statistics (joint bootstrap)",
}
STUDY_MODULES = (
    "analysis.studies.rm_policy",
    "analysis.studies.preflamp",
    "analysis.studies.rm_selection",
    "analysis.metrics.intervals",
    "analysis.evaluation.policy_accuracy",  # study 1 imports policy_accuracy at call time: the wrapped one
)


class StageTimer:
    """Self time and call counts per phase, written as JSON to ``path`` (atomically) whenever an
    outermost phase ends and on :meth:`stop`. :meth:`start` wraps the :data:`PHASES` functions of
    ``modules``; :meth:`stop` puts the originals back."""

    def __init__(self, path: str | os.PathLike, modules=STUDY_MODULES, phases: dict | None = None):
        self.path = Path(path)
        self.modules = tuple(modules)
        self.phases = dict(PHASES if phases is None else phases)
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[str] = []
        self._mark = 0.0
        self._patched: list[tuple[object, str, object]] = []

    def _enter(self, phase: str) -> None:
        now = time.perf_counter()
        if self._stack:  # the enclosing phase's self time stops here
            top = self._stack[-1]
            self.seconds[top] = self.seconds.get(top, 0.0) + now - self._mark
        self._stack.append(phase)
        self._mark = now

    def _exit(self) -> None:
        now = time.perf_counter()
        phase = self._stack.pop()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._mark
        self.calls[phase] = self.calls.get(phase, 0) + 1
        self._mark = now
        if not self._stack:
            self.write()

    @contextlib.contextmanager
    def phase(self, name: str):
        """Count the enclosed block under ``name`` (for phases that are not a wrapped function)."""
        self._enter(name)
        try:
            yield
        finally:
            self._exit()

    def _wrap(self, fn, phase: str):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            with self.phase(phase):
                return fn(*args, **kwargs)

        timed.__stage_timer_original__ = fn
        return timed

    def start(self) -> StageTimer:
        for mod_name in self.modules:
            mod = importlib.import_module(mod_name)
            for fn_name, phase in self.phases.items():
                fn = getattr(mod, fn_name, None)
                if inspect.isfunction(fn) and not hasattr(fn, "__stage_timer_original__"):
                    self._patched.append((mod, fn_name, fn))
                    setattr(mod, fn_name, self._wrap(fn, phase))
        return self

    def stop(self) -> None:
        for mod, name, fn in reversed(self._patched):
            setattr(mod, name, fn)
        self._patched.clear()
        self.write()

    def write(self) -> None:
        order = sorted(self.seconds, key=lambda p: -self.seconds[p])
        write_json(
            self.path,
            {
                "phases": {p: round(self.seconds[p], 3) for p in order},
                "calls": {p: self.calls.get(p, 0) for p in order},
            },
        )

    def __enter__(self) -> StageTimer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_ACTIVE: StageTimer | None = None


def time_stages(output_dir: str | os.PathLike) -> StageTimer:
    """Time the study phases of this kernel into ``<output_dir>/timings/<notebook>.json`` (the
    notebook's stem when the report runs it, else ``interactive``). Calling it again (a re-run
    set-up cell) replaces the earlier timer instead of wrapping twice."""
    global _ACTIVE
    if _ACTIVE is not None:
        _ACTIVE.stop()
    name = os.environ.get(NOTEBOOK_ENV) or "interactive"
    _ACTIVE = StageTimer(Path(output_dir) / TIMINGS_DIR / f"{name}.json").start()
    return _ACTIVE


def read_phases(run_dir: str | os.PathLike, stem: str) -> dict[str, float]:
    """The study-phase seconds a notebook's :func:`time_stages` wrote ({} when none)."""
    try:
        return json.loads((Path(run_dir) / TIMINGS_DIR / f"{stem}.json").read_text())["phases"]
    except (OSError, ValueError, KeyError):
        return {}


def cell_stages(executed: str | os.PathLike) -> dict[str, float]:
    """Seconds per section of an executed notebook: papermill's cell durations summed under the
    ``##`` heading above each code cell (``parameters`` for the parameter cells, ``set-up`` for the
    cells between the title and the first section). Cells that did not run are left out."""
    nb = json.loads(Path(executed).read_text())
    label, out = "set-up", {}
    for cell in nb.get("cells", []):
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        if cell.get("cell_type") == "markdown":
            first = src.strip().splitlines()[0] if src.strip() else ""
            if first.startswith("## "):
                label = first[3:].replace("`", "").strip()
            elif first.startswith("# "):
                label = "set-up"
            continue
        meta = cell.get("metadata", {})
        seconds = meta.get("papermill", {}).get("duration")
        if seconds is None:
            continue
        tags = set(meta.get("tags", []))
        key = "parameters" if tags & {"parameters", "injected-parameters"} else label
        out[key] = round(out.get(key, 0.0) + float(seconds), 3)
    return out


def format_timings(status: dict) -> str:
    """Per-notebook seconds with their sections and study phases, and the total (for the console)."""
    lines, total = [], 0.0
    for name, entry in status.get("notebooks", {}).items():
        secs = entry.get("seconds")
        if secs is None:
            lines.append(f"  {Path(name).stem}: {entry.get('status', 'pending')}")
            continue
        total += secs
        lines.append(f"  {Path(name).stem}: {secs:.1f} s ({entry.get('status')})")
        for label, s in (entry.get("stages") or {}).items():
            lines.append(f"      {s:8.1f} s  {label}")
        phases = entry.get("phases") or {}
        if phases:
            lines.append(
                "      study phases (self time): " + ", ".join(f"{p} {s:.1f}" for p, s in phases.items())
            )
    lines.append(
        f"  notebooks total: {total:.1f} s (a sum: notebooks that ran alongside each other count in full)"
    )
    if status.get("total_seconds") is not None:
        lines.append(f"  report total (wall, with HTML export): {status['total_seconds']:.1f} s")
    return "\n".join(lines)
