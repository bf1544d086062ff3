"""Run one sweep task by calling the study functions (the ONLY module of the sweep that touches
:mod:`analysis.studies`; re-point these calls when the studies move).

Every task calls the same cached, study-level function that the notebooks call for that slice,
so the entries it leaves in the :class:`~analysis.studies.cache.StudyCache` are the ones the
notebooks later read. A task's own record (what ran, seconds, device) is written atomically as
``<cache>/studies/<code_version>/sweep/<key>.json`` after its entries; the key hashes the task
and the whole config, so a rerun of a killed sweep skips every task that has its record.
Each task kind has its runner in :data:`RUNNERS`.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

from analysis.config.schema import StudyConfig
from analysis.studies.cache import StudyCache, key_hash
from analysis.studies.datasets import user_tasks
from analysis.studies.generations import generate_systems, train_pair_ids, user_shards
from analysis.studies.models import model_size_b
from analysis.studies.preflamp import preflamp_inputs, preflamp_rm
from analysis.studies.rm_policy import pa_data, rm_points, rm_vs_policy_accuracy, study1_inputs
from analysis.studies.rm_selection import rm_selection, sample_features, selection_samples
from analysis.studies.rms import train_rm
from analysis.sweep.graph import Task

_MEMO: dict = {}  # the last inputs per (kind, model, dataset) in this process (a worker reuses them)


def task_key(task: Task, cfg: StudyConfig) -> str:
    conf = {k: v for k, v in cfg.to_dict().items() if k not in ("cache_dir", "threads")}
    return key_hash({"kind": task.kind, "model": task.model, "params": task.params, "cfg": conf})


def preflamp_users(cfg: StudyConfig) -> int:
    """Number of Pref-LaMP users of ``cfg`` (reads the data: cheap, no model)."""
    return len({t.user_id for t in user_tasks(cfg)})


def _memo(key, fn):
    if key not in _MEMO:
        _MEMO.clear()  # one at a time: PA data of a paper dataset is ~GBs
        _MEMO[key] = fn()
    return _MEMO[key]


def _study1(cfg, cache, ds):
    return _memo(("s1", cfg.fingerprint(), str(cache.root), ds), lambda: study1_inputs(cfg, ds, cache))


def _preflamp(cfg, cache, model):
    return _memo(
        ("pl", cfg.fingerprint(), str(cache.root), model), lambda: preflamp_inputs(cfg, model, cache)
    )


def _features(task: Task, cfg: StudyConfig, cache: StudyCache, cache_dir: str) -> None:
    _MEMO.clear()
    if task.p["dataset"] == "preflamp":
        preflamp_inputs(cfg, task.model, cache)
    else:
        study1_inputs(cfg, task.p["dataset"], cache)


def _pa_data(task: Task, cfg: StudyConfig, cache: StudyCache, cache_dir: str) -> None:
    inp = _study1(cfg, cache, task.p["dataset"])
    pa_data(cfg, inp.model, inp.tok, inp.test_pairs, cache, inp.fkey)


def _rm(task: Task, cfg: StudyConfig, cache: StudyCache, cache_dir: str) -> None:
    p = task.p
    if p["dataset"] == "preflamp":
        preflamp_rm(cfg, _preflamp(cfg, cache, task.model), p["method"], cache)
        return
    inp = _study1(cfg, cache, p["dataset"])
    train_rm(
        inp.feats,
        p["method"],
        p["seed"],
        p["budget"],
        cache,
        inp.fkey,
        p["bootstrap"],
        normalize_reward=p.get("normalize_reward", True),
        budgets=None,
        reward_norm=cfg.reward_norm,
        prefixes=inp.train_prefixes,
    )


def _policy_accuracy(task: Task, cfg: StudyConfig, cache: StudyCache, cache_dir: str) -> None:
    p = task.p
    spec = (p["method"], p["seed"], p["budget"], p.get("normalize_reward", True))
    rm_points(cfg, p["dataset"], spec, _study1(cfg, cache, p["dataset"]), cache)


def _table(task: Task, cfg: StudyConfig, cache: StudyCache, cache_dir: str) -> None:
    rm_vs_policy_accuracy(cfg, cache_dir, datasets=[task.p["dataset"]], progress=False)


def _generations(task: Task, cfg: StudyConfig, cache: StudyCache, cache_dir: str) -> None:
    # the study's own call (generate_systems) on this shard's users: the runner file it writes
    # is the one the study reads for that shard
    inp = _preflamp(cfg, cache, task.model)
    shard = [inp.tasks[i] for i in user_shards(cfg, inp.tasks)[task.p["shard"]]]
    rms = {m: preflamp_rm(cfg, inp, m, cache) for m in cfg.methods}
    train_ids = train_pair_ids(inp.pairs)  # ICL parity, as in the study
    generate_systems(cfg, inp.model, inp.tok, shard, cache, task.model, rms, task.p["w"], train_ids=train_ids)


def _selection_samples(task: Task, cfg: StudyConfig, cache: StudyCache, cache_dir: str) -> None:
    # study 5's shared samples of the generation targets and their features (the study's own calls)
    inp = _study1(cfg, cache, task.p["dataset"])
    tasks = user_tasks(cfg, cfg.preflamp_source)
    prompts, samples = selection_samples(cfg, inp.model, inp.tok, tasks, cache)
    sample_features(cfg, inp.model, inp.tok, prompts, samples, cache)


def _selection_rank(task: Task, cfg: StudyConfig, cache: StudyCache, cache_dir: str) -> None:
    # every population RM ranks the samples, ARGS of the selection cells, the statistics: the study
    # itself, which finds the RMs, per-RM results and samples in the cache
    rm_selection(cfg, cache_dir, progress=False)


# task kind -> its runner ``fn(task, cfg, cache, cache_dir)``: the study call that kind makes
RUNNERS: dict[str, Callable[[Task, StudyConfig, StudyCache, str], None]] = {
    "features": _features,
    "pa_data": _pa_data,
    "rm": _rm,
    "policy_accuracy": _policy_accuracy,
    "table": _table,
    "generations": _generations,
    "selection_samples": _selection_samples,
    "selection_rank": _selection_rank,
}


def _run(task: Task, cfg: StudyConfig, cache: StudyCache, cache_dir: str) -> None:
    runner = RUNNERS.get(task.kind)
    if runner is None:
        raise ValueError(f"unknown sweep task kind {task.kind!r} ({task.id})")
    runner(task, cfg, cache, cache_dir)


def run_task(task: Task, cfg: StudyConfig, cache_dir: str, n_users: int = 0) -> dict:
    """Run ``task`` unless its record exists; return the record plus ``status`` (done | skipped).

    ``n_users`` (the graph's) only feeds the roofline time stored beside the measured one.
    """
    from analysis.io import read_json, write_json
    from analysis.sweep.estimate import roofline_seconds

    cache = StudyCache(cache_dir)
    path = cache.path("sweep", task_key(task, cfg))
    if path.exists():
        return {**read_json(path), "status": "skipped"}
    t0 = time.perf_counter()
    _run(task, cfg, cache, cache_dir)
    seconds = time.perf_counter() - t0
    size_b = model_size_b(cfg, task.model)
    record = {
        "id": task.id,
        "kind": task.kind,
        "model": task.model,
        "params": task.p,
        "seconds": round(seconds, 3),
        "device": cfg.device,
        "device_name": device_name(cfg.device),
        "dtype": cfg.dtype,
        "size_b": size_b,
        "roofline_s": roofline_seconds(task, cfg, size_b, n_users),
        "host": platform.node(),
    }
    write_json(path, record)
    return {**record, "status": "done"}


def measured_records(cache_dir: str) -> list[dict]:
    """Every task record in the cache (all code versions): the measured times for estimates."""
    from analysis.io import read_json

    root = StudyCache(cache_dir).root.parent
    return [read_json(p) for p in sorted(root.glob("*/sweep/*.json"))]


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"
