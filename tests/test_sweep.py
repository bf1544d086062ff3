"""The sweep (issue 13): task graph, local vs Ray engine byte for byte, resume after a killed
worker, and the dry run, on a tiny random model with a small config."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from analysis.config.parse import load_config
from analysis.sweep.graph import build_graph

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "n_users": 3,
    "n_test_items": 1,
    "seeds": [0],
    "budgets": [5],
    "methods": ["shared_bt", "per_user_bt"],
    "datasets": ["synthetic_style_swap"],
    "w_values": [0.0, 1.0],
    "icl_k": [1],
    "best_of_n": 2,
    "max_new_tokens": 4,
    "batch_size": 4,
    "shard_users": 2,
    "n_boot": 20,
    "threads": 1,
    "k": 3,
    "dtype": "float32",  # pinned, not `auto`: the engines must write byte-identical caches
}


@pytest.fixture(scope="module")
def small(tiny_dir):
    return {**SMALL, "policy_model": tiny_dir, "models": [tiny_dir]}


def _graph(cfg):
    from analysis.cli.sweep import plan

    return plan(cfg, generation_w=())


def _entries(cache_dir) -> dict[str, bytes]:
    """Every cache file except timings (the sweep's own records, the runner's ``.seconds.jsonl``
    side files) and lock files."""
    root = Path(cache_dir) / "studies"
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "/sweep/" not in str(p) and not p.name.endswith((".lock", ".seconds.jsonl"))
    }


@pytest.fixture(scope="module")
def local_run(small, tmp_path_factory):
    from analysis.sweep.engines import run_local

    cfg = load_config("embedded_synthetic", small)
    cache = str(tmp_path_factory.mktemp("local-cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run_local(_graph(cfg), cfg, cache, echo=lambda s: None)
    return cfg, cache, out


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip(
        "ray", reason="Ray is the optional extra analysis[ray] (make setup installs it)"
    )
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as exc:
        if "timed out during startup" not in str(exc):
            raise
        # the raylet aborts ("Timed out waiting for file .../metrics_agent_port_*", in
        # NodeManager::WaitForDashboardAgentPorts) when its dashboard agent needs more than ~15 s to
        # start; seen here with a load of 8-15 on 2 shared cores (importing the agent took 19 s); not our code
        pytest.skip(f"the local Ray node did not start on this overloaded machine: {exc}")
    yield ray
    ray.shutdown()


def test_missing_ray_is_one_clear_error(monkeypatch):
    from analysis.errors import ConfigError
    from analysis.sweep.engines import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"--engine ray needs Ray: pip install .*\[ray\]"):
        import_ray()


def test_graph_counts_and_dependencies(small):
    cfg = load_config("embedded_synthetic", small)
    g = build_graph(cfg, n_users=3, generation_w=(2.0,))
    # study 1: 1 dataset x 2 methods x 1 seed x 1 budget, + 2 sensitivity RMs (normalize_reward=False);
    # study 5: the Pref-LaMP dataset of preflamp_source (synthetic_preflamp, not a study-1 dataset
    # here) gets its features, PA data and population (2 RMs, no sensitivity RMs, no table), then
    # the samples and one ranking task; studies 2-3: one model, its 2 RMs, 2 generation shards
    assert g.counts() == {
        "features": 3,
        "pa_data": 2,
        "rm": 4 + 2 + 2,
        "policy_accuracy": 2 + 2 + 2,
        "table": 1,
        "selection_samples": 1,
        "selection_rank": 1,
        "generations": 2,
    }
    by_id = g.by_id
    for t in g.tasks:
        if t.kind == "policy_accuracy":
            assert {by_id[d].kind for d in t.deps} == {"rm", "pa_data"}
            rm = next(by_id[d] for d in t.deps if by_id[d].kind == "rm")
            assert rm.p["normalize_reward"] == t.p["normalize_reward"] and rm.p["method"] == t.p["method"]
        if t.kind == "rm":
            assert [by_id[d].kind for d in t.deps] == ["features"]
        if t.kind == "generations":
            assert t.p["w"] == [1.0, 2.0]  # rgd_w and generation_w (study 2 on the policy model)
            assert sorted(by_id[d].p["method"] for d in t.deps if by_id[d].kind == "rm") == sorted(
                cfg.methods
            )
    assert sorted(t.p["normalize_reward"] for t in g.tasks if t.kind == "policy_accuracy") == [
        0,
        0,
        1,
        1,
        1,
        1,
    ]
    # the model's text-feature writers are chained: study-1 features -> study-5 samples -> Pref-LaMP features
    feats = [t for t in g.tasks if t.kind in ("features", "selection_samples")]
    assert [t.kind for t in feats] == ["features", "features", "selection_samples", "features"]
    assert all(a.id in b.deps for a, b in zip(feats, feats[1:], strict=False))
    # ranking needs the samples and every candidate RM's study-1 results (normalised rewards only)
    rank = next(t for t in g.tasks if t.kind == "selection_rank")
    deps = [by_id[d] for d in rank.deps]
    assert [d.kind for d in deps] == ["selection_samples", "policy_accuracy", "policy_accuracy"]
    assert {(d.p["dataset"], d.p["normalize_reward"]) for d in deps[1:]} == {("synthetic_preflamp", True)}
    assert build_graph(cfg, n_users=3, selection=False).counts().get("selection_rank") is None


def test_user_shards_and_generations_in_unsharded_order(small, monkeypatch):
    from types import SimpleNamespace

    import analysis.studies.generations as gen

    tasks = [SimpleNamespace(user_id=u, test_id=f"t{i}") for i, u in enumerate("aabcbd")]
    cfg = load_config("embedded_synthetic", {**small, "shard_users": 2})
    assert gen.user_shards(cfg, tasks) == [[0, 1, 2, 4], [3, 5]]  # users a, b | c, d
    one = load_config("embedded_synthetic", {**small, "shard_users": 0})
    assert gen.user_shards(one, tasks) == [list(range(6))]
    calls = []

    def fake_shard(cfg, model, tok, shard, *rest):  # the runner's job order: systems, then tasks
        calls.append([t.test_id for t in shard])
        return [{"system": s, "test_id": t.test_id} for s in ("base", "icl_k1", "rgd") for t in shard]

    monkeypatch.setattr(gen, "_generate_shard", fake_shard)
    sharded = gen.generate_systems(cfg, None, None, tasks, None, "m", {}, [1.0])
    assert calls == [["t0", "t1", "t2", "t4"], ["t3", "t5"]]
    assert sharded == gen.generate_systems(one, None, None, tasks, None, "m", {}, [1.0])
    assert [r["test_id"] for r in sharded[:6]] == [f"t{i}" for i in range(6)]


def test_local_run_fills_the_caches_the_studies_read(local_run, monkeypatch):
    cfg, cache, out = local_run
    assert out["done"] == len(_graph(cfg).tasks) and out["skipped"] == 0
    tables = _study_tables(cfg, cache, monkeypatch)  # raises if any study had to compute
    assert len(tables["s1_points"]) == (2 + 2) * 2 * 2 * 2  # (RMs + sensitivity RMs) x variants x norms x w
    assert set(tables["s2_summary"]["system"]) >= {"base", "icl_k1", "rgd_shared_bt_w1", "bon_per_user_bt_n2"}
    # study 5 from the swept samples and rankings: every candidate RM x target, best-of-n and ARGS
    s5 = tables["s5_generations"]
    assert (
        set(s5["system"]) == {"bon", "args"} and s5.loc[s5["system"] == "bon", "sample"].between(0, 15).all()
    )


def _study_tables(cfg, cache, monkeypatch) -> dict[str, pd.DataFrame]:
    """The study tables built from a swept cache; any model computation fails the test."""
    import analysis.decoding.base as base
    import analysis.evaluation.policy_accuracy as pa
    import analysis.rewards as rewards
    from analysis.studies import icl_vs_rgd_scale, preflamp_decoupling, rm_selection, rm_vs_policy_accuracy

    def boom(*a, **k):
        raise AssertionError("computed instead of reading the swept cache")

    for mod, name in [
        (base, "generate_greedy"),
        (base, "generate_sample"),
        (pa, "prepare_pa_data"),
        (rewards, "make_reward_model"),
    ]:
        monkeypatch.setattr(mod, name, boom)
    monkeypatch.setattr("analysis.decoding.args.args_generate", boom)
    monkeypatch.setattr("analysis.decoding.args.args_generate_multi", boom)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s1 = rm_vs_policy_accuracy(cfg, cache, progress=False)
    s2 = preflamp_decoupling(cfg, cache, progress=False)
    s3 = icl_vs_rgd_scale(cfg, cache, progress=False)
    s5 = rm_selection(cfg, cache, progress=False)
    monkeypatch.undo()
    return {
        **{f"s1_{k}": v for k, v in s1.items()},
        **{f"s2_{k}": v for k, v in s2.items()},
        **{f"s3_{k}": v for k, v in s3.items()},
        **{f"s5_{k}": v for k, v in s5.items()},
    }


def _assert_same_outputs(cfg, cache_a, cache_b, monkeypatch):
    a, b = _entries(cache_a), _entries(cache_b)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    ta, tb = _study_tables(cfg, cache_a, monkeypatch), _study_tables(cfg, cache_b, monkeypatch)
    for name in ta:
        assert ta[name].to_json(orient="table", double_precision=15) == tb[name].to_json(
            orient="table", double_precision=15
        ), name


def _dying_ray_run(prefix: str, marker: str):
    """A stand-in for :func:`analysis.sweep.engines._ray_run` whose process exits (``os._exit``)
    after the work of the first task whose id starts with ``prefix`` but before its record, once
    (``marker`` remembers). Defined in a closure, so Ray ships it to the workers by value."""

    def ray_run(task, cfg, cache_dir, n_users, *deps):
        import os
        from pathlib import Path

        from analysis.sweep import tasks

        run = tasks._run

        def dying(t, *args):
            run(t, *args)
            if t.id.startswith(prefix) and not Path(marker).exists():
                Path(marker).write_text(t.id)
                os._exit(3)

        tasks._run = dying
        try:
            return tasks.run_task(task, cfg, cache_dir, n_users)
        finally:
            tasks._run = run

    return ray_run


# the same fault for a `python -m analysis` process: PREFIX and MARKER are prepended
_DYING_CLI = """
import os, sys
from pathlib import Path

from analysis.sweep import tasks

run = tasks._run


def dying(t, *args):
    run(t, *args)
    if t.id.startswith(PREFIX) and not Path(MARKER).exists():
        Path(MARKER).write_text(t.id)
        os._exit(3)


tasks._run = dying
from analysis.cli import main

sys.exit(main(sys.argv[1:]))
"""


def test_ray_sweep_with_a_killed_worker_resumes_and_equals_local(
    local_run, ray_cluster, tmp_path, monkeypatch
):
    """One real Ray run (kept to one for CI time): a worker dies after its work but before its
    record (``os._exit``), the sweep fails naming the resume command, the rerun skips every
    finished task, and the cache equals the local engine's byte for byte (so do the study tables)."""
    from analysis.sweep import engines
    from analysis.sweep.engines import SweepError, run_ray

    cfg, local_cache, _ = local_run
    graph = _graph(cfg)
    marker = tmp_path / "killed"
    with monkeypatch.context() as m:
        m.setattr(engines, "_ray_run", _dying_ray_run("generations[", str(marker)))
        with pytest.raises(SweepError, match="rerun the same command to resume"):
            run_ray(graph, cfg, str(tmp_path / "cache"), max_retries=0, echo=lambda s: None)
    assert marker.exists()  # a worker really died
    again = run_ray(graph, cfg, str(tmp_path / "cache"), echo=lambda s: None)
    assert again["skipped"] > 0 and again["done"] > 0 and again["done"] + again["skipped"] == len(graph.tasks)
    assert {r["id"] for r in again["results"] if r["status"] == "done"} >= {marker.read_text()}
    _assert_same_outputs(cfg, local_cache, str(tmp_path / "cache"), monkeypatch)


def test_cli_dry_run_prints_the_graph(small, tmp_path, capsys):
    from analysis.cli import main

    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small))
    argv = ["sweep", "--preset", "embedded_synthetic", "--config", str(path), "--dry-run"]
    assert main([*argv, "--set", f"cache_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "sweep graph of preset embedded_synthetic: 24 tasks; 3 Pref-LaMP users" in out
    assert (
        "features 3, pa_data 2, rm 8, policy_accuracy 6, table 1, selection_samples 1, selection_rank 1, "
        "generations 2" in out
    )
    assert "GPU-hours" in out and "roofline" in out
    assert main(["sweep", "--preset", "paper", "--dry-run"]) == 0  # no LaMP folder needed for a dry run
    out = capsys.readouterr().out
    # 3 datasets x (5 methods x 3 seeds x 3 budgets + 5 sensitivity RMs), study 5's population on
    # lamp_preflamp (45 RMs) and its 2 tasks; 4 models x 4 shards of 50 users
    assert (
        "443 tasks" in out
        and "policy_accuracy 195" in out
        and "selection_samples 1, selection_rank 1" in out
        and "generations 16" in out
        and "(n_users: the data was not read)" in out
    )


def test_cli_local_sweep_killed_then_resumed(local_run, small, tmp_path, monkeypatch):
    """The sweep command dies inside a task (os._exit, after its work, before its record); the
    rerun (`python -m analysis sweep`) skips the finished tasks."""
    cfg, local_cache, _ = local_run
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small))
    args = ["sweep", "--preset", "embedded_synthetic", "--config", str(path)]
    args += ["--generation-w"]
    args += ["--set", f"cache_dir={tmp_path / 'cache'}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    dying = f"PREFIX = {'rm['!r}\nMARKER = {str(tmp_path / 'k')!r}\n" + _DYING_CLI
    first = subprocess.run(
        [sys.executable, "-c", dying, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert first.returncode == 3 and (tmp_path / "k").exists(), first.stderr[-2000:]
    cmd = [sys.executable, "-m", "analysis", *args]
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "already finished (skipped)" in second.stdout and " 0 already finished" not in second.stdout
    _assert_same_outputs(cfg, local_cache, str(tmp_path / "cache"), monkeypatch)


class _Ref:
    """A hashable object ref holding a value or an exception."""

    def __init__(self, value):
        self.value = value


class _StandInRay:
    """The few Ray calls the engine makes, run eagerly in this process (tasks arrive in topological
    order): checks the engine's wiring (resources, dependencies as refs, failures) where a real
    cluster cannot start; the tests above run the real thing."""

    def __init__(self, fail_id=None):
        self.fail_id, self.options, self.calls = fail_id, None, []

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return {"CPU": 2.0}

    def put(self, obj):
        return _Ref(obj)

    def remote(self, fn):
        ray = self

        class Remote:
            def options(self, **kw):
                ray.options = kw
                return self

            def remote(self, *args):
                args = [a.value if isinstance(a, _Ref) else a for a in args]
                task, deps = args[0], args[4:]
                if any(isinstance(d, Exception) for d in deps):
                    return _Ref(RuntimeError(f"dependency of {task.id} failed"))
                ray.calls.append((task.id, len(deps)))
                if task.id == ray.fail_id:
                    return _Ref(RuntimeError("worker died"))
                return _Ref(fn(*args))

        return Remote()

    def wait(self, pending, num_returns=1):
        return pending[:1], pending[1:]

    def get(self, ref):
        if isinstance(ref.value, Exception):
            raise ref.value
        return ref.value


def test_ray_engine_wiring_with_a_stand_in(local_run, tmp_path, monkeypatch):
    import analysis.sweep.engines as engines

    cfg, local_cache, _ = local_run
    graph = _graph(cfg)
    fail = next(t.id for t in graph.tasks if t.kind == "rm")
    stand_in = _StandInRay(fail_id=fail)
    monkeypatch.setattr(engines, "import_ray", lambda: stand_in)
    with pytest.raises(engines.SweepError, match="rerun the same command to resume"):
        engines.run_ray(graph, cfg, str(tmp_path), echo=lambda s: None)
    assert stand_in.options["num_cpus"] == 1 and "num_gpus" not in stand_in.options
    assert dict(stand_in.calls) == {t.id: len(t.deps) for t in graph.tasks if t.id in dict(stand_in.calls)}
    stand_in.fail_id = None
    out = engines.run_ray(graph, cfg, str(tmp_path), echo=lambda s: None)
    assert out["skipped"] > 0 and out["done"] + out["skipped"] == len(graph.tasks)
    assert [r["id"] for r in out["results"]] == [t.id for t in graph.tasks]
    _assert_same_outputs(cfg, local_cache, str(tmp_path), monkeypatch)


def test_shared_cache_files_keep_every_writers_rows(tiny_lm, tmp_path):
    """The caches that several sweep tasks write (one text-feature file per model, one base-negatives
    file for all models) merge under a lock: a writer holding a stale copy drops no other rows."""
    from analysis.data.preflamp import GenerationCache
    from analysis.features.cache import TextFeatureStore
    from analysis.features.passes import BackboneSpec
    from analysis.models.loading import model_id

    model, tok = tiny_lm
    spec = BackboneSpec(model_id(model), 1, "shared", "last")
    a, b = (TextFeatureStore(tmp_path, model, tok, spec) for _ in range(2))  # both open the empty file
    fa = a.get(["p1"], ["first response"], progress=False)
    fb = b.get(["p2"], ["second response"], progress=False)
    fresh = TextFeatureStore(tmp_path, model, tok, spec)
    assert set(fresh.table) == {a.key("p1", "first response"), b.key("p2", "second response")}
    assert torch.equal(fresh.table[a.key("p1", "first response")], fa[0])
    assert torch.equal(fresh.table[b.key("p2", "second response")], fb[0])

    path = tmp_path / "negatives.jsonl"
    g1, g2 = GenerationCache(path), GenerationCache(path)
    g1.put_many("m1", ["x"], ["from m1"])
    g2.put_many("m2", ["y"], ["from m2"])
    again = GenerationCache(path)
    assert again.get("m1", "x") == "from m1" and again.get("m2", "y") == "from m2"


def test_every_task_kind_has_a_runner_and_an_unknown_one_is_refused(tmp_path):
    from analysis.config.parse import load_config
    from analysis.studies.cache import StudyCache
    from analysis.sweep.graph import Task, build_graph
    from analysis.sweep.tasks import RUNNERS, _run

    graph = build_graph(load_config("paper"), n_users=8, generation_w=(1.0,))
    kinds = {t.kind for t in graph.tasks}
    assert (
        kinds
        == set(RUNNERS)
        == {
            "features",
            "pa_data",
            "rm",
            "policy_accuracy",
            "table",
            "generations",
            "selection_samples",
            "selection_rank",
        }
    )
    task = Task("haiku", "m", "{}")
    with pytest.raises(ValueError, match="unknown sweep task kind 'haiku'"):
        _run(task, load_config("embedded_synthetic"), StudyCache(str(tmp_path)), str(tmp_path))


def test_local_sweep_of_a_users_own_preference_file(small, tmp_path, monkeypatch):
    """A user dataset is one more study-1 dataset of the graph: a local sweep fills the caches that
    study 1 then reads without computing anything."""
    import json

    from analysis.sweep.engines import run_local

    rows = [
        {"user_id": u, "prompt": f"Q{i}?", "chosen": f"yes {i} {u}", "rejected": f"no {i}"}
        for u in (1, 2)
        for i in range(10)
    ]
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(
        "embedded_synthetic", {**small, "datasets": ["mine"], "data_paths": {"mine": str(prefs)}}
    )
    g = build_graph(cfg, n_users=3, preflamp=False)
    assert g.counts() == {"features": 1, "pa_data": 1, "rm": 4, "policy_accuracy": 4, "table": 1}
    assert {t.p["dataset"] for t in g.tasks} == {"mine"}
    cache = str(tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run_local(g, cfg, cache, echo=lambda s: None)
    assert out["done"] == len(g.tasks)
    import analysis.evaluation.policy_accuracy as pa
    import analysis.rewards as rewards
    from analysis.studies import rm_vs_policy_accuracy

    def boom(*a, **k):
        raise AssertionError("computed instead of reading the swept cache")

    monkeypatch.setattr(pa, "prepare_pa_data", boom)
    monkeypatch.setattr(rewards, "make_reward_model", boom)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s1 = rm_vs_policy_accuracy(cfg, cache, progress=False)
    assert set(s1["tau"]["dataset"]) == {"mine"} and len(s1["points"]) == 4 * 2 * 2 * 2
