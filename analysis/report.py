"""The full report: run every study notebook with papermill into ``reports/<run-id>/``.

Layout of one run (design section 7)::

    reports/<run-id>/
      01_rm_vs_policy_accuracy.ipynb   executed notebook (and .html via nbconvert)
      figures/*.png, *.pdf             written by the notebooks through analysis.plots
      tables/*.csv                     tidy tables behind every figure
      timings/<notebook>.json          seconds per study phase (analysis.timings.time_stages)
      provenance.json                  config, package versions, seeds, git commit, timings
      status.json                      per-notebook status, seconds and seconds per section
                                       (lets --resume skip finished ones)
      index.html                       the findings first, then figures, notebooks, tables, settings
    reports/latest -> <run-id>
    reports/cache/                     intermediate study results, reused by later runs

A failed notebook stops the run: its partly executed notebook is kept with the error, earlier
outputs stay, the error is printed, and the exit status is non-zero. ``index.html`` is rewritten
when the run starts and after every notebook, so it shows a run that is still going.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from analysis import provenance as prov
from analysis.errors import ConfigError
from analysis.io import write_json, write_text
from analysis.timings import NOTEBOOK_ENV, TIMINGS_DIR, cell_stages, format_timings, read_phases

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"


def list_notebooks(notebook_dir: Path = NOTEBOOK_DIR, only: list[str] | None = None) -> list[Path]:
    """Notebooks in run order (by file name); ``only`` filters by prefix or name (``01``, ``02_preflamp``)."""
    books = sorted(p for p in notebook_dir.glob("*.ipynb") if not p.name.startswith("."))
    if only:
        wanted = [o.strip() for o in only if o.strip()]
        picked = [b for b in books if any(b.name.startswith(o) or b.stem == o for o in wanted)]
        missing = [o for o in wanted if not any(b.name.startswith(o) or b.stem == o for b in books)]
        if missing:
            raise ConfigError(f"--only: no notebook matches {missing}; available: {[b.stem for b in books]}")
        books = picked
    return books


def _point_latest(root: Path, run_dir: Path) -> None:
    """Atomically repoint ``root/latest`` at ``run_dir`` (a relative symlink)."""
    link = root / "latest"
    tmp = root / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)


def export_html(executed: Path) -> Path:
    """Executed notebook -> standalone HTML next to it (nbconvert)."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    out = executed.with_suffix(".html")
    write_text(out, body)
    return out


def write_index(run_dir: Path, status: dict) -> Path:
    """``index.html`` of the run (:func:`analysis.report_page.write_index`; imported here lazily:
    the page reads the figure captions of :mod:`analysis.plots`, which imports matplotlib)."""
    from analysis.report_page import write_index as write_page

    return write_page(run_dir, status)


@contextlib.contextmanager
def _env(name: str, value: str):
    """Set an environment variable for the enclosed block (the notebook's kernel inherits it)."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _record_stages(run_dir: Path, book: Path, entry: dict) -> None:
    """Seconds per notebook section (papermill's cell timing) and per study phase, into ``entry``."""
    executed = run_dir / book.name
    if executed.exists():
        stages = cell_stages(executed)
        rest = entry.get("seconds", 0.0) - sum(stages.values())
        if stages and rest > 0:  # kernel start, parameter injection, saving the notebook
            stages["kernel and papermill"] = round(rest, 3)
        entry["stages"] = stages
    phases = read_phases(run_dir, book.stem)
    if phases:
        entry["phases"] = phases


def _dtype_used(cfg) -> dict:
    """The model dtype the run uses (``dtype: auto`` resolved on this machine) and why."""
    from analysis.models import cpu_bf16_supported, resolve_dtype

    return {
        "setting": cfg.dtype,
        "used": resolve_dtype(cfg.dtype, cfg.device),
        "device": cfg.device,
        "cpu_native_bf16": cpu_bf16_supported(),
    }


def run_report(
    preset: str = "embedded",
    overrides: dict | None = None,
    config_path: str | None = None,
    only: list[str] | None = None,
    output_root: str | Path = REPO / "reports",
    run_id: str | None = None,
    resume: bool = False,
    notebook_dir: Path = NOTEBOOK_DIR,
    html_export: bool = True,
    progress: bool = True,
) -> Path:
    """Execute the notebooks in order; return the run folder. Raises RuntimeError on a failed notebook."""
    import papermill as pm

    from analysis.config import check_runnable, load_config

    cfg = load_config(preset, overrides, path=config_path)  # validate before any work
    check_runnable(cfg)
    root = Path(output_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if resume and run_id is None and (root / "latest").exists():
        run_id = (root / "latest").resolve().name
    run_id = run_id or dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{cfg.preset}"
    run_dir = root / run_id
    (run_dir / "figures").mkdir(parents=True, exist_ok=True)
    (run_dir / "tables").mkdir(parents=True, exist_ok=True)
    cache = cfg.cache_dir or str(root / "cache")
    books = list_notebooks(notebook_dir, only)
    if not books:
        raise ConfigError(f"no notebooks found in {notebook_dir}")

    status_path = run_dir / "status.json"
    old = json.loads(status_path.read_text()) if (resume and status_path.exists()) else {}
    status = {
        "run_id": run_id,
        "preset": cfg.preset,
        "git_commit": prov.git_commit(),
        "started": old.get("started", dt.datetime.now().isoformat(timespec="seconds")),
        "notebooks": {b.name: old.get("notebooks", {}).get(b.name, {"status": "pending"}) for b in books},
    }
    provenance = {
        "run_id": run_id,
        "command": sys.argv,
        "config": cfg.to_dict(),
        "overrides": overrides or {},
        "config_file": config_path,
        "seeds": {"seeds": cfg.seeds, "seed": cfg.seed},
        "rouge_stemming": cfg.rouge_stemming,
        "dtype": _dtype_used(cfg),
        "git_commit": status["git_commit"],
        "python": prov.python_version(),
        "versions": prov.package_versions(),
        "code_version": prov.code_version(),
        "runtime": prov.runtime(cfg.device, cfg.dtype),
        "started": status["started"],
    }
    write_json(run_dir / "provenance.json", provenance)
    _point_latest(root, run_dir)

    params = {
        "preset": cfg.preset,
        "overrides": overrides or {},
        "config_path": config_path or "",
        "output_dir": str(run_dir),
        "cache_dir": cache,
    }
    write_index(run_dir, status)
    t_run = time.time()
    for book in books:
        entry = status["notebooks"][book.name]
        if resume and entry.get("status") == "ok" and (run_dir / book.name).exists():
            print(f"[report] {book.stem}: done in an earlier attempt, skipped", flush=True)
            continue
        print(f"[report] running {book.stem} ...", flush=True)
        t0 = time.time()
        entry.clear()
        entry.update(status="running")
        write_json(status_path, status)
        write_index(run_dir, status)
        (run_dir / TIMINGS_DIR / f"{book.stem}.json").unlink(missing_ok=True)  # an earlier attempt's
        try:
            with _env(NOTEBOOK_ENV, book.stem):  # the kernel inherits it: time_stages names its file
                pm.execute_notebook(
                    str(book),
                    str(run_dir / book.name),
                    parameters=params,
                    cwd=str(run_dir),
                    kernel_name="python3",
                    progress_bar=progress,
                    log_output=False,
                )
        except Exception as exc:  # papermill keeps the partly executed notebook with the error
            entry.update(status="failed", seconds=round(time.time() - t0, 1), error=str(exc).strip()[-2000:])
            _record_stages(run_dir, book, entry)
            write_json(status_path, status)
            if html_export and (run_dir / book.name).exists():
                export_html(run_dir / book.name)
            write_index(run_dir, status)
            raise RuntimeError(
                f"notebook {book.name} failed (outputs so far kept in {run_dir}):\n{exc}"
            ) from exc
        entry.update(status="ok", seconds=round(time.time() - t0, 1))
        _record_stages(run_dir, book, entry)
        if html_export:
            t1 = time.time()
            export_html(run_dir / book.name)
            entry["html_seconds"] = round(time.time() - t1, 1)
        write_json(status_path, status)
        write_index(run_dir, status)
        print(f"[report] {book.stem}: ok in {entry['seconds']} s", flush=True)
    status["total_seconds"] = round(time.time() - t_run, 1)
    write_json(status_path, status)
    provenance["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    provenance["notebook_seconds"] = {k: v.get("seconds") for k, v in status["notebooks"].items()}
    provenance["stage_seconds"] = {
        k: {"sections": v.get("stages", {}), "study_phases": v.get("phases", {})}
        for k, v in status["notebooks"].items()
    }
    provenance["total_seconds"] = status["total_seconds"]
    write_json(run_dir / "provenance.json", provenance)
    write_index(run_dir, status)
    print("[report] timings:\n" + format_timings(status), flush=True)
    return run_dir
