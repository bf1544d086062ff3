"""``python -m analysis data summary``: print a dataset card; optionally write Pref-LaMP pairs.

Examples::

    python -m analysis data summary --source news_category --path ../shared/data/news_category_subset.jsonl
    python -m analysis data summary --source synthetic --out pairs.jsonl --negatives other_user
    python -m analysis data summary --source lamp --path LaMP_4/dev --out pairs.jsonl \\
        --negatives base --model smollm2-135m-instruct --cache base_gens.jsonl
    python -m analysis data summary --source preferences --path pairs.jsonl   # or .csv, .parquet, hub:owner/name

All mistakes in the input raise :class:`~analysis.data.records.DataError` (file, line/record,
field), which ``analysis.cli.main`` prints as one ``error:`` line with exit status 2; outputs are
written atomically, so a failed run leaves no partial file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from analysis.cli.flags import add_dataclass_flags, config_from_flags
from analysis.data.adapters import ADAPTERS
from analysis.data.loaders import TASK_SOURCES
from analysis.data.preflamp import NEGATIVES
from analysis.data.records import DataError, DatasetCard

SOURCES = (*TASK_SOURCES, "preferences", *ADAPTERS)


@dataclass
class SummaryOptions:
    """Options of ``data summary``; each field's ``help`` becomes its ``--flag`` help (defined once)."""

    source: str = field(metadata={"help": f"data source: {', '.join(SOURCES)}", "choices": SOURCES})
    path: str | None = field(
        default=None, metadata={"help": "input file or folder (not needed for synthetic)"}
    )
    out: str | None = field(
        default=None,
        metadata={
            "help": "write Pref-LaMP pairs (task sources) or the normalised pairs (preference sources) as JSONL"
        },
    )
    negatives: str = field(
        default="other_user",
        metadata={
            "help": "Pref-LaMP negatives: other_user (no model needed), or base (greedy), base_sample "
            "(one temperature-1 sample) or icl_other (greedy with another author's examples), which need --model",
            "choices": NEGATIVES,
        },
    )
    model: str | None = field(
        default=None,
        metadata={"help": "base policy of the generated negatives (name, folder or hub id)"},
    )
    cache: str | None = field(
        default=None, metadata={"help": "JSONL cache of base generations (keyed by model + prompt)"}
    )
    task: str | None = field(
        default=None, metadata={"help": "task name (default: the loader's task, e.g. news_headline)"}
    )
    min_profile: int = field(default=4, metadata={"help": "news_category: minimum profile items per author"})
    n_test: int = field(
        default=1,
        metadata={"help": "news_category: newest articles held out per author (generation targets)"},
    )
    multi_author: str = field(
        default="drop",
        metadata={
            "help": "news_category: multi-author records: drop, first or each",
            "choices": ("drop", "first", "each"),
        },
    )
    seed: int = field(default=0, metadata={"help": "seed for synthetic users and splits"})
    json: bool = field(default=False, metadata={"help": "print the card(s) as JSON"})


def add_commands(sub) -> None:
    p = sub.add_parser("data", help="inspect datasets and build Pref-LaMP preference pairs")
    dsub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    s = dsub.add_parser(
        "summary", help="print a dataset card (users, items or pairs per user); --out writes pairs"
    )
    add_dataclass_flags(s, SummaryOptions)
    s.set_defaults(func=cmd_summary)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cmd_summary(args) -> int:
    opts = config_from_flags(args, SummaryOptions)
    cards, pairs = run_summary(opts)
    if opts.out and pairs is not None:
        from analysis.data.preferences import write_preferences

        n = write_preferences(opts.out, pairs)
        cards[-1].notes += f"; wrote {n} pairs to {opts.out}"
    if opts.json:
        print(json.dumps([c.to_dict() for c in cards], indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(format_card(c) for c in cards))
    return 0


def run_summary(opts: SummaryOptions):
    """``([cards], pairs or None)`` for the options; nothing is written here."""
    if opts.source in TASK_SOURCES:
        from analysis.data.loaders import load_tasks

        kw: dict = {}
        if opts.source == "synthetic":
            kw["seed"] = opts.seed
        elif opts.source == "news_category":
            kw.update(min_profile=opts.min_profile, n_test=opts.n_test, multi_author=opts.multi_author)
        elif opts.task:
            kw["task"] = opts.task
        if opts.source != "synthetic" and not opts.path:
            raise DataError(f"--path is required for --source {opts.source}")
        tasks, card = load_tasks(opts.source, opts.path, **kw)
        if not opts.out:
            return [card], None
        from analysis.data.preflamp import build_pref_lamp

        task = opts.task or card.task
        fns, model_id = {}, opts.model or ""
        if opts.negatives != "other_user":
            fns, model_id = _negatives_fns(opts.model, task, opts.negatives, opts.seed)
        pairs, pcard = build_pref_lamp(
            tasks,
            task=task,
            negatives=opts.negatives,
            cache_path=opts.cache,
            model_id=model_id,
            seed=opts.seed,
            source_card=card,
            **fns,
        )
        return [card, pcard], pairs
    if not opts.path:
        raise DataError(f"--path is required for --source {opts.source}")
    if opts.source == "preferences":
        from analysis.data.preferences import load_preferences

        pairs, card = load_preferences(opts.path, name=f"preferences:{opts.path}", seed=opts.seed)
        return [card], pairs
    from analysis.data.adapters import load_preference_source

    pairs, card = load_preference_source(opts.source, opts.path, seed=opts.seed)
    return [card], pairs


def _negatives_fns(model_name: str | None, task: str, negatives: str, seed: int) -> tuple[dict, str]:
    """The generating functions :func:`~analysis.data.preflamp.build_pref_lamp` needs for a generated
    kind of negatives (those of the studies, :mod:`analysis.studies.datasets`), and the model id."""
    if not model_name:
        raise DataError(f"--negatives {negatives} needs --model (a base policy to generate the negatives)")
    from analysis.config.schema import StudyConfig
    from analysis.data.tasks import get_task
    from analysis.models.loading import load_model, model_id
    from analysis.studies.datasets import base_generate_fn, base_sample_fn, icl_other_prompt_fn

    model, tok = load_model(model_name)
    cfg = StudyConfig(task=task, max_new_tokens=get_task(task).max_new_tokens, seed=seed)
    fns = {"generate_fn": base_generate_fn(cfg, model, tok)}
    if negatives == "base_sample":
        fns = {"sample_fn": base_sample_fn(cfg, model, tok)}
    elif negatives == "icl_other":
        fns["icl_prompt_fn"] = icl_other_prompt_fn(cfg, tok)
    return fns, model_id(model)


def format_card(card: DatasetCard) -> str:
    """Human-readable card: counts, per-user min/median/max, negatives, notes."""
    from analysis.data.preferences import per_user_stats

    st = per_user_stats(card.per_user)
    unit = "pairs" if card.n_pairs else "profile items"
    lines = [
        f"dataset:   {card.name}" + ("   [SYNTHETIC]" if card.synthetic else ""),
        f"source:    {card.source}   task: {card.task}",
        f"users:     {card.n_users}",
        f"items:     {card.n_items}" + (f"   pairs: {card.n_pairs}" if card.n_pairs else ""),
        f"{unit} per user: min {st['min']}  median {st['median']:g}  max {st['max']}",
    ]
    if card.negatives:
        lines.append(f"negatives: {card.negatives}")
    if card.dropped:
        lines.append("dropped:   " + ", ".join(f"{n} ({why})" for why, n in card.dropped.items()))
    if card.notes:
        lines.append(f"notes:     {card.notes}")
    return "\n".join(lines)
