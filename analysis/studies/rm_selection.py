"""Study 5 (beyond the paper): which proxy selects the reward model that generates best?

A practitioner holding many candidate RMs picks one by a proxy measured on validation data. For
every RM of study 1's population on the real Pref-LaMP dataset (``<preflamp_source>_preflamp``:
methods x seeds x budgets; the ``normalize_reward=False`` sensitivity RMs are not candidates) this
study measures its generation quality and asks which proxy would have picked a good one:

- **Generation quality**: best-of-n with ``n = cfg.selection_n`` base samples per generation target
  (the authors' held-out articles, one row per ``(user_id, test_id)``), drawn ONCE at the
  documented sampling settings (:func:`analysis.studies.generations.draw_samples`: seeded per
  (prompt, sample), so study 2's best-of-4 samples are the first four), their features computed
  once (the feature store); every RM keeps its highest-reward sample (ties: the first; empty
  samples never win), scored by ROUGE-1 (``cfg.rouge_stemming``) against the real headline. The
  cost barely grows with the number of RMs. ARGS at ``cfg.rgd_w`` runs for one RM per (method,
  budget) cell (seed ``cfg.seeds[0]``), at most ``cfg.selection_args_cells`` cells (largest budget
  first, every method, then the next budget), all in one :func:`analysis.decoding.args.args_generate_multi` pass.
- **Proxies** (:data:`PROXIES`), from study 1's per-pair outcomes on the held-out preference pairs
  (the validation data of the selection) and, for the label-free one, from the samples:
  ``rm_acc``; ``policy_acc`` (score variant at ``rgd_w``, no length normalisation);
  ``policy_acc_policy`` (policy variant, when study 1 computed it); ``pa_gain`` (score-variant
  policy accuracy at ``rgd_w`` minus its value at ``w = 0``, same RM and pairs, when ``0`` is in
  ``w_values``); ``reward_spread`` (label-free: the mean over targets of the standard deviation of
  the RM's rewards over the samples).

Statistics (:func:`selection_statistics`, pure numpy on frames): one JOINT bootstrap
(:func:`joint_weights`) resamples users (authors), then, within each resampled user, its
preference pairs and its generation targets; every RM's proxies and mean ROUGE-1 (per user, then
over users) are recomputed on each replicate. Per proxy: Kendall's tau-b across RMs between the
proxy and ROUGE-1 (basic bootstrap interval, as claim 1's tau); the selected RM (highest proxy;
ties: the mean ROUGE-1 of the tied RMs), its ROUGE-1, its regret against the best RM (``pick -
best``, <= 0) and against a random pick (``pick - mean over RMs``), each with a 95% percentile
interval from the same replicates; and paired differences of the picks' ROUGE-1 between proxies
(:data:`COMPARISONS`). Finding 4 (:func:`analysis.studies.findings.claim4`) reads the paired
difference "policy accuracy vs RM accuracy" of best-of-n.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from analysis.config.schema import StudyConfig
from analysis.studies.cache import StudyCache, key_hash
from analysis.studies.models import model_key
from analysis.studies.schedule import NO_SCHEDULE, Schedule

log = logging.getLogger(__name__)
TIE_DECIMALS = 9  # proxies and ROUGE equal to 9 decimals are ties (summation order noise)
ALPHA = 0.05
BON, ARGS = "bon", "args"
MIN_RMS = 3  # fewer candidate RMs than this: no selection statistics for that system
PROXIES = {
    "rm_acc": "RM accuracy (held-out pairs)",
    "policy_acc": "policy accuracy (score, w = rgd_w)",
    "policy_acc_policy": "policy accuracy (policy variant, w = rgd_w)",
    "pa_gain": "policy accuracy gain over w = 0 (score)",
    "reward_spread": "label-free: reward spread over samples",
}
# (proxy a, proxy b): the paired difference ROUGE-1(a's pick) - ROUGE-1(b's pick); pairs whose
# proxies were not measured are left out
COMPARISONS = (
    ("policy_acc", "rm_acc"),
    ("policy_acc_policy", "rm_acc"),
    ("pa_gain", "rm_acc"),
    ("policy_acc", "reward_spread"),
    ("rm_acc", "reward_spread"),
)


# --------------------------------------------------------------------------- statistics (no models)


def _codes(values, names: list[str]) -> np.ndarray:
    at = {u: i for i, u in enumerate(names)}
    return np.array([at[str(v)] for v in values], dtype=int)


def point_weights(item_users, users: list[str]) -> np.ndarray:
    """Weights (n_items,) of the mean per user, then over users (users with no item left out)."""
    codes = _codes(item_users, users)
    n_u = np.bincount(codes, minlength=len(users)).astype(float)
    has = n_u > 0
    return 1.0 / (n_u[codes] * has.sum())


def joint_weights(
    pair_users, target_users, n_boot: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One joint two-level bootstrap of two item sets of the same users: ``(Wp, Wt, C)``.

    Each replicate draws users with replacement (``C[b, u]`` copies of user ``u``, from the union
    of both sets' users), then for every copy of a user draws that user's preference pairs and,
    independently, its generation targets with replacement. ``Wp`` (n_boot, n_pairs) and ``Wt``
    (n_boot, n_targets) are the weights of the per-user-then-over-users mean on each replicate
    (``Wp @ values``), so the pairs and the targets of one replicate come from the SAME users.
    A replicate where no drawn user has an item of a set has NaN weights there.
    """
    users = sorted({str(u) for u in pair_users} | {str(u) for u in target_users})
    rng = np.random.default_rng(seed)
    n_u = len(users)
    draws = rng.integers(0, n_u, size=(n_boot, n_u))
    counts = np.zeros((n_boot, n_u), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n_boot), n_u), draws.ravel()), 1)
    out = []
    for item_users in (pair_users, target_users):
        codes = _codes(item_users, users)
        w = np.zeros((n_boot, len(codes)))
        has = np.zeros(n_u, dtype=bool)
        for u in range(n_u):
            idx = np.flatnonzero(codes == u)
            if not idx.size:
                continue
            has[u] = True
            drawn = rng.multinomial(counts[:, u] * idx.size, np.full(idx.size, 1.0 / idx.size))
            w[:, idx] = drawn / idx.size
        total = counts[:, has].sum(axis=1).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            w = w / np.where(total > 0, total, np.nan)[:, None]
        out.append(w)
    return out[0], out[1], counts


def picked_value(proxy: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per row of ``proxy`` (B, R): the ``truth`` (B, R) of the RM with the highest proxy (ties to
    ``TIE_DECIMALS``: the mean truth of the tied RMs)."""
    p = np.round(np.atleast_2d(proxy), TIE_DECIMALS)
    t = np.atleast_2d(truth)
    tied = p == np.nanmax(p, axis=1, keepdims=True)
    return (tied * t).sum(axis=1) / tied.sum(axis=1)


def _pct(x: np.ndarray, alpha: float = ALPHA) -> tuple[float, float]:
    x = np.asarray(x, float)
    x = x[~np.isnan(x)]
    if not x.size:
        return float("nan"), float("nan")
    lo, hi = np.quantile(x, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _matrix(frame: pd.DataFrame, col: str, rm_ids: list[str], items: list[str]) -> np.ndarray:
    m = frame.pivot(index="rm_id", columns="_item", values=col).reindex(index=rm_ids, columns=items)
    a = m.to_numpy(float)
    if np.isnan(a).any():
        raise ValueError(f"selection statistics: column {col!r} is missing for some (RM, item)")
    return a


def selection_statistics(
    pairs: pd.DataFrame,
    targets: pd.DataFrame,
    proxies: list[str],
    *,
    truth: str = "rouge1",
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = ALPHA,
    comparisons=COMPARISONS,
) -> dict[str, pd.DataFrame]:
    """Proxies vs generation quality across RMs, on one joint bootstrap (module docstring).

    ``pairs``: one row per (rm_id, pair_id) with ``user_id`` and the per-pair proxy columns (e.g.
    ``rm_acc`` = the RM's correctness on that pair); ``targets``: one row per (rm_id, user_id,
    test_id) with ``truth`` (ROUGE-1 of the RM's generation) and the per-target proxy columns
    (``reward_spread``). Every RM of ``targets`` must have every pair and target. Each name in
    ``proxies`` is a column of one of the two frames; its per-RM value is its mean per user, then
    over users. Returns ``rms`` (one row per RM: each proxy and the truth with a 95% percentile
    interval), ``selection`` (one row per proxy: tau, tau_lo, tau_hi, selected, rouge1_selected
    (+ _lo, _hi), best_rm, rouge1_best, regret_best (+ _lo, _hi), regret_random (+ _lo, _hi),
    n_rms, n_users, n_pairs, n_targets) and ``comparisons`` (one row per measured pair of
    proxies: diff, ci_low, ci_high of ROUGE-1(a's pick) - ROUGE-1(b's pick)).
    """
    from analysis.metrics.tau import basic_interval, tau_b_weighted

    rm_ids = list(dict.fromkeys(targets["rm_id"].astype(str)))
    pairs = pairs.assign(rm_id=pairs["rm_id"].astype(str), _item=pairs["pair_id"].astype(str))
    pairs = pairs[pairs["rm_id"].isin(rm_ids)]
    targets = targets.assign(
        rm_id=targets["rm_id"].astype(str),
        _item=targets["user_id"].astype(str) + "\x1f" + targets["test_id"].astype(str),
    )
    p_items = list(dict.fromkeys(pairs["_item"]))
    t_items = list(dict.fromkeys(targets["_item"]))
    p_users = pairs.drop_duplicates("_item").set_index("_item").loc[p_items, "user_id"].astype(str)
    t_users = targets.drop_duplicates("_item").set_index("_item").loc[t_items, "user_id"].astype(str)
    users = sorted(set(p_users) | set(t_users))
    wp0, wt0 = point_weights(p_users, users), point_weights(t_users, users)
    wp, wt, _ = joint_weights(list(p_users), list(t_users), n_boot, seed)
    point, boot = {}, {}
    for name in [*proxies, truth]:
        if name in targets.columns:
            a, w0, w = _matrix(targets, name, rm_ids, t_items), wt0, wt
        elif name in pairs.columns:
            a, w0, w = _matrix(pairs, name, rm_ids, p_items), wp0, wp
        else:
            raise ValueError(f"selection statistics: no column {name!r} in the pairs or targets")
        point[name], boot[name] = a @ w0, w @ a.T  # (R,), (B, R)
    t0, tb = point[truth], boot[truth]
    rms = pd.DataFrame({"rm_id": rm_ids})
    for name in [*proxies, truth]:
        lo, hi = zip(*(_pct(boot[name][:, r], alpha) for r in range(len(rm_ids))), strict=True)
        rms[name], rms[f"{name}_lo"], rms[f"{name}_hi"] = point[name], lo, hi
    common = {
        "n_rms": len(rm_ids),
        "n_users": len(users),
        "n_pairs": len(p_items),
        "n_targets": len(t_items),
    }
    rows, picks, picks_boot = [], {}, {}
    best_i = int(np.argmax(np.round(t0, TIE_DECIMALS)))
    for name in proxies:
        x0 = np.round(point[name], TIE_DECIMALS)
        tau = float(tau_b_weighted(x0[None], np.round(t0, TIE_DECIMALS)[None])[0])
        taus = tau_b_weighted(np.round(boot[name], TIE_DECIMALS), np.round(tb, TIE_DECIMALS))
        tau_lo, tau_hi = basic_interval(tau, taus, alpha)
        pick0 = float(picked_value(point[name][None], t0[None])[0])
        pickb = picked_value(boot[name], tb)
        picks[name], picks_boot[name] = pick0, pickb
        selected = [rm_ids[i] for i in np.flatnonzero(x0 == x0.max())]
        reg_best, reg_rand = pickb - tb.max(axis=1), pickb - tb.mean(axis=1)
        rows.append(
            {
                "proxy": name,
                "description": PROXIES.get(name, name),
                "tau": tau,
                "tau_lo": tau_lo,
                "tau_hi": tau_hi,
                "selected": ";".join(selected),
                "n_selected": len(selected),
                "rouge1_selected": pick0,
                **dict(zip(("rouge1_selected_lo", "rouge1_selected_hi"), _pct(pickb, alpha), strict=True)),
                "best_rm": rm_ids[best_i],
                "rouge1_best": float(t0.max()),
                "rouge1_mean": float(t0.mean()),
                "regret_best": pick0 - float(t0.max()),
                **dict(zip(("regret_best_lo", "regret_best_hi"), _pct(reg_best, alpha), strict=True)),
                "regret_random": pick0 - float(t0.mean()),
                **dict(zip(("regret_random_lo", "regret_random_hi"), _pct(reg_rand, alpha), strict=True)),
                **common,
            }
        )
    comps = []
    for a, b in comparisons:
        if a in picks and b in picks:
            lo, hi = _pct(picks_boot[a] - picks_boot[b], alpha)
            comps.append(
                {
                    "comparison": f"{a} vs {b}",
                    "proxy_a": a,
                    "proxy_b": b,
                    "diff": picks[a] - picks[b],
                    "ci_low": lo,
                    "ci_high": hi,
                    **common,
                }
            )
    return {"rms": rms, "selection": pd.DataFrame(rows), "comparisons": pd.DataFrame(comps)}


def pair_proxies(per_pair: pd.DataFrame, cfg: StudyConfig) -> tuple[pd.DataFrame, list[str]]:
    """Per-pair proxy columns from study 1's ``per_pair`` frame (rm_id, user_id, pair_id,
    rm_correct, :func:`analysis.studies.rm_policy.pa_column` outcomes): ``rm_acc``,
    ``policy_acc``, ``policy_acc_policy`` and ``pa_gain`` where measured; returns the frame and the
    proxy names it holds."""
    from analysis.studies.rm_policy import pa_column

    out = per_pair[["rm_id", "user_id", "pair_id"]].astype(str).copy()
    out["rm_acc"] = per_pair["rm_correct"].to_numpy(float)
    names = ["rm_acc"]
    score = pa_column("score", False, cfg.rgd_w)
    if score in per_pair.columns:
        out["policy_acc"] = per_pair[score].to_numpy(float)
        names.append("policy_acc")
    policy = pa_column("policy", False, cfg.rgd_w)
    if policy in per_pair.columns and per_pair[policy].notna().all():
        out["policy_acc_policy"] = per_pair[policy].to_numpy(float)
        names.append("policy_acc_policy")
    zero = pa_column("score", False, 0.0)
    if score in per_pair.columns and zero in per_pair.columns and abs(cfg.rgd_w) > 1e-12:
        out["pa_gain"] = per_pair[score].to_numpy(float) - per_pair[zero].to_numpy(float)
        names.append("pa_gain")
    return out, names


# --------------------------------------------------------------------------- model work (cached)


def selection_dataset(cfg: StudyConfig) -> str:
    """The study-1 dataset whose RM population is selected from: ``<preflamp_source>_preflamp``
    (its pairs come from the same users' profiles as the generation targets)."""
    return f"{cfg.preflamp_source}_preflamp"


def population(
    cfg: StudyConfig, ds: str, inputs, cache: StudyCache, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Study 1's ``points`` and ``per_pair`` of the candidate RMs (methods x seeds x budgets, reward
    normalisation on): :func:`analysis.studies.rm_policy.rm_points` per RM (a cache hit after
    notebook 01)."""
    from tqdm.auto import tqdm

    from analysis.studies.rm_policy import rm_points

    specs = [(m, s, b, True) for m in cfg.methods for s in cfg.seeds for b in cfg.budgets]
    bar = tqdm(specs, desc=f"{ds}: RM population", disable=not progress)
    got = [rm_points(cfg, ds, spec, inputs, cache) for spec in bar]
    return (
        pd.concat([p for p, _ in got], ignore_index=True),
        pd.concat([pp for _, pp in got], ignore_index=True),
    )


def selection_samples(cfg: StudyConfig, model, tok, tasks, cache: StudyCache) -> tuple[list, list]:
    """``(prompts, samples)``: ``cfg.selection_n`` base samples per target (drawn once, cached)."""
    from analysis.studies.generations import draw_samples

    params = {"task": cfg.task, "max_new_tokens": cfg.max_new_tokens, "batch_size": cfg.batch_size}
    return draw_samples(cfg, model, tok, tasks, params, cfg.selection_n, {}, cache)


def sample_features(cfg: StudyConfig, model, tok, prompts, samples, cache: StudyCache):
    """Features of every non-empty sample (the feature store: computed once for all RMs) and the
    (target, sample) index of each row."""
    from analysis.studies.rms import feature_store

    flat = [(i, j) for i in range(len(prompts)) for j in range(len(samples[i])) if samples[i][j].strip()]
    store = feature_store(cfg, model, tok, cache)
    feats = store.get(
        [prompts[i] for i, _ in flat], [samples[i][j] for i, j in flat], batch_size=cfg.batch_size
    )
    return feats, flat


def rank_samples(rm, tasks, samples, feats, flat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One RM's best-of-n over the shared samples: per target the picked sample (its highest reward;
    ties: the first; empty samples never win; all empty: sample 0), that reward (NaN when all are
    empty) and the spread (std) of its rewards over the non-empty samples (0 with fewer than 2)."""
    n_t = len(tasks)
    n_s = max((len(s) for s in samples), default=0)
    r = np.full((n_t, n_s), np.nan)
    if flat:
        vals = rm.reward([tasks[i].user_id for i, _ in flat], feats).detach().cpu().numpy().astype(float)
        ii, jj = (np.array(x) for x in zip(*flat, strict=True))
        r[ii, jj] = vals
    filled = np.where(np.isnan(r), -np.inf, r)
    pick = np.argmax(filled, axis=1)  # first maximum
    top = filled.max(axis=1)
    reward = np.where(np.isfinite(top), top, np.nan)
    spread = np.zeros(n_t)
    for i in range(n_t):
        v = r[i][~np.isnan(r[i])]
        spread[i] = float(v.std()) if v.size >= 2 else 0.0
    return pick, reward, spread


def args_cells(cfg: StudyConfig) -> list[tuple[str, int, int]]:
    """The (method, seed, budget) RMs ARGS runs for: one per (method, budget) cell at seed
    ``cfg.seeds[0]``, largest budget first (every method), at most ``cfg.selection_args_cells``."""
    cells = [(m, cfg.seeds[0], b) for b in sorted(cfg.budgets, reverse=True) for m in cfg.methods]
    return cells[: max(0, cfg.selection_args_cells)]


def selection_args(cfg: StudyConfig, model, tok, tasks, rms: dict, cache: StudyCache) -> dict:
    """ARGS at ``cfg.rgd_w`` for every RM of ``rms`` (rm_id -> RM) in one
    :func:`analysis.decoding.args.args_generate_multi` pass; cached: rm_id -> [{text, reward}]."""
    from analysis.config.algorithms import args_config
    from analysis.decoding.args import args_generate_multi
    from analysis.generation.methods import base_prompt

    if not rms:
        return {}
    acfg = args_config(cfg, cfg.rgd_w)
    prompts = [base_prompt(cfg.task, t) for t in tasks]
    users = [t.user_id for t in tasks]
    names = list(rms)
    key = {
        "model": model_key(model),
        "prompts": key_hash(prompts),
        "users": users,
        "rms": [getattr(rms[n], "study_key_", n) for n in names],
        "args": [acfg.w, acfg.k, acfg.max_new_tokens, acfg.batch_size],
    }

    def run():
        outs = args_generate_multi(model, tok, [rms[n] for n in names], prompts, users, acfg, progress=True)
        return {
            n: [{"text": o.text, "reward": float(o.reward)} for o in out]
            for n, out in zip(names, outs, strict=True)
        }

    return cache.json("selection_args", key, run)


def rm_selection(
    cfg: StudyConfig,
    cache_dir: str | None = None,
    *,
    progress: bool = True,
    schedule: Schedule = NO_SCHEDULE,
) -> dict[str, pd.DataFrame]:
    """Run study 5 (module docstring). Returns tidy frames:

    - ``rms``: one row per candidate RM: dataset, rm_id, method, seed, budget, each proxy and
      ``rouge1`` (best-of-n) with 95% intervals (the joint bootstrap), ``rouge1_args`` where ARGS ran.
    - ``generations``: one row per (RM, target, system ``bon`` | ``args``): dataset, rm_id,
      method, seed, budget, system, user_id, test_id, sample (best-of-n: the picked sample), text,
      reference, reward, rouge1, reward_spread (best-of-n).
    - ``selection``: one row per (system, proxy) (:func:`selection_statistics`) plus dataset.
    - ``comparisons``: one row per (system, pair of proxies): the paired difference of the picks' ROUGE-1.
    """
    from analysis.studies.datasets import check_datasets, user_tasks
    from analysis.studies.generations import rouge_f
    from analysis.studies.rm_policy import study1_inputs
    from analysis.studies.rms import train_rm

    cache = StudyCache(cache_dir)
    check_datasets(cfg)
    ds = selection_dataset(cfg)
    inputs = study1_inputs(cfg, ds, cache, schedule)
    points, per_pair = population(cfg, ds, inputs, cache, progress)
    model, tok = inputs.model, inputs.tok
    tasks = user_tasks(cfg, cfg.preflamp_source)
    prompts, samples = selection_samples(cfg, model, tok, tasks, cache)
    feats, flat = sample_features(cfg, model, tok, prompts, samples, cache)
    refs = [t.test_output or "" for t in tasks]
    flat_all = [(i, j) for i in range(len(tasks)) for j in range(len(samples[i]))]
    r1, _ = rouge_f([samples[i][j] for i, j in flat_all], [refs[i] for i, _ in flat_all], cfg.rouge_stemming)
    rouge = np.full((len(tasks), max(len(s) for s in samples)), np.nan)
    for (i, j), v in zip(flat_all, r1, strict=True):
        rouge[i, j] = v
    meta = points.drop_duplicates("rm_id").set_index("rm_id")
    rm_objs, rows = {}, []
    for rm_id, r in meta.iterrows():
        rm = train_rm(
            inputs.feats,
            r["method"],
            int(r["seed"]),
            int(r["budget"]),
            cache,
            inputs.fkey,
            cfg.rm_bootstrap,
            budgets=list(cfg.budgets),
        )
        rm_objs[rm_id] = rm
        pick, reward, spread = rank_samples(rm, tasks, samples, feats, flat)
        for i, t in enumerate(tasks):
            rows.append(
                {
                    "rm_id": rm_id,
                    "system": BON,
                    "user_id": str(t.user_id),
                    "test_id": str(t.test_id),
                    "sample": int(pick[i]),
                    "text": samples[i][pick[i]],
                    "reference": refs[i],
                    "reward": reward[i],
                    "rouge1": rouge[i, pick[i]],
                    "reward_spread": spread[i],
                }
            )
    cell_ids = [f"{m}/s{s}/b{b}" for m, s, b in args_cells(cfg)]
    args_out = selection_args(
        cfg, model, tok, tasks, {c: rm_objs[c] for c in cell_ids if c in rm_objs}, cache
    )
    if args_out:
        texts = [
            (rm_id, i, o["text"], o["reward"]) for rm_id, outs in args_out.items() for i, o in enumerate(outs)
        ]
        a1, _ = rouge_f([x[2] for x in texts], [refs[x[1]] for x in texts], cfg.rouge_stemming)
        for (rm_id, i, text, rew), v in zip(texts, a1, strict=True):
            rows.append(
                {
                    "rm_id": rm_id,
                    "system": ARGS,
                    "user_id": str(tasks[i].user_id),
                    "test_id": str(tasks[i].test_id),
                    "sample": -1,
                    "text": text,
                    "reference": refs[i],
                    "reward": rew,
                    "rouge1": v,
                    "reward_spread": np.nan,
                }
            )
    info = meta[["method", "seed", "budget"]].reset_index()
    gens = pd.DataFrame(rows).merge(info, on="rm_id", how="left")
    gens.insert(0, "dataset", ds)
    pp, names = pair_proxies(per_pair, cfg)
    results = {}
    bon = gens[gens["system"] == BON]
    results[BON] = selection_statistics(pp, bon, [*names, "reward_spread"], n_boot=cfg.n_boot, seed=cfg.seed)
    arg = gens[gens["system"] == ARGS]
    if arg["rm_id"].nunique() >= MIN_RMS:
        # the label-free proxy comes from the best-of-n samples of the same RMs
        spread = bon[bon["rm_id"].isin(set(arg["rm_id"]))][["rm_id", "user_id", "test_id", "reward_spread"]]
        arg = arg.drop(columns=["reward_spread"]).merge(spread, on=["rm_id", "user_id", "test_id"])
        results[ARGS] = selection_statistics(
            pp, arg, [*names, "reward_spread"], n_boot=cfg.n_boot, seed=cfg.seed
        )
    rms = info.assign(dataset=ds)[["dataset", "rm_id", "method", "seed", "budget"]]
    rms = rms.merge(results[BON]["rms"], on="rm_id", how="left")
    if ARGS in results:
        a = results[ARGS]["rms"][["rm_id", "rouge1", "rouge1_lo", "rouge1_hi"]]
        rms = rms.merge(
            a.rename(columns=lambda c: c.replace("rouge1", "rouge1_args")), on="rm_id", how="left"
        )
    else:
        rms["rouge1_args"] = np.nan
    sel = pd.concat(
        [res["selection"].assign(system=s) for s, res in results.items()], ignore_index=True
    ).assign(dataset=ds)
    comps = pd.concat(
        [res["comparisons"].assign(system=s) for s, res in results.items()], ignore_index=True
    ).assign(dataset=ds)
    log.info("study 5: %d RMs, %d targets, %d ARGS RMs", len(rms), len(tasks), len(args_out))
    return {"rms": rms, "generations": gens, "selection": sel, "comparisons": comps}
