"""Time the full report, stage by stage: what `make report` costs and where the time goes.

    python benchmarks/bench_report.py                       # embedded preset, fresh cache, all notebooks
    python benchmarks/bench_report.py --only 02 --set n_users=4 --set methods='[shared_bt,lore]'
    python benchmarks/bench_report.py --cache reports/cache # warm: reuse an earlier run's cache

Runs :func:`analysis.report.runner.run_report` into a temporary folder (kept with ``--keep``) with an
empty study cache unless ``--cache`` is given, so the default measures a cold report as a fresh
clone runs it (model conversion caches under ~/.cache are reused). Prints, per notebook, the
seconds of each section (papermill's cell timing) and of each study phase (self time, from the
notebooks' ``time_stages``), one ``stage`` line per section, and ``report_seconds=<x>`` last: the
wall time of the whole report including kernel starts and the HTML export.

Unlike the other benchmarks this one reports absolute seconds (the goal is a budget: <= 10 minutes
for `make report` on the 2-core dev machine, of which about 1.2 are the virtual environment).
The notebooks use the config's thread count (``threads``), as `make report` does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> float:
    from analysis.config.parse import parse_set
    from analysis.report.runner import run_report
    from analysis.report.timings import format_timings

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="embedded")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--config", default=None, help="YAML/JSON config file")
    ap.add_argument("--only", default=None, help="comma-separated notebook prefixes, e.g. 01,02")
    ap.add_argument("--cache", default=None, help="study cache to use (default: a fresh, empty one)")
    ap.add_argument("--output", default=None, help="output root (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary output folder")
    ap.add_argument("--no-html", action="store_true", help="skip the nbconvert HTML export")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)  # this process only orchestrates; the kernels use cfg.threads
    overrides = parse_set(args.overrides)
    if args.cache:
        overrides["cache_dir"] = str(Path(args.cache).resolve())
    root = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        t0 = time.perf_counter()
        run = run_report(
            preset=args.preset,
            overrides=overrides,
            config_path=args.config,
            only=args.only.split(",") if args.only else None,
            output_root=root,
            run_id="bench",
            html_export=not args.no_html,
            progress=False,
        )
        seconds = time.perf_counter() - t0
        status = json.loads((run / "status.json").read_text())
        print(f"\nbench_report: preset {args.preset}, overrides {overrides or {}}, output {run}")
        print(format_timings(status))
        for name, entry in status["notebooks"].items():
            stem = Path(name).stem
            for label, s in (entry.get("stages") or {}).items():
                print(f"stage {stem} | {label} | seconds={s:.2f}")
            for label, s in (entry.get("phases") or {}).items():
                print(f"phase {stem} | {label} | seconds={s:.2f}")
            print(f"notebook {stem} | seconds={entry.get('seconds')}")
    finally:
        if not args.output and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"report_seconds={seconds:.1f}")
    return seconds


if __name__ == "__main__":
    main()
