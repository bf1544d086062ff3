"""``python -m analysis evaluate``: ROUGE table of a generations file.

Examples::

    python -m analysis evaluate --generations runs/gen.jsonl
    python -m analysis evaluate --generations runs/gen.jsonl --csv table.csv --no-stem
    python -m analysis evaluate --generations runs/gen.jsonl --compare icl base

Prints one row per method setting (method, params, ROUGE-1, CI, ROUGE-L, CI, users) and, with
``--compare A B``, the paired comparison A - B over users for ROUGE-1 and ROUGE-L. A and B are
method names, or ``'NAME {"k": 4}'`` when a method has several settings.
"""

from __future__ import annotations

import argparse


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="ROUGE-1 / ROUGE-L per method of a generations JSONL, with bootstrap CIs over users",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--generations", required=True, metavar="FILE.jsonl", help="rows written by the generation runner"
    )
    p.add_argument("--csv", default=None, metavar="OUT.csv", help="also write the table as CSV (atomically)")
    p.add_argument("--no-stem", action="store_true", help="ROUGE without Porter stemming (LaMP's setting)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples over users (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument(
        "--compare", nargs=2, metavar=("A", "B"), default=None, help="paired comparison A - B over users"
    )
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from analysis.evaluation.generations import (
        compare_methods,
        format_table,
        load_generations,
        method_table,
        score_generations,
    )
    from analysis.io import atomic_open

    rows = load_generations(args.generations)
    scored = score_generations(rows, use_stemmer=not args.no_stem)
    table = method_table(scored, use_stemmer=not args.no_stem, n_boot=args.n_boot, seed=args.seed)
    print(format_table(table))
    if args.compare:
        a, b = args.compare
        for metric in ("rouge1", "rougeL"):
            c = compare_methods(scored, a, b, metric=metric, n_boot=args.n_boot, seed=args.seed)
            print(
                f"{metric}: {a} - {b} = {c['diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}], "
                f"Wilcoxon p = {c['wilcoxon_p']:.3g}, users = {c['n_users']}"
            )
    if args.csv:
        with atomic_open(args.csv) as fh:
            table.to_csv(fh, index=False)
        print(f"wrote {args.csv}")
    return 0
