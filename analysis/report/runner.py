"""The full report: run every study notebook with papermill into ``reports/<run-id>/``.

Layout of one run (design section 7)::

    reports/<run-id>/
      01_rm_vs_policy_accuracy.ipynb   executed notebook (and .html via nbconvert)
      figures/*.png, *.pdf             written by the notebooks through analysis.report.plots
      tables/*.csv                     tidy tables behind every figure
      timings/<notebook>.json          seconds per study phase (analysis.report.timings.time_stages)
      provenance.json                  config, package versions, seeds, git commit, timings
      status.json                      per-notebook status, seconds and seconds per section
                                       (lets --resume skip finished ones)
      index.html                       the findings first, then figures, notebooks, tables, settings
    reports/latest -> <run-id>
    reports/cache/                     intermediate study results, reused by later runs

A failed notebook stops the run: its partly executed notebook is kept with the error, earlier
outputs stay, the error is printed, and the exit status is non-zero. ``index.html`` is rewritten
when the run starts and after every notebook, so it shows a run that is still going.

Each notebook runs in its own child process (its kernel inherits that child's environment: the
notebook name for the timings, the files of :mod:`analysis.report.schedule`). Notebooks run in order;
one that calls :func:`analysis.report.schedule.handoff` lets the next one start alongside it (notebook
01 does as its study starts; notebook 02 waits for the Pref-LaMP features that notebook 01
caches before it trains reward models), the two sharing the CPU at one thread each on a fixed
schedule (:mod:`analysis.report.schedule`). At most two run at once, and nothing
new starts after a failure.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from analysis import provenance as prov
from analysis.errors import ConfigError
from analysis.io import write_json, write_text
from analysis.report import schedule as cpu_share
from analysis.report.timings import NOTEBOOK_ENV, TIMINGS_DIR, cell_stages, format_timings, read_phases

REPO = Path(__file__).resolve().parents[2]
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


def _html(nb) -> str:
    """A notebook node as standalone HTML (nbconvert)."""
    from nbconvert import HTMLExporter

    return HTMLExporter().from_notebook_node(nb)[0]


def export_html(executed: Path) -> Path:
    """Executed notebook -> standalone HTML next to it (nbconvert)."""
    import nbformat

    out = executed.with_suffix(".html")
    write_text(out, _html(nbformat.read(executed, as_version=4)))
    return out


def warm_html_export() -> float:
    """Export an empty notebook to memory; returns the seconds taken. The first export of a
    process loads nbconvert, its templates and highlighters (several times a later export); the runner
    pays that while the first kernel starts (its imports use one core), not after notebook 01, when
    notebook 02 runs on both cores."""
    import nbformat

    t0 = time.time()
    _html(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]))
    return time.time() - t0


def write_index(run_dir: Path, status: dict) -> Path:
    """``index.html`` of the run (:func:`analysis.report.page.write_index`; imported here lazily:
    the page reads the figure captions of :mod:`analysis.report.plots`, which imports matplotlib)."""
    from analysis.report.page import write_index as write_page

    return write_page(run_dir, status)


@dataclass
class _Job:
    """One notebook running in a child process; its control files live in ``control``."""

    book: Path
    control: Path
    t0: float = 0.0
    proc: subprocess.Popen | None = None
    alongside: bool = False  # the next notebook was started next to this one (after its hand-off)

    def _file(self, kind: str) -> Path:
        return self.control / f"{self.book.stem}.{kind}"

    @property
    def handoff_file(self) -> Path:  # the kernel creates it: the next notebook may start
        return self._file("handoff")

    @property
    def ended_file(self) -> Path:  # created when this notebook has ended (the next one's claim_cpu waits)
        return self._file("ended")

    @property
    def ready_file(self) -> Path:  # the kernel creates it: what the next notebook reads is cached
        return self._file("ready")

    @property
    def error_file(self) -> Path:  # the child writes a failed notebook's error here
        return self._file("error")


POLL_SECONDS = 0.25


def _launch(
    book: Path, run_dir: Path, params: dict, progress: bool, control: Path, previous: _Job | None
) -> _Job:
    """Start ``book`` in a child process (see :func:`_execute_child`); ``previous``: the notebook
    still running next to it (None: its cpu_share.claim_cpu returns at once)."""
    job = _Job(book, control, time.time())
    previous_ended = previous.ended_file if previous is not None else job._file("start")
    if previous is None:
        write_text(previous_ended, "")
    env = {
        **os.environ,
        NOTEBOOK_ENV: book.stem,  # time_stages names its file after it
        cpu_share.HANDOFF_ENV: str(job.handoff_file),
        cpu_share.PREVIOUS_ENV: str(previous_ended),
        cpu_share.READY_ENV: str(job.ready_file),
        cpu_share.PREVIOUS_READY_ENV: str(previous.ready_file if previous is not None else previous_ended),
    }
    spec = {
        "book": str(book),
        "out": str(run_dir / book.name),
        "params": params,
        "cwd": str(run_dir),
        "progress": progress,
        "error_file": str(job.error_file),
    }
    code = "import sys; from analysis.report.runner import _execute_child; _execute_child(sys.argv[1])"
    job.proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(spec)], env=env)
    return job


def _execute_child(spec_json: str) -> None:
    """Child process: execute one notebook with papermill; on failure write the error and exit 1
    (papermill keeps the partly executed notebook with the error)."""
    # jsonschema (imported by nbformat) loads its optional rfc3987_syntax format checker when it is
    # installed (JupyterLab's dependencies bring it), which builds a grammar at import, seconds per
    # notebook. Notebook validation never checks string formats, so the child goes without it.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import papermill as pm

    spec = json.loads(spec_json)
    try:
        pm.execute_notebook(
            spec["book"],
            spec["out"],
            parameters=spec["params"],
            cwd=spec["cwd"],
            kernel_name="python3",
            progress_bar=spec["progress"],
            log_output=False,
        )
    except Exception as exc:
        write_text(Path(spec["error_file"]), str(exc).strip() or type(exc).__name__)
        raise SystemExit(1) from None


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
    from analysis.models.loading import cpu_bf16_supported, resolve_dtype

    return {
        "setting": cfg.dtype,
        "used": resolve_dtype(cfg.dtype, cfg.device),
        "device": cfg.device,
        "cpu_native_bf16": cpu_bf16_supported(),
    }


def _finish(job: _Job, run_dir: Path, status: dict, status_path: Path, html_export: bool) -> str | None:
    """Record a finished notebook (status, seconds, sections, HTML); return the error message of
    a failed one (None when it succeeded)."""
    book = job.book
    entry = status["notebooks"][book.name]
    seconds = round(time.time() - job.t0, 1)
    if job.proc.returncode != 0:
        err = job.error_file.read_text() if job.error_file.exists() else f"exit status {job.proc.returncode}"
        entry.update(status="failed", seconds=seconds, error=err.strip()[-2000:])
        _record_stages(run_dir, book, entry)
        write_json(status_path, status)
        if html_export and (run_dir / book.name).exists():
            export_html(run_dir / book.name)
        write_index(run_dir, status)
        return f"notebook {book.name} failed (outputs so far kept in {run_dir}):\n{err}"
    entry.update(status="ok", seconds=seconds)
    _record_stages(run_dir, book, entry)
    if html_export:
        t1 = time.time()
        export_html(run_dir / book.name)
        entry["html_seconds"] = round(time.time() - t1, 1)
    write_json(status_path, status)
    write_index(run_dir, status)
    print(f"[report] {book.stem}: ok in {entry['seconds']} s", flush=True)
    return None


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
    """Execute the notebooks in order (a notebook that hands off runs alongside the next: see the
    module docstring); return the run folder. Raises RuntimeError on a failed notebook."""
    from analysis.config.parse import absolute_data_paths, check_runnable, load_config
    from analysis.studies.datasets import check_datasets

    overrides = absolute_data_paths(overrides)  # the notebooks run in the run folder
    cfg = load_config(preset, overrides, path=config_path)  # validate before any work
    check_runnable(cfg)
    check_datasets(cfg)  # the study-1 names, against the studies' registry
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
    todo = []
    for book in books:
        entry = status["notebooks"][book.name]
        if resume and entry.get("status") == "ok" and (run_dir / book.name).exists():
            print(f"[report] {book.stem}: done in an earlier attempt, skipped", flush=True)
        else:
            todo.append(book)
    running: list[_Job] = []
    failed: list[str] = []
    control = Path(tempfile.mkdtemp(prefix="analysis-report-"))
    warmed = False  # warm_html_export() done
    try:
        while running or (todo and not failed):
            last = running[-1] if running else None
            if (
                todo
                and not failed
                and (
                    last is None or (len(running) == 1 and not last.alongside and last.handoff_file.exists())
                )
            ):
                book = todo.pop(0)
                if last is not None:
                    last.alongside = True
                    print(
                        f"[report] {last.book.stem} handed off: {book.stem} starts alongside it "
                        "(one thread each: analysis.report.schedule)",
                        flush=True,
                    )
                print(f"[report] running {book.stem} ...", flush=True)
                entry = status["notebooks"][book.name]
                entry.clear()
                entry.update(status="running")
                (run_dir / TIMINGS_DIR / f"{book.stem}.json").unlink(missing_ok=True)  # an earlier attempt's
                write_json(status_path, status)
                write_index(run_dir, status)
                running.append(_launch(book, run_dir, params, progress, control, last))
                if html_export and not warmed:
                    warmed = True
                    warm_html_export()
                continue
            done = [j for j in running if j.proc.poll() is not None]
            if not done:
                time.sleep(POLL_SECONDS)
                continue
            for job in done:
                running.remove(job)
                write_text(job.ended_file, "")  # the next notebook's claim_cpu may go on
                error = _finish(job, run_dir, status, status_path, html_export)
                if error:
                    failed.append(error)
    finally:
        for job in running:  # interrupted: stop the children too (SIGINT: papermill shuts its kernel down)
            job.proc.send_signal(signal.SIGINT)
            try:
                job.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                job.proc.kill()
                job.proc.wait()
        shutil.rmtree(control, ignore_errors=True)
    if failed:
        raise RuntimeError(failed[0])
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
