"""Studies 2 and 3: Pref-LaMP decoupling and ICL vs RGD across model sizes (claims 2 and 3).

Both start from the same per-model bundle (:func:`preflamp_run`): the Pref-LaMP users, their
preference pairs (negatives from this model), one RM per method (seed ``cfg.seeds[0]``, budget
``max(cfg.budgets)``), each RM's accuracy on the held-out pairs, and the generations of base,
ICL (each k), best-of-n and ARGS with each RM, scored by ROUGE against the users' real completions.
Everything is cached, so study 3 on the policy model reuses study 2's work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.config.schema import StudyConfig
from analysis.studies.cache import StudyCache
from analysis.studies.datasets import preflamp_pairs, synthetic_data, user_tasks
from analysis.studies.generations import (
    generate_systems,
    per_user,
    score_rows,
    system_summary,
    train_pair_ids,
)
from analysis.studies.models import get_model, model_size_b
from analysis.studies.rm_policy import train_prefixes
from analysis.studies.rms import check_splits, feature_key, features, rm_accuracy_row, train_rm
from analysis.studies.schedule import NO_SCHEDULE, Schedule


@dataclass
class PrefLampInputs:
    """The per-model inputs of studies 2-3 (:func:`preflamp_inputs`): the model, its Pref-LaMP
    ``tasks`` and ``pairs`` (negatives from this model), the pairs' ``feats`` and their cache
    key ``fkey`` (it keys the RMs); ``train_prefixes``: every prefix of the training responses,
    which the RMs' reward centre and scale are fitted on (``cfg.reward_norm = "prefix"``; else None;
    :func:`analysis.studies.rm_policy.train_prefixes`)."""

    model: object
    tok: object
    tasks: list
    pairs: list
    feats: object
    fkey: str
    train_prefixes: object | None = None


@dataclass
class PrefLampRun:
    """One model's study-2/3 results (:func:`preflamp_run`): ``rm``, one row per method (its RM's
    accuracy on the held-out pairs), ``rm_pairs``, each RM's correctness per held-out pair, and
    ``generations``, one row per user task x system (the schema of :mod:`analysis.studies.generations`)."""

    rm: pd.DataFrame
    rm_pairs: pd.DataFrame
    generations: pd.DataFrame


def preflamp_inputs(
    cfg: StudyConfig,
    model_name: str,
    cache: StudyCache,
    tasks=None,
    before_features=None,
    schedule: Schedule = NO_SCHEDULE,
) -> PrefLampInputs:
    """The per-model inputs of studies 2-3 (pairs and features cached; one sweep ``features``
    task). ``before_features(model, tok, tasks, pairs)``, if given, runs between the pairs and
    the features."""
    model, tok = get_model(cfg, model_name, schedule)
    tasks = tasks if tasks is not None else user_tasks(cfg)
    pairs = preflamp_pairs(cfg, tasks, model, tok, cache, source=cfg.preflamp_source)
    if before_features is not None:
        before_features(model, tok, tasks, pairs)
    fkey = feature_key(cfg, model, tok, pairs)
    # the training responses' prefix pass (the same cache entry as study 1's when the pairs are the
    # same) also seeds their features, so it comes before the feature pass
    prefixes = train_prefixes(cfg, model, tok, pairs, cache, fkey)
    feats = features(cfg, model, tok, pairs, cache)
    check_splits(feats, "pref-lamp")
    return PrefLampInputs(model, tok, tasks, pairs, feats, fkey, prefixes)


def preflamp_rm(cfg: StudyConfig, inputs: PrefLampInputs, method: str, cache: StudyCache):
    """The RM of ``method`` for studies 2-3: seed ``cfg.seeds[0]``, budget ``max(cfg.budgets)``,
    the full training set (no bootstrap), reward centre and scale over ``cfg.reward_norm``
    (prefixes of the training responses by default); cached (one sweep ``rm`` task)."""
    return train_rm(
        inputs.feats,
        method,
        cfg.seeds[0],
        max(cfg.budgets),
        cache,
        inputs.fkey,
        bootstrap=False,
        reward_norm=cfg.reward_norm,
        prefixes=inputs.train_prefixes,
    )


def preflamp_run(
    cfg: StudyConfig,
    model_name: str,
    cache: StudyCache,
    *,
    tasks=None,
    w_values=None,
    progress: bool = True,
    schedule: Schedule = NO_SCHEDULE,
) -> PrefLampRun:
    """Pairs, RMs, RM accuracy and all generations for one model: ``rm`` (one row per method),
    ``rm_pairs`` (one row per (method, test pair): model, method, user_id, pair_id, correct: each
    RM's per-pair correctness, for the paired RM-accuracy gap of claim 2) and ``generations`` (one
    row per user task x system; see :mod:`analysis.studies.generations`).

    The systems without a reward model (base, sampled base, ICL; cached) are generated first,
    before the features: a runner may have study 1 compute the Pref-LaMP features meanwhile, and
    ``schedule.wait_for_inputs()`` then waits for them instead of computing them twice.
    """
    ws = w_values or [cfg.rgd_w]

    def rm_free_first(model, tok, tasks, pairs):
        generate_systems(cfg, model, tok, tasks, cache, model_name, {}, ws, train_ids=train_pair_ids(pairs))
        schedule.wait_for_inputs()

    inputs = preflamp_inputs(cfg, model_name, cache, tasks, before_features=rm_free_first, schedule=schedule)
    model, tok, tasks, feats = inputs.model, inputs.tok, inputs.tasks, inputs.feats
    styles = synthetic_data(cfg).styles if cfg.preflamp_source == "synthetic" else None
    pairs = inputs.pairs
    test = feats.subset("test")
    seed, budget = cfg.seeds[0], max(cfg.budgets)
    rm_rows, rms, rm_pairs = [], {}, []
    for m in cfg.methods:
        rm = preflamp_rm(cfg, inputs, m, cache)
        acc, acc_df = rm_accuracy_row(rm, test, cfg)
        rm_pairs.append(acc_df[["user_id", "pair_id", "correct"]].assign(model=model_name, method=m))
        rm_rows.append(
            {
                "model": model_name,
                "method": m,
                "seed": seed,
                "budget": budget,
                **acc,
                "n_train_pairs": (getattr(rm, "fit_log_", {}) or {}).get("n_train_pairs"),
            }
        )
        rms[m] = rm
    train_ids = train_pair_ids(pairs)  # ICL parity (cfg.icl_pool)
    rows = generate_systems(cfg, model, tok, tasks, cache, model_name, rms, ws, train_ids=train_ids)
    gens = score_rows(cfg, rows, styles)
    gens.insert(1, "size_b", model_size_b(cfg, model_name, model))
    rm_pairs = pd.concat(rm_pairs, ignore_index=True) if rm_pairs else pd.DataFrame()
    return PrefLampRun(pd.DataFrame(rm_rows), rm_pairs, gens)


def _label(r) -> str:
    if r["kind"] == "base":
        return "base (greedy)"
    if r["kind"] == "base_sampled":
        return "base (sampled)"
    if r["kind"] == "icl":
        return f"ICL k={int(r['icl_k'])}"
    if r["kind"] == "bon":
        return f"{r['method']} (best-of-{r['system'].rsplit('_n', 1)[-1]})"
    return f"{r['method']} (ARGS w={r['w']:g})"


def preflamp_decoupling(
    cfg: StudyConfig,
    cache_dir: str | None = None,
    *,
    w_values: list[float] | None = None,
    tasks=None,
    progress: bool = True,
    schedule: Schedule = NO_SCHEDULE,
) -> dict[str, pd.DataFrame]:
    """Study 2 on the policy model (``schedule``: :func:`preflamp_run`). Returns tidy frames:

    - ``summary``: one row per system (kind ``base`` / ``icl`` / ``bon`` (best-of-n) / ``rgd``
      (ARGS)): method, label, rm_acc[_lo,_hi] (the method's RM; NaN for base and ICL),
      rouge1[_lo,_hi], rougeL[_lo,_hi], n_users, oracle_reward; ARGS rows are at ``w = cfg.rgd_w``.
    - ``generations``: every generation with its prompt, ROUGE, reward (RGD), oracle reward
      (synthetic users); ``w_values`` adds RGD generations at more weights (inspector).
    - ``comparisons``: paired tests over users (ROUGE-1, A - B): ICL (each k) vs each reward-guided
      system and vs base, each reward-guided system vs base.
    - ``profiles``: the users' profile items (for the inspector).
    - ``rm_pairs``: each method's RM correctness per held-out test pair (model, method, user_id,
      pair_id, correct in {0, 0.5, 1}): claim 2's paired RM-accuracy gap.
    """
    from analysis.metrics.intervals import paired_comparison

    cache = StudyCache(cache_dir)
    tasks = tasks if tasks is not None else user_tasks(cfg)
    ws = sorted({float(cfg.rgd_w), *(w_values or [])})
    run = preflamp_run(
        cfg, cfg.policy_model, cache, tasks=tasks, w_values=ws, progress=progress, schedule=schedule
    )
    gens = run.generations
    main = gens[(gens["kind"] != "rgd") | np.isclose(gens["w"].astype(float), cfg.rgd_w)]
    summ = system_summary(main, cfg)
    summ = summ.merge(
        run.rm[["method", "rm_acc", "rm_acc_lo", "rm_acc_hi", "n_test_pairs", "n_train_pairs"]],
        on="method",
        how="left",
    )
    summ.loc[~summ["kind"].isin(["rgd", "bon"]), ["rm_acc", "rm_acc_lo", "rm_acc_hi"]] = np.nan
    summ["label"] = summ.apply(_label, axis=1)
    summ["setting"] = cfg.preflamp_source  # real authors or the synthetic world
    summ["icl_pool"] = np.where(summ["kind"] == "icl", cfg.icl_pool, "")  # ICL parity: which items ICL saw
    comps = []
    systems = list(dict.fromkeys(main["system"]))
    icl = [s for s in systems if s.startswith("icl")]
    rgd = [s for s in systems if s.startswith(("rgd", "bon"))]
    pairs = [(i, r) for i in icl for r in rgd] + [(x, "base") for x in icl + rgd]
    if "base_sampled" in systems:  # what sampling costs, and what the RM adds over sampling
        pairs += [("base_sampled", "base")] + [(b, "base_sampled") for b in rgd if b.startswith("bon")]
    for a, b in pairs:
        c = paired_comparison(per_user(main, a), per_user(main, b), n_boot=cfg.n_boot, seed=cfg.seed)
        comps.append({"system_a": a, "system_b": b, "metric": "rouge1", **c})
    profiles = pd.DataFrame(
        [
            {"user_id": t.user_id, "item_id": p.item_id, "date": p.date, "input": p.input, "output": p.output}
            for t in tasks
            for p in t.profile
        ]
    ).drop_duplicates(["user_id", "item_id"])
    return {
        "summary": summ,
        "generations": gens,
        "comparisons": pd.DataFrame(comps),
        "profiles": profiles,
        "rm_pairs": run.rm_pairs,
    }


def selection_halves(user_ids, seed: int = 0) -> tuple[set[str], set[str]]:
    """Split the users in two fixed halves: ``(select, compare)``. Study 3 chooses its best ICL and
    best RGD systems on ``select`` and compares them on ``compare``. The split is a seeded
    permutation of the sorted distinct ids (the first ceil(n/2) select), the same for every model.

    >>> select, compare = selection_halves(["a", "b", "c", "d", "b"], seed=0)
    >>> sorted(select | compare), len(select), select & compare
    (['a', 'b', 'c', 'd'], 2, set())
    """
    users = sorted({str(u) for u in user_ids})
    order = np.random.default_rng(seed).permutation(len(users))
    cut = (len(users) + 1) // 2
    return {users[i] for i in order[:cut]}, {users[i] for i in order[cut:]}


def best_system(gens: pd.DataFrame, summ: pd.DataFrame, kinds, users: set[str]) -> str | None:
    """The system of ``kinds`` with the highest mean ROUGE-1 (per user, then over ``users``)."""
    cands = list(summ[summ["kind"].isin(list(kinds))]["system"])
    if not cands:
        return None
    g = gens[gens["system"].isin(cands) & gens["user_id"].astype(str).isin(users)]
    means = g.groupby(["system", "user_id"])["rouge1"].mean().groupby("system").mean()
    return str(means.reindex(cands).idxmax()) if means.notna().any() else cands[0]


def icl_vs_rgd_scale(
    cfg: StudyConfig,
    cache_dir: str | None = None,
    *,
    tasks=None,
    progress: bool = True,
    schedule: Schedule = NO_SCHEDULE,
) -> dict[str, pd.DataFrame]:
    """Study 3 across ``cfg.models`` (``schedule``: :func:`preflamp_run`). Returns tidy frames:

    - ``scale``: one row per (model, system) for base, each ICL k and the best RGD configuration
      (the ARGS or best-of-n system with the highest mean ROUGE-1 on the *selection* half of the
      users, :func:`selection_halves`), with size_b, rouge1[_lo,_hi], rougeL[_lo,_hi] over all users.
    - ``tests``: paired tests per model on the *other* half of the users only, so the choice of the
      best systems does not favour them (no winner's curse): best ICL vs best RGD, each ICL k vs
      best RGD, best RGD vs base, best ICL vs base (diff, ci_low, ci_high, wilcoxon_p, n_users,
      selected_on_users).
    - ``generations``: all generations of all models.
    """
    from analysis.metrics.intervals import paired_comparison

    cache = StudyCache(cache_dir)
    tasks = tasks if tasks is not None else user_tasks(cfg)
    scale_rows, tests, all_gens = [], [], []
    for name in tqdm(cfg.models, desc="models", disable=not progress):
        run = preflamp_run(
            cfg, name, cache, tasks=tasks, w_values=[cfg.rgd_w], progress=progress, schedule=schedule
        )
        gens = run.generations
        all_gens.append(gens)
        summ = system_summary(gens, cfg)
        size = float(gens["size_b"].iloc[0])
        select, compare = selection_halves(gens["user_id"], seed=cfg.seed)
        best_rgd = best_system(gens, summ, ("rgd", "bon"), select)
        best_icl = best_system(gens, summ, ("icl",), select)
        icl = summ[summ["kind"] == "icl"]
        held_out = gens[gens["user_id"].astype(str).isin(compare)]
        for _, r in summ.iterrows():
            reward_guided = r["kind"] in ("rgd", "bon")
            if reward_guided and r["system"] != best_rgd:
                continue
            system = "rgd_best" if reward_guided else r["system"]
            label = f"best RGD: {_label(r)}" if reward_guided else _label(r)
            scale_rows.append(
                {
                    "model": name,
                    "size_b": size,
                    "system": system,
                    "label": label,
                    "method": r["method"],
                    **{
                        c: r[c]
                        for c in (
                            "rouge1",
                            "rouge1_lo",
                            "rouge1_hi",
                            "rougeL",
                            "rougeL_lo",
                            "rougeL_hi",
                            "n_users",
                        )
                    },
                }
            )
        pairs = [(best_icl, best_rgd, "best ICL vs best RGD")]
        pairs += [(s, best_rgd, f"{s} vs best RGD") for s in icl["system"]]
        pairs += [(best_rgd, "base", "best RGD vs base"), (best_icl, "base", "best ICL vs base")]
        for a, b, what in pairs:
            if a is None or b is None:
                continue
            c = paired_comparison(
                per_user(held_out, a), per_user(held_out, b), n_boot=cfg.n_boot, seed=cfg.seed
            )
            tests.append(
                {
                    "model": name,
                    "size_b": size,
                    "comparison": what,
                    "system_a": a,
                    "system_b": b,
                    "metric": "rouge1",
                    "selected_on_users": len(select),
                    **c,
                }
            )
    scale = pd.DataFrame(scale_rows)
    order = {"base": 0, "rgd_best": 1}
    scale = scale.sort_values(
        ["size_b", "system"], key=lambda s: s.map(order).fillna(2) if s.name == "system" else s, kind="stable"
    ).reset_index(drop=True)
    return {
        "scale": scale,
        "tests": pd.DataFrame(tests),
        "generations": pd.concat(all_gens, ignore_index=True),
    }
