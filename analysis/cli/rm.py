"""``python -m analysis rm train|eval``: train reward models and report RM accuracy.

``--dataset`` is a study-1 dataset name (``synthetic_style_swap``, ``synthetic_preflamp``,
``synthetic_attributes``, ...; built from the preset config exactly as the studies build them) or
a preference JSONL file (``user_id, prompt, chosen, rejected[, pair_id, split]``). Features come
from ``--model`` (default: the preset's policy model) at ``--layer`` and are cached on disk.

Examples::

    python -m analysis rm train --dataset synthetic_style_swap --method lore pal --seed 0 1
    python -m analysis rm eval --dataset synthetic_style_swap --method shared_bt lore oracle --seed 0
    python -m analysis rm eval --dataset prefs.jsonl --rm runs/rms/lore-seed0 --per-user

Method settings come from the method's config dataclass: ``--param rank=4 --param lr=0.01``;
with several methods each gets the settings it has (a key no method has is an error with
suggestions; ``python -m analysis rm methods`` lists them).
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from pathlib import Path

import yaml

from analysis.data.records import DataError
from analysis.errors import lookup

TABLE_COLUMNS = ["method", "seed", "rm_accuracy", "ci_low", "ci_high", "train_pairs", "n_users", "n_pairs"]


def _split_param(item: str) -> tuple[str, object]:
    from analysis.errors import ConfigError

    if "=" not in item:
        raise ConfigError(f"--param expects key=value, got {item!r}")
    key, raw = (s.strip() for s in item.split("=", 1))
    if key in ("seed", "steps"):
        raise ConfigError(f"use --{key} instead of --param {key}=...")
    return key, yaml.safe_load(raw)


def _config_keys(method: str) -> list[str]:
    from analysis.rewards import method_info

    return [f.name for f in fields(method_info(method).cls.config_cls)]


def check_params(methods: list[str], items: list[str]) -> None:
    """Every --param key must be a setting of at least one of ``methods`` (checked before any
    model is loaded); a typo gets close matches."""

    valid = sorted({k for m in methods for k in _config_keys(m)})
    for item in items or []:
        lookup(valid, _split_param(item)[0], "setting", prefix=f"{', '.join(methods)}: ")


def _parse_params(method: str, items: list[str]) -> dict:
    """The --param settings that apply to ``method`` (others belong to the other methods given)."""
    keys = set(_config_keys(method))
    return {k: v for k, v in map(_split_param, items or []) if k in keys}


def _common_args(p: argparse.ArgumentParser) -> None:
    from analysis.cli import add_config_arguments

    add_config_arguments(p)
    p.add_argument("--dataset", required=True, help="study-1 dataset name or a preference JSONL file")
    p.add_argument("--model", default=None, help="feature backbone (default: the preset's policy_model)")
    p.add_argument(
        "--layer", type=int, default=None, help="hidden layer for features (default: preset feature_layer)"
    )
    p.add_argument(
        "--method", nargs="+", default=[], help="reward method(s): shared_bt per_user_bt lore pal vpl oracle"
    )
    p.add_argument("--seed", nargs="+", type=int, default=[0], help="seed(s) (default 0)")
    p.add_argument("--steps", type=int, default=None, help="training step budget (default: the method's)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method config setting (YAML value); repeatable",
    )
    p.add_argument("--csv", default=None, help="also write the table as CSV here")


def add_commands(sub) -> None:
    rm = sub.add_parser("rm", help="train and evaluate personalized reward models")
    rsub = rm.add_subparsers(dest="rm_command", metavar="RM_COMMAND")
    t = rsub.add_parser(
        "train",
        help="train RMs (train split, early stopping on val) and save them; their rewards are centred and "
        "scaled over the full training responses (reward_norm 'response'; the studies use every prefix)",
    )
    _common_args(t)
    t.add_argument("--out", default=None, help="folder for the RM folders (default: <cache>/rms/<dataset>)")
    t.set_defaults(func=cmd_train)
    e = rsub.add_parser(
        "eval", help="RM accuracy on a split with a two-level bootstrap CI (users, then pairs)"
    )
    _common_args(e)
    e.add_argument("--rm", nargs="+", default=[], help="saved RM folder(s) to evaluate (instead of --method)")
    e.add_argument(
        "--split", default="test", choices=["train", "val", "test"], help="split to evaluate (test)"
    )
    e.add_argument("--per-user", action="store_true", help="also print per-user accuracy and training pairs")
    e.set_defaults(func=cmd_eval)
    m = rsub.add_parser("methods", help="list reward methods and their settings")
    m.set_defaults(func=cmd_methods)
    rm.set_defaults(func=lambda a: (rm.print_help(), 2)[1])


def cmd_methods(args) -> int:
    from analysis.rewards import REGISTRY

    for name, info in REGISTRY.items():
        print(f"{name:12s} {info.summary}")
        for f in fields(info.cls.config_cls):
            print(f"    {f.name} = {f.default if f.default is not MISSING else f.default_factory()}")
    return 0


# --------------------------------------------------------------------------- data + features


def _load(args, need: tuple[str, ...] = ("train",)):
    """Config, dataset (pairs + oracle specs), features of every pair, cache.

    The splits in ``need`` must have pairs: checked on the pairs before any feature is computed
    (and, for a file, before the model is loaded)."""
    from analysis.cli import config_from_args
    from analysis.config.algorithms import model_kwargs
    from analysis.data.preferences import load_preferences
    from analysis.features.cache import pair_features
    from analysis.models.loading import load_model
    from analysis.studies.cache import StudyCache
    from analysis.studies.datasets import STUDY1_DATASETS, Dataset, study1_dataset

    cfg = config_from_args(args)
    cache = StudyCache(cfg.cache_dir or None)
    ds = None
    if Path(args.dataset).is_file():
        pairs, _ = load_preferences(args.dataset, name=Path(args.dataset).stem, seed=cfg.seed)
        ds = Dataset(Path(args.dataset).stem, pairs)
        _check_split_pairs(ds, need, args.dataset)
    elif args.dataset not in STUDY1_DATASETS:
        lookup(STUDY1_DATASETS, args.dataset, "dataset", DataError, prefix="--dataset is not a file: ")
    model, tok = load_model(args.model or cfg.policy_model, **model_kwargs(cfg))  # cfg.threads threads
    layer = cfg.feature_layer if args.layer is None else args.layer
    if ds is None:
        ds = study1_dataset(cfg, args.dataset, model, tok, cache)
        _check_split_pairs(ds, need, None)
    feats = pair_features(
        model,
        tok,
        ds.pairs,
        layer=layer,
        cache_dir=cache.root / "features",
        batch_size=cfg.batch_size,
        progress=True,
    )
    return cfg, ds, feats, cache


def _check_split_pairs(ds, need: tuple[str, ...], path: str | None) -> None:
    have = {p.split for p in ds.pairs}
    for split in need:
        if split not in have:
            counts = ", ".join(f"{s}={sum(p.split == s for p in ds.pairs)}" for s in ("train", "val", "test"))
            raise DataError(f"dataset {ds.name!r} has no {split} pairs ({counts})", path=path)


def _make(method: str, seed: int, args, ds):
    from analysis.rewards import make_reward_model

    params = _parse_params(method, args.param)
    if method == "oracle":
        if not (ds.styles or ds.attribute_weights):
            raise DataError(f"the oracle needs synthetic users with planted styles; {ds.name!r} has none")
        params.update(styles=ds.styles, attribute_weights=ds.attribute_weights)
    if args.steps is not None:
        params["steps"] = args.steps
    return make_reward_model(method, seed=seed, **params)


def _fit(rm, feats):
    val = feats.subset("val")
    return rm.fit(feats.subset("train"), val if len(val) else None)


def _print_table(df, csv: str | None) -> None:
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if csv:
        from analysis.io import write_text

        write_text(csv, df.to_csv(index=False))


def _row(rm, seed, test, train_pairs: int) -> tuple[dict, object]:
    from analysis.rewards.evaluate import rm_accuracy, summarize_rm_accuracy

    df = rm_accuracy(rm, test)
    s = summarize_rm_accuracy(df)
    return {
        "method": rm.method,
        "seed": seed,
        "rm_accuracy": s["mean"],
        "ci_low": s["ci_low"],
        "ci_high": s["ci_high"],
        "train_pairs": train_pairs,
        "n_users": s["n_users"],
        "n_pairs": s["n"],
    }, df


def cmd_train(args) -> int:
    import pandas as pd

    from analysis.rewards import method_info

    if not args.method:
        raise DataError("give at least one --method")
    for m in args.method:
        method_info(m)  # a typo fails here, before any model is loaded
    check_params(args.method, args.param)
    cfg, ds, feats, cache = _load(args, ("train",))
    out_root = Path(args.out) if args.out else cache.root / "rms" / ds.name
    train, val = feats.subset("train"), feats.subset("val")
    rows = []
    for method in args.method:
        for seed in args.seed:
            rm = _fit(_make(method, seed, args, ds), feats)
            folder = rm.save(out_root / f"{method}-seed{seed}")
            row, _ = _row(rm, seed, val, len(train)) if len(val) else ({"method": method, "seed": seed}, None)
            row.update(steps_run=rm.fit_log_.get("steps_run", 0), folder=str(folder))
            rows.append(row)
    print(
        f"trained on {len(train)} pairs of {len(set(train.user_ids))} users; accuracy below is on val "
        f"({len(val)} pairs)"
    )
    _print_table(pd.DataFrame(rows).rename(columns={"rm_accuracy": "val_accuracy"}), args.csv)
    return 0


def cmd_eval(args) -> int:
    import pandas as pd

    from analysis.rewards import load_reward_model, method_info
    from analysis.rewards.evaluate import per_user_accuracy

    if not args.method and not args.rm:
        raise DataError("give --method (train on the fly) or --rm FOLDER (saved models)")
    for m in args.method:
        method_info(m)
    check_params(args.method, args.param)
    cfg, ds, feats, cache = _load(args, ("train", args.split) if args.method else (args.split,))
    train, test = feats.subset("train"), feats.subset(args.split)
    counts = train.pairs_per_user()
    models = []
    for folder in args.rm:
        rm = load_reward_model(folder)
        if (
            rm.backbone is not None
            and rm.input_kind == "features"
            and rm.backbone.model_id != feats.backbone.model_id
        ):
            raise DataError(
                f"RM in {folder} was trained on {rm.backbone.model_id!r} features, not "
                f"{feats.backbone.model_id!r}: pass --model {rm.backbone.model_id}"
            )
        models.append((rm, rm.config.seed))
    for method in args.method:
        for seed in args.seed:
            models.append((_fit(_make(method, seed, args, ds), feats), seed))
    rows, per_user = [], []
    for rm, seed in models:
        row, df = _row(rm, seed, test, len(train))
        rows.append(row)
        if args.per_user:
            pu = per_user_accuracy(df, counts)
            pu.insert(0, "seed", seed)
            pu.insert(0, "method", rm.method)
            per_user.append(pu)
    print(
        f"RM accuracy on {ds.name} [{args.split}], 95% two-level bootstrap CI (users, then pairs), ties count 0.5"
    )
    _print_table(pd.DataFrame(rows, columns=TABLE_COLUMNS), args.csv)
    if per_user:
        print("\nper user:")
        _print_table(pd.concat(per_user, ignore_index=True), None)
    return 0
