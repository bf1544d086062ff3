"""Command line: ``python -m analysis <command>`` (or the ``analysis`` console script).

Each command group lives in its own module of :mod:`analysis.cli` with ``add_commands(subparsers)``;
this file only assembles them and turns user mistakes (:class:`analysis.errors.UserError`:
``ConfigError``, ``DataError``, ``ModelError``; and a missing file) into one ``error: ...`` line and
exit status 2, without a traceback (``-v`` shows it). Any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from analysis.errors import UserError

# Command groups, in help order. Each module defines add_commands(subparsers).
COMMAND_MODULES = [
    "analysis.cli.info",
    "analysis.cli.report",
    "analysis.cli.data",
    "analysis.cli.rm",
    "analysis.cli.decode",
    "analysis.cli.eval",
    "analysis.cli.sweep",
]


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """--preset / --config / --set, shared by every command that builds a StudyConfig."""
    p.add_argument(
        "--preset",
        default="embedded",
        help="preset to start from: embedded (default: real authors + synthetic users, CPU), embedded_synthetic (quick) or paper (GPU)",
    )
    p.add_argument("--config", default=None, help="YAML or JSON file overriding preset keys")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key (YAML value), e.g. --set seeds=[0,1] --set device=cuda; repeatable. "
        "A value with spaces may be left unquoted (--set data_paths={mine: prefs.jsonl}, as make's ARGS "
        "passes it): the words up to the next option are one value",
    )


def config_from_args(args):
    from analysis.config.parse import load_config, parse_set

    return load_config(args.preset, parse_set(args.overrides), path=args.config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="analysis",
        description="Personalized alignment analysis: RM accuracy vs policy accuracy, Pref-LaMP, ICL vs RGD.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, KeyboardInterrupt) as exc:
        if args.verbose:
            raise
        msg = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        print(f"error: {msg}", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 2


if __name__ == "__main__":
    sys.exit(main())
