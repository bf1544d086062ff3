"""The paper sweep as a task graph (design section 8b).

One :class:`Task` per unit of work that the three studies need, each producing exactly the cache
entries the study functions (and so the notebooks) read:

- ``features``        (model, dataset): preference pairs (and base-policy negatives) and their
  text features. Study-1 datasets on the policy model; ``preflamp`` on every model.
- ``pa_data``         (model, dataset): the RM-independent policy-accuracy data of the test pairs.
- ``rm``              (model, dataset, method, seed, budget, normalize_reward): one fitted reward model
  (study 1 adds, per method, the ``normalize_reward=False`` sensitivity RM).
- ``policy_accuracy`` (per study-1 RM): RM accuracy, policy accuracy and per-pair outcomes of that RM.
- ``table``           (study 1, dataset): the assembled study-1 frames.
- ``generations``     (model, shard of users): every system (base, ICL k, best-of-n, ARGS per RM
  at each w) of the generation runner on that shard's users (``cfg.shard_users`` per shard).
- ``selection_samples`` (study 5, policy model, the real Pref-LaMP dataset): the ``selection_n``
  shared base samples per generation target and their features.
- ``selection_rank``  (study 5): every population RM ranks those samples (best-of-n), ARGS for the
  ``selection_args_cells`` cells, the selection statistics.

Dependencies: ``rm`` needs ``features``; ``policy_accuracy`` needs its ``rm`` and ``pa_data``;
generations need the model's RMs; ``selection_samples`` needs the dataset's features and
``selection_rank`` the samples and every population RM's ``policy_accuracy`` task. The
``features`` (and ``selection_samples``) tasks of a model write its shared text-feature file and
are chained in one fixed order, so every engine computes the same features in the same batches
(byte-identical caches); generation shards (best-of-n features of their own samples) only add
rows to it under a file lock.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from analysis.config.schema import StudyConfig

STORE_WRITERS = ("features", "selection_samples")


@dataclass(frozen=True)
class Task:
    """One node of the sweep graph. ``params`` is a JSON string (hashable, stable)."""

    kind: str
    model: str
    params: str
    deps: tuple[str, ...] = ()

    @property
    def p(self) -> dict:
        return json.loads(self.params)

    @property
    def id(self) -> str:
        return f"{self.kind}[{self.model}]" + "".join(f"/{k}={v}" for k, v in self.p.items())


def _task(kind: str, model: str, deps=(), **params) -> Task:
    return Task(kind, model, json.dumps(params, sort_keys=False), tuple(deps))


@dataclass
class Graph:
    """Tasks in a topological order (the order the ``local`` engine runs them)."""

    tasks: list[Task]
    n_users: int
    users_assumed: bool = False  # True when the users could not be read (dry run without data)
    by_id: dict[str, Task] = field(init=False)

    def __post_init__(self):
        self.by_id = {t.id: t for t in self.tasks}
        if len(self.by_id) != len(self.tasks):
            raise ValueError("duplicate task ids in the sweep graph")
        seen: set[str] = set()
        for t in self.tasks:
            missing = [d for d in t.deps if d not in seen]
            if missing:
                raise ValueError(f"task {t.id} depends on {missing}, which do not come before it")
            seen.add(t.id)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.kind] = out.get(t.kind, 0) + 1
        return out

    def counts_by_model(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for t in self.tasks:
            row = out.setdefault(t.model, {})
            row[t.kind] = row.get(t.kind, 0) + 1
        return out


def build_graph(
    cfg: StudyConfig,
    n_users: int,
    *,
    generation_w: tuple[float, ...] | None = None,
    study1: bool = True,
    preflamp: bool = True,
    selection: bool | None = None,
    users_assumed: bool = False,
) -> Graph:
    """The task graph of ``cfg``: study 1 on ``cfg.policy_model`` and ``cfg.datasets``; studies 2-3
    on ``cfg.policy_model`` and ``cfg.models`` with ``n_users`` Pref-LaMP users (shards of
    ``cfg.shard_users``). ARGS runs at ``cfg.rgd_w`` on every model and also at ``generation_w``
    (None: ``cfg.inspector_w``) on the policy model (what notebooks 02-04 read). ``selection``:
    study 5 on the Pref-LaMP dataset of ``cfg.preflamp_source`` (its study-1 tasks are added when
    it is not one of ``cfg.datasets``; notebook 05 reads them); None: with the Pref-LaMP studies
    (``preflamp``), whose users' targets it generates for."""
    tasks: list[Task] = []
    last_writer: dict[str, str] = {}  # model -> id of its last task writing the text-feature store

    def add(t: Task) -> Task:
        if t.kind in STORE_WRITERS:
            prev = last_writer.get(t.model)
            if prev and prev not in t.deps:
                t = Task(t.kind, t.model, t.params, (*t.deps, prev))
            last_writer[t.model] = t.id
        tasks.append(t)
        return t

    policy = cfg.policy_model
    seed0, budget = cfg.seeds[0], max(cfg.budgets)
    selection = preflamp if selection is None else selection
    sel_ds = f"{cfg.preflamp_source}_preflamp"  # analysis.studies.rm_selection.selection_dataset
    s1_datasets = list(cfg.datasets) if study1 else []
    if selection and sel_ds not in s1_datasets:
        s1_datasets.append(sel_ds)
    pa_tasks: dict[str, list[str]] = {}
    features_of: dict[str, str] = {}
    if s1_datasets:
        for ds in s1_datasets:
            f = add(_task("features", policy, dataset=ds))
            features_of[ds] = f.id
            pa = add(_task("pa_data", policy, [f.id], dataset=ds))
            specs = [(m, s, b, True) for m in cfg.methods for s in cfg.seeds for b in cfg.budgets]
            if study1 and ds in cfg.datasets:  # the sensitivity RMs (study 1 only; not selection candidates)
                specs += [(m, seed0, budget, False) for m in cfg.methods]
            pas = []
            for m, s, b, norm in specs:
                spec = {"dataset": ds, "method": m, "seed": s, "budget": b, "normalize_reward": norm}
                rm = add(_task("rm", policy, [f.id], **spec, bootstrap=cfg.rm_bootstrap))
                pas.append(add(_task("policy_accuracy", policy, [rm.id, pa.id], **spec)).id)
            pa_tasks[ds] = [t for t, (*_, norm) in zip(pas, specs, strict=True) if norm]
            if ds in cfg.datasets and study1:
                add(_task("table", policy, pas, study=1, dataset=ds))
    if selection:
        smp = add(
            _task("selection_samples", policy, [features_of[sel_ds]], dataset=sel_ds, n=cfg.selection_n)
        )
        add(_task("selection_rank", policy, [smp.id, *pa_tasks[sel_ds]], dataset=sel_ds))
    if preflamp:
        size = cfg.shard_users or max(1, n_users)
        shards = range(math.ceil(n_users / size))
        for model in dict.fromkeys([policy, *cfg.models]):
            f = add(_task("features", model, dataset="preflamp"))
            rms = [
                add(
                    _task(
                        "rm",
                        model,
                        [f.id],
                        dataset="preflamp",
                        method=m,
                        seed=seed0,
                        budget=budget,
                        bootstrap=False,
                    )
                ).id
                for m in cfg.methods
            ]
            # the w the studies call generate_systems with: study 2 (policy model) adds generation_w
            extra = cfg.inspector_w if generation_w is None else generation_w  # notebook 02's default
            ws = sorted({float(cfg.rgd_w), *(map(float, extra) if model == policy else ())})
            for sh in shards:
                add(_task("generations", model, [f.id, *rms], w=ws, shard=sh))
    return Graph(tasks, n_users, users_assumed)
