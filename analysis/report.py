"""The full report: run every study notebook with papermill into ``reports/<run-id>/``.

Layout of one run (design section 7)::

    reports/<run-id>/
      01_rm_vs_policy_accuracy.ipynb   executed notebook (and .html via nbconvert)
      figures/*.png, *.pdf             written by the notebooks through analysis.plots
      tables/*.csv                     tidy tables behind every figure
      provenance.json                  config, package versions, seeds, git commit, timings
      status.json                      per-notebook status (lets --resume skip finished ones)
      index.html                       links to all of the above
    reports/latest -> <run-id>
    reports/cache/                     intermediate study results, reused by later runs

A failed notebook stops the run: its partly executed notebook is kept with the error, earlier
outputs stay, the error is printed, and the exit status is non-zero.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import sys
import time
from pathlib import Path

from analysis import provenance as prov
from analysis.errors import ConfigError
from analysis.io import write_json, write_text

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


def write_index(run_dir: Path, status: dict) -> None:
    """An index.html linking notebooks, their HTML, figures and tables."""
    rows = []
    for name, st in status["notebooks"].items():
        stem = Path(name).stem
        links = [f'<a href="{html.escape(name)}">ipynb</a>']
        if (run_dir / f"{stem}.html").exists():
            links.insert(0, f'<a href="{html.escape(stem)}.html">html</a>')
        rows.append(
            f"<tr><td>{html.escape(stem)}</td><td>{st['status']}</td><td>{st.get('seconds', '')}</td><td>{' · '.join(links)}</td></tr>"
        )
    figs = sorted((run_dir / "figures").glob("*.png")) if (run_dir / "figures").is_dir() else []
    tables = sorted((run_dir / "tables").glob("*.csv")) if (run_dir / "tables").is_dir() else []
    fig_html = "".join(
        f'<figure><a href="figures/{f.name}"><img src="figures/{f.name}" width="480"></a>'
        f'<figcaption>{f.stem} (<a href="figures/{f.stem}.pdf">pdf</a>)</figcaption></figure>'
        for f in figs
    )
    tab_html = "".join(f'<li><a href="tables/{t.name}">{t.name}</a></li>' for t in tables)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Report {html.escape(run_dir.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}} td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}
figure{{display:inline-block;margin:8px}}</style></head><body>
<h1>Personalized alignment analysis — run {html.escape(run_dir.name)}</h1>
<p>preset <b>{html.escape(status["preset"])}</b>, commit <code>{html.escape(status["git_commit"])}</code>,
started {html.escape(status["started"])}. Settings, versions and seeds: <a href="provenance.json">provenance.json</a>.</p>
<h2>Notebooks</h2><table><tr><th>notebook</th><th>status</th><th>seconds</th><th>files</th></tr>{"".join(rows)}</table>
<h2>Figures</h2>{fig_html or "<p>none</p>"}
<h2>Tables</h2><ul>{tab_html or "<li>none</li>"}</ul></body></html>"""
    write_text(run_dir / "index.html", page)


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
    for book in books:
        entry = status["notebooks"][book.name]
        if resume and entry.get("status") == "ok" and (run_dir / book.name).exists():
            print(f"[report] {book.stem}: done in an earlier attempt, skipped", flush=True)
            continue
        print(f"[report] running {book.stem} ...", flush=True)
        t0 = time.time()
        entry.update(status="running")
        write_json(status_path, status)
        try:
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
            write_json(status_path, status)
            if html_export and (run_dir / book.name).exists():
                export_html(run_dir / book.name)
            write_index(run_dir, status)
            raise RuntimeError(
                f"notebook {book.name} failed (outputs so far kept in {run_dir}):\n{exc}"
            ) from exc
        entry.update(status="ok", seconds=round(time.time() - t0, 1))
        if html_export:
            export_html(run_dir / book.name)
        write_json(status_path, status)
        print(f"[report] {book.stem}: ok in {entry['seconds']} s", flush=True)
    provenance["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    provenance["notebook_seconds"] = {k: v.get("seconds") for k, v in status["notebooks"].items()}
    write_json(run_dir / "provenance.json", provenance)
    write_index(run_dir, status)
    return run_dir
