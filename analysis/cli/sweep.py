"""``python -m analysis sweep``: run the studies' task graph on the local or the Ray engine.

    python -m analysis sweep --preset paper --dry-run                  # the graph and a GPU-hour estimate
    python -m analysis sweep --preset paper --set data_paths='{lamp: ~/LaMP_4}'             # one process
    python -m analysis sweep --preset paper --engine ray --set data_paths='{lamp: ~/LaMP_4}'  # all GPUs of this box
    python -m analysis sweep --preset paper --engine ray --address auto ...                 # a running Ray cluster

Then ``python -m analysis report`` with the same preset and settings reads every result from the
cache (``cache_dir``, default ``reports/cache``, shared by the cluster's nodes).
"""

from __future__ import annotations

import argparse
import json

from analysis.sweep.engines import ENGINES


def add_commands(sub) -> None:
    from analysis.cli.main import add_config_arguments

    p = sub.add_parser(
        "sweep",
        help="compute every study result into the cache as a task graph (local or Ray engine)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(p)
    p.add_argument("--engine", choices=ENGINES, default="local", help="local (default): one process; ray")
    p.add_argument("--address", default=None, help="Ray cluster address ('auto': the running cluster)")
    p.add_argument("--dry-run", action="store_true", help="print the task graph and an estimate; run nothing")
    p.add_argument(
        "--generation-w",
        type=float,
        nargs="*",
        default=None,
        help="extra ARGS weights generated on the policy model (notebook 02's generation_w; default: the config's inspector_w)",
    )
    p.add_argument("--max-retries", type=int, default=1, help="Ray: re-runs of a task whose worker died")
    p.add_argument(
        "--output-root", default=None, help="reports folder whose cache/ is used (default reports/)"
    )
    p.add_argument("--json", action="store_true", help="print the dry-run or the run summary as JSON")
    p.set_defaults(func=cmd_sweep)


def cache_dir_for(cfg, output_root: str | None = None) -> str:
    """The report's cache folder: ``cfg.cache_dir`` or ``<output root>/cache`` (as ``analysis report``)."""
    from pathlib import Path

    from analysis.provenance import REPO

    return cfg.cache_dir or str(Path(output_root or REPO / "reports") / "cache")


def plan(cfg, generation_w=None, *, need_data: bool = True):
    """The graph of ``cfg``: the Pref-LaMP users are read from the data (``need_data=False``: fall
    back to ``cfg.n_users`` when they cannot be read, as for a dry run without the data)."""
    from analysis.sweep.graph import build_graph
    from analysis.sweep.tasks import preflamp_users

    try:
        n_users, assumed = preflamp_users(cfg), False
    except (ValueError, FileNotFoundError):
        if need_data:
            raise
        n_users, assumed = cfg.n_users, True
    extra = None if generation_w is None else tuple(generation_w)
    return build_graph(cfg, n_users, generation_w=extra, users_assumed=assumed)


def dry_run(cfg, graph, cache_dir: str) -> dict:
    from analysis.sweep.estimate import estimate
    from analysis.sweep.tasks import measured_records, model_size_b

    sizes = {m: model_size_b(cfg, m) for m in dict.fromkeys(t.model for t in graph.tasks)}
    est = estimate(graph, cfg, sizes, measured_records(cache_dir))
    return {
        "preset": cfg.preset,
        "n_tasks": len(graph.tasks),
        "per_kind": graph.counts(),
        "per_model": graph.counts_by_model(),
        "n_users": graph.n_users,
        "users_assumed": graph.users_assumed,
        "shard_users": cfg.shard_users,
        "estimate": est,
        "cache_dir": cache_dir,
    }


def format_dry_run(d: dict) -> str:
    est = d["estimate"]
    users = f"{d['n_users']} Pref-LaMP users" + (
        " (n_users: the data was not read)" if d["users_assumed"] else ""
    )
    lines = [
        f"sweep graph of preset {d['preset']}: {d['n_tasks']} tasks; {users}, generation shards of "
        f"{d['shard_users'] or 'all'} users",
        "tasks per kind: " + ", ".join(f"{k} {v}" for k, v in d["per_kind"].items()),
        "tasks per model:",
    ]
    for model, counts in d["per_model"].items():
        lines.append(
            f"  {model}: {sum(counts.values())} (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"
        )
    lines.append(
        f"estimate: {est['gpu_hours']:.2f} GPU-hours ("
        + ", ".join(f"{k} {v:.2f}" for k, v in est["per_kind"].items())
        + ")"
    )
    lines.append(f"estimated by: {est['how']}")
    lines.append(f"cache: {d['cache_dir']}")
    return "\n".join(lines)


def cmd_sweep(args) -> int:
    from analysis.cli.main import config_from_args
    from analysis.config.parse import check_runnable
    from analysis.studies.datasets import check_datasets
    from analysis.sweep.engines import run_local, run_ray

    cfg = config_from_args(args)
    cache_dir = cache_dir_for(cfg, args.output_root)
    if args.dry_run:
        d = dry_run(cfg, plan(cfg, args.generation_w, need_data=False), cache_dir)
        print(json.dumps(d, indent=2) if args.json else format_dry_run(d))
        return 0
    check_runnable(cfg)
    check_datasets(cfg)
    graph = plan(cfg, args.generation_w)
    if args.engine == "ray":
        out = run_ray(graph, cfg, cache_dir, address=args.address, max_retries=args.max_retries, echo=print)
    else:
        out = run_local(graph, cfg, cache_dir, echo=print)
    summary = {k: v for k, v in out.items() if k != "results"}
    print(
        json.dumps(summary)
        if args.json
        else (
            f"sweep done: {summary['done']} tasks run, {summary['skipped']} already finished (skipped), "
            f"{summary['task_seconds']:.1f} task-seconds in {summary['wall_seconds']:.1f}s; cache {cache_dir}"
        )
    )
    return 0
