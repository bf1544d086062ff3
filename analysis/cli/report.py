"""``python -m analysis report``: run the study notebooks with papermill into ``reports/<run-id>/``.

The runner itself is :func:`analysis.report.runner.run_report`; this module only parses the command line.
"""

from __future__ import annotations

import sys

from analysis.cli.main import add_config_arguments
from analysis.report.runner import REPO, run_report


def cmd_report(args) -> int:
    from analysis.config.parse import parse_set

    overrides = parse_set(args.overrides)
    for item in args.param or []:  # -p key value, papermill style
        overrides.update(parse_set([f"{item[0]}={item[1]}"]))
    try:
        run_dir = run_report(
            preset=args.preset,
            overrides=overrides,
            config_path=args.config,
            only=args.only.split(",") if args.only else None,
            output_root=args.output,
            run_id=args.run_id,
            resume=args.resume,
            html_export=not args.no_html,
        )
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"[report] done: {run_dir} (open {run_dir / 'index.html'})")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("report", help="run the study notebooks with papermill into reports/<run-id>/")
    add_config_arguments(p)
    p.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="papermill-style parameter override (same as --set KEY=VALUE)",
    )
    p.add_argument("--only", default=None, help="comma-separated notebook prefixes to run, e.g. 01,04")
    p.add_argument("--output", default=str(REPO / "reports"), help="output root (default: reports/)")
    p.add_argument("--run-id", default=None, help="name of the run folder (default: timestamp-preset)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the latest (or --run-id) run, skipping notebooks that finished",
    )
    p.add_argument("--no-html", action="store_true", help="skip the nbconvert HTML export")
    p.set_defaults(func=cmd_report)
