"""CLI commands ``generate`` (base / ARGS / best-of-n generations as JSONL) and ``policy-acc``.

    python -m analysis generate --method args --rm RM_DIR --w 1.0 --k 10 --input prompts.jsonl --out gens.jsonl
    python -m analysis policy-acc --rm RM_DIR --pairs prefs.jsonl --split test --ws 0,1,2
    python -m analysis policy-acc --reward-model my_rm_checkpoint --pairs prefs.jsonl --ws 0,1,2
    python -m analysis generate --method best_of_n --reward-model my_rewards.py:score --input prompts.jsonl --out gens.jsonl

``--reward-model`` is an external reward model instead of a trained ``--rm`` folder
(:func:`analysis.rewards.external.load_reward_function`): a Hugging Face sequence-classification
checkpoint, a folder of per-user checkpoints (one sub-folder per user id, ``default/`` for the
rest), or a Python ``module:function`` / ``file.py:function`` called as
``fn(user_id, prompt, texts) -> rewards``. ``--reward-template`` is the text a checkpoint scores.

``--input`` is JSON lines with ``user_id`` and ``prompt`` (``input`` / ``test_input`` are accepted as
the prompt), optionally ``reference`` (passed through, for ``evaluate``) and ``test_id``. Output:
the generation runner's rows (:data:`analysis.generation.runner.ROW_FIELDS`: user_id, test_id, prompt as
rendered, reference, system, method, params, model, text, reward), resumable: a rerun skips
finished rows. Then ``python -m analysis evaluate --generations OUT`` scores them.
Flags and their help come from the config dataclasses beside each algorithm.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from analysis.cli.flags import add_dataclass_flags, config_from_flags, floats
from analysis.errors import ConfigError

log = logging.getLogger(__name__)
METHODS = ("args", "base", "best_of_n")


def _reward_model_args(p: argparse.ArgumentParser) -> None:
    from analysis.rewards.external import DEFAULT_TEMPLATE

    p.add_argument(
        "--reward-model",
        default=None,
        metavar="PATH",
        help="external reward model instead of --rm: a sequence-classification checkpoint, a folder of "
        "per-user checkpoints, or module:function / file.py:function (fn(user_id, prompt, texts) -> rewards)",
    )
    p.add_argument(
        "--reward-template",
        default=DEFAULT_TEMPLATE,
        help="text a --reward-model checkpoint scores; fields {user_id}, {prompt}, {response} "
        f"(default {DEFAULT_TEMPLATE!r})",
    )


def _rm_given(args, what: str) -> str | None:
    """The RM's id for cache keys and outputs (``--rm`` or ``--reward-model``; not both)."""
    if args.rm and args.reward_model:
        raise ConfigError(f"{what}: give --rm (a trained RM folder) or --reward-model, not both")
    if args.reward_model:
        return f"external:{args.reward_model}"
    return args.rm


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rm", default=None, help="reward-model folder (from `train`); required except --method base"
    )
    _reward_model_args(p)
    p.add_argument(
        "--model",
        default=None,
        help="policy model (embedded name, folder or hub id); default: the RM's backbone, "
        "else smollm2-135m-instruct",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _load(args):
    from analysis.models.loading import load_model
    from analysis.rewards import load_reward_model

    if getattr(args, "reward_model", None):
        from analysis.rewards.external import check_template, load_reward_function

        check_template(args.reward_template)
        rm = load_reward_function(args.reward_model, template=args.reward_template, device=args.device)
    else:
        rm = load_reward_model(args.rm) if args.rm else None
    name = args.model or (
        rm.backbone.model_id
        if rm is not None and rm.backbone is not None and rm.backbone.kind == "shared"
        else "smollm2-135m-instruct"
    )
    model, tok = load_model(name, device=args.device, threads=args.threads)
    if rm is not None and getattr(rm, "input_kind", "") == "features" and rm.backbone is not None:
        rm.to(args.device)
        if rm.backbone.kind == "separate":
            from analysis.features.passes import TextFeaturizer

            enc, enc_tok = load_model(rm.backbone.model_id, device=args.device)
            rm.attach_featurizer(TextFeaturizer(enc, enc_tok, rm.backbone))
    return model, tok, rm


def read_prompts(path: str) -> list:
    """:class:`analysis.generation.methods.PromptTask` per line of a JSONL file of ``{user_id, prompt}``
    records (``input`` / ``test_input`` accepted as the prompt; optional ``reference``, ``test_id``)."""
    from analysis.data.readers import get_field, iter_jsonl
    from analysis.data.records import DataError
    from analysis.generation.methods import PromptTask

    tasks = []
    for line, rec in iter_jsonl(path):
        user = str(get_field(rec, "user_id", path=path, line=line, kind=(str, int)))
        key = next((k for k in ("prompt", "input", "test_input") if k in rec), "prompt")
        prompt = get_field(rec, key, path=path, line=line)
        ref = get_field(rec, "reference", path=path, line=line, default=None, allow_empty=True)
        test_id = get_field(rec, "test_id", path=path, line=line, kind=(str, int), default=None)
        tasks.append(PromptTask(user, prompt, ref, None if test_id is None else str(test_id)))
    if not tasks:
        raise DataError("no prompts in file", path=str(path))
    return tasks


def cmd_generate(args) -> int:
    """Generate through the one runner (:func:`analysis.generation.runner.run_generations`); the output
    file is its resumable JSONL (schema :data:`analysis.generation.runner.ROW_FIELDS`)."""
    from analysis.decoding.args import ArgsConfig
    from analysis.decoding.best_of_n import BestOfNConfig
    from analysis.generation.methods import MethodSpec, register_rgd_method
    from analysis.generation.runner import run_generations

    tasks = read_prompts(args.input)
    if args.limit:
        tasks = tasks[: args.limit]
    rm_id = _rm_given(args, "generate")
    if args.method != "base" and not rm_id:
        raise ConfigError(
            f"--method {args.method} needs --rm PATH (a trained reward model) or --reward-model PATH"
        )
    ws = args.w if args.w is not None else [ArgsConfig.w]
    if args.method == "args":
        cfgs = [config_from_flags(args, ArgsConfig, w=w).validate() for w in ws]  # errors before loading
    elif args.method == "best_of_n":
        cfgs = [config_from_flags(args, BestOfNConfig).validate()]
    model, tok, rm = _load(args)
    batch = args.batch_size or 16
    mnt = args.max_new_tokens or ArgsConfig.max_new_tokens
    if args.method == "base":
        specs = [MethodSpec("base")]
    else:
        skip = ("batch_size", "max_new_tokens")
        settings = [{k: v for k, v in dataclasses.asdict(c).items() if k not in skip} for c in cfgs]
        register_rgd_method(args.method, rm, rm_id=rm_id, decoder=args.method, replace=True)
        specs = [MethodSpec(args.method, p) for p in settings]
        if args.method == "args":
            batch = args.batch_size or ArgsConfig.batch_size
    rows = run_generations(
        model, tok, tasks, specs, args.out, task=None, batch_size=batch, max_new_tokens=mnt, progress=True
    )
    print(f"wrote {len(rows)} generations to {args.out}")
    return 0


def cmd_policy_acc(args) -> int:
    from analysis.data.preferences import read_preferences
    from analysis.evaluation.policy_accuracy import PolicyAccuracyConfig, policy_accuracy, prepare_pa_data
    from analysis.io import write_json

    rm_id = _rm_given(args, "policy-acc")
    if not rm_id:
        raise ConfigError("policy-acc needs --rm PATH (a trained reward model) or --reward-model PATH")
    pairs = [p for p in read_preferences(args.pairs) if args.split in ("all", p.split)]
    if not pairs:
        raise ConfigError(f"no pairs with split {args.split!r} in {args.pairs}")
    if args.limit:
        pairs = pairs[: args.limit]
    cfg = config_from_flags(args, PolicyAccuracyConfig).validate()
    model, tok, rm = _load(args)
    layer = rm.backbone.layer if getattr(rm, "backbone", None) is not None else -1
    data = prepare_pa_data(
        model,
        tok,
        pairs,
        layer=layer,
        k=args.k,
        policy="policy" in cfg.variants,
        batch_size=args.batch_size,
        progress=True,
    )
    res = policy_accuracy(rm, data, cfg, tok=tok)
    ra = res.rm_accuracy
    print(
        f"{len(pairs)} pairs, {ra.get('n_users', 0)} users, split={args.split}, k={args.k}, T={cfg.temperature}"
    )
    if ra:
        print(f"RM accuracy: {ra['mean']:.3f} [{ra['ci_low']:.3f}, {ra['ci_high']:.3f}]")
    table = res.summary.assign(norm=res.summary.length_norm.map({False: "sum", True: "per-token"}))
    for (variant, norm), g in table.groupby(["variant", "norm"], sort=False):
        cells = "  ".join(
            f"w={r.w:g}: {r.mean:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" for r in g.itertuples()
        )
        print(f"policy accuracy ({variant}, {norm}): {cells}")
    if args.out:
        out = Path(args.out)
        write_json(
            out / "policy_accuracy.json",
            {
                "rm": str(rm_id),
                "pairs": str(args.pairs),
                "split": args.split,
                "k": args.k,
                "config": dataclasses.asdict(cfg),
                "rm_accuracy": ra,
                "summary": res.summary.to_dict(orient="records"),
            },
        )
        from analysis.io import write_text

        write_text(out / "policy_accuracy_per_user.csv", res.per_user.to_csv(index=False))
        write_text(out / "policy_accuracy_per_pair.csv", res.per_pair.to_csv(index=False))
        print(f"wrote results to {out}/")
    return 0


def add_commands(sub) -> None:
    from analysis.decoding.args import ArgsConfig
    from analysis.decoding.best_of_n import BestOfNConfig
    from analysis.evaluation.policy_accuracy import PolicyAccuracyConfig

    p = sub.add_parser(
        "generate",
        help="generate with base greedy, ARGS or best-of-n; write JSONL",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--method", choices=METHODS, default="args", help="decoding method (default args)")
    p.add_argument("--input", required=True, help="JSONL of {user_id, prompt[, reference, test_id]}")
    p.add_argument("--out", required=True, help="output JSONL")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    _common(p)
    p.add_argument(
        "--w", type=floats, default=None, help="ARGS weight(s) w >= 0, comma-separated (default 1.0)"
    )
    add_dataclass_flags(p, ArgsConfig, skip=("w",), title="ARGS / shared settings", unset=True)
    add_dataclass_flags(
        p,
        BestOfNConfig,
        skip=("max_new_tokens", "temperature", "seed", "batch_size"),
        title="best-of-n settings",
        unset=True,
    )
    p.set_defaults(func=cmd_generate)

    q = sub.add_parser("policy-acc", help="RM accuracy and policy accuracy (score / policy variants) per w")
    q.add_argument("--rm", default=None, help="reward-model folder")
    _reward_model_args(q)
    q.add_argument(
        "--pairs", required=True, help="preference JSONL {user_id, prompt, chosen, rejected[, split]}"
    )
    q.add_argument("--split", default="test", help="train / val / test / all (default test)")
    add_dataclass_flags(q, PolicyAccuracyConfig, title="policy-accuracy settings")
    q.add_argument("--k", type=int, default=10, help="top-k candidates of the policy variant")
    q.add_argument("--batch-size", type=int, default=16, help="responses per feature batch")
    q.add_argument("--limit", type=int, default=None, help="only the first N pairs")
    q.add_argument("--out", default=None, help="folder for policy_accuracy.json and per-user / per-pair CSVs")
    q.add_argument("--model", default=None, help="policy model; default: the RM's backbone")
    q.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    q.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    q.set_defaults(func=cmd_policy_acc)
