"""Engines that run a sweep :class:`~analysis.sweep.graph.Graph`: ``local`` and ``ray``.

Both run the same tasks through :func:`analysis.sweep.tasks.run_task` (skip a task whose record
exists, else compute its cache entries and write the record), so their caches are identical.

- ``local``: one process, the graph's topological order.
- ``ray``: one ``ray.remote`` task per node, its dependencies passed as object refs (Ray starts a
  task when they are done). Each asks for one GPU (``num_gpus=1``) when the config runs on CUDA
  and the cluster has GPUs, else one CPU. ``address="auto"`` joins a running cluster; without an
  address a local one is started (or the one this process already initialised is used).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from analysis.config.schema import StudyConfig
from analysis.errors import ConfigError
from analysis.sweep.graph import Graph, Task

log = logging.getLogger(__name__)
ENGINES = ("local", "ray")


class SweepError(RuntimeError):
    """Some tasks failed; finished tasks keep their records, so rerunning the command resumes."""


def _summary(results: list[dict], t0: float) -> dict:
    done = sum(r["status"] == "done" for r in results)
    return {
        "done": done,
        "skipped": len(results) - done,
        "task_seconds": round(sum(r["seconds"] for r in results if r["status"] == "done"), 3),
        "wall_seconds": round(time.perf_counter() - t0, 3),
        "results": results,
    }


def run_local(graph: Graph, cfg: StudyConfig, cache_dir: str, echo: Callable[[str], None] = log.info) -> dict:
    """Run every task in this process, in topological order."""
    from analysis.sweep.tasks import run_task

    t0 = time.perf_counter()
    results = []
    for i, task in enumerate(graph.tasks, 1):
        try:
            r = run_task(task, cfg, cache_dir, graph.n_users)
        except Exception as exc:
            raise SweepError(
                f"task {task.id} failed ({type(exc).__name__}: {exc}); {i - 1} tasks before it are "
                "finished: rerun the same command to resume"
            ) from exc
        echo(f"[{i}/{len(graph.tasks)}] {r['status']:7s} {task.id} ({r['seconds']:.1f}s)")
        results.append(r)
    return _summary(results, t0)


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "--engine ray needs Ray: pip install 'personalized-alignment-analysis[ray]' (or pip install 'ray>=2.9')"
        ) from exc
    return ray


def _ray_run(task: Task, cfg: StudyConfig, cache_dir: str, n_users: int, *deps) -> dict:  # on a worker
    from analysis.sweep.tasks import run_task

    return run_task(task, cfg, cache_dir, n_users)


def run_ray(
    graph: Graph,
    cfg: StudyConfig,
    cache_dir: str,
    *,
    address: str | None = None,
    max_retries: int = 1,
    echo: Callable[[str], None] = log.info,
    env_vars: tuple[str, ...] = (),
) -> dict:
    """Run the graph on a Ray cluster; raise :class:`SweepError` naming the failed tasks.

    ``max_retries``: Ray re-runs a task whose worker died this many times (a retry skips nothing
    that is finished: the task's finished entries are cache hits). ``env_vars``: names of this
    process's environment variables passed on to the workers (``PYTHONPATH`` always is).
    """
    import os

    ray = import_ray()
    started = False
    if not ray.is_initialized():
        kw = {"address": address} if address else {}
        ray.init(**kw, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        on_cuda = cfg.device.startswith("cuda")
        if on_cuda and not gpus:
            raise ConfigError(
                f"config key 'device': {cfg.device!r} but the Ray cluster has no GPUs "
                "(use --set device=cpu or a cluster with GPUs)"
            )
        res = {"num_gpus": 1} if on_cuda else {"num_cpus": 1}
        # workers import this checkout: pass the driver's import path on (a cluster installs the package)
        env = {k: os.environ[k] for k in ("PYTHONPATH", *env_vars) if k in os.environ}
        opts = {**res, "max_retries": max_retries, **({"runtime_env": {"env_vars": env}} if env else {})}
        remote = ray.remote(_ray_run).options(**opts)
        t0 = time.perf_counter()
        refs: dict[str, object] = {}
        cfg_ref = ray.put(cfg)  # one copy in the object store (Ray resolves it for every task)
        for task in graph.tasks:
            refs[task.id] = remote.remote(
                task, cfg_ref, cache_dir, graph.n_users, *[refs[d] for d in task.deps]
            )
        echo(f"submitted {len(refs)} tasks to Ray ({'1 GPU' if on_cuda else '1 CPU'} each)")
        ids = {ref: tid for tid, ref in refs.items()}
        pending, results, failed = list(refs.values()), [], []
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            tid = ids[ready[0]]
            try:
                r = ray.get(ready[0])
            except Exception as exc:  # a failed task (or a failed dependency of it)
                failed.append((tid, exc))
                echo(f"failed  {tid}: {type(exc).__name__}")
                continue
            results.append(r)
            echo(f"[{len(results)}/{len(refs)}] {r['status']:7s} {tid} ({r['seconds']:.1f}s)")
        if failed:
            first = str(failed[0][1]).strip().splitlines()
            raise SweepError(
                f"{len(failed)} of {len(refs)} tasks failed, first {failed[0][0]}: "
                f"{first[-1] if first else type(failed[0][1]).__name__}; "
                f"{len(results)} finished: rerun the same command to resume"
            )
        order = {t.id: i for i, t in enumerate(graph.tasks)}
        return _summary(sorted(results, key=lambda r: order[r["id"]]), t0)
    finally:
        if started:
            ray.shutdown()
