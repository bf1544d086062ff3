"""Study 1: RM accuracy vs policy accuracy across a population of RMs (design section 2, claim 1).

For each dataset, a population of RMs (methods x seeds x training budgets) is trained on the
train split of its preference pairs (early stopping on val). On the held-out test pairs each RM
gets

- RM accuracy ``mean 1[r_u(x, y_w) > r_u(x, y_l)]`` (per user, then over users, bootstrap CI);
- policy accuracy for each variant (``score``, ``policy``), with and without length
  normalisation, at each ``w`` in ``cfg.w_values`` (:mod:`analysis.evaluation.policy_accuracy`).

Across the population, Kendall's tau-b between the two is computed per (dataset, variant,
length_norm, w) with :func:`analysis.metrics.tau.honest_tau`. Its headline interval is over the
trained population: the replicate resamples the shared test set (users, then pairs), recomputes
every RM's two accuracies on that resample and redraws the seeds within each (method, budget)
cell; the p-value inverts the same replicates. The interval resampling whole methods
("generalise over methods") and the naive one resampling RMs as exact points are sensitivity
columns; the split-half reliability of each accuracy and tau corrected for attenuation come with
it. The per-pair outcomes this needs are cached next to the tables (``per_pair``). A population
below ~20 RMs gives an unstable tau; the study warns when that happens.

Reward normalisation (a documented deviation from plain ARGS, which used raw RM scores): every
RM's rewards are centred per user and divided by their spread (:class:`analysis.rewards.base.RMConfig`),
both measured over every prefix ``y_<=t`` of the train split's responses (``cfg.reward_norm =
"prefix"``, the default): ARGS and policy accuracy add ``w * r_u(x, y_<=t)`` at every step, so only
prefix statistics give w one meaning across methods and budgets. The prefixes come from one cached
prefix pass over the training pairs (:func:`train_prefixes`, the test pairs' policy-accuracy pass
without candidates), whose last positions also seed the training responses' RM features, so the
feature pass has nothing left to compute. ``reward_norm = "response"`` uses the full training
responses. As a sensitivity check each method also gets one RM (first seed, largest budget)
trained with ``normalize_reward=False``: its rows carry ``normalize_reward = False`` and
``sensitivity = True`` and are left out of tau.

Beside policy accuracy each point carries ``policy_acc_gain``, PA(w) - PA(w = 0) of the same RM,
variant and length_norm with a paired bootstrap interval (:func:`policy_acc_gain`): what the reward
adds to the base policy's own ranking.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.config.schema import StudyConfig
from analysis.studies.cache import StudyCache, key_hash
from analysis.studies.datasets import Dataset, check_datasets, study1_dataset
from analysis.studies.findings import PA_FLOOR
from analysis.studies.models import get_model, model_key
from analysis.studies.rms import check_splits, feature_key, features, rm_accuracy_row, train_rm
from analysis.studies.schedule import NO_SCHEDULE, Schedule

log = logging.getLogger(__name__)
MIN_STABLE_POPULATION = 20
TIE_DECIMALS = 9
HEADLINE_INTERVAL = "test set x seeds in cells"


def pa_column(variant: str, length_norm: bool, w: float) -> str:
    """Column of the per-pair frame holding policy correctness of one (variant, length_norm, w)."""
    return f"pa|{variant}|{int(bool(length_norm))}|{float(w):g}"


def pa_data(
    cfg: StudyConfig,
    model,
    tok,
    test_pairs,
    cache: StudyCache,
    fkey: str,
    progress: bool = False,
    policy: bool | None = None,
):
    """:class:`analysis.evaluation.policy_accuracy.PAData` of the test pairs (log-probs, prefix features, top-k
    candidates: the RM-independent, expensive part of policy accuracy), prepared once per dataset
    and cached as ``pa_data/<key>.safetensors`` + ``.json`` so that per-RM work (in this or in
    other processes: sweep tasks) reuses it. ``policy=False`` skips the candidate pass whatever
    ``cfg.pa_variants`` say (the prefix pass over the training pairs, :func:`train_prefixes`)."""
    import json

    from safetensors.torch import load_file, save

    from analysis.config.algorithms import pa_data_kwargs
    from analysis.evaluation.policy_accuracy import PAData, SideData, prepare_pa_data
    from analysis.io import atomic_open, read_json, write_json

    kw = pa_data_kwargs(cfg)  # the top-k candidate pass only when the policy variant needs it
    if policy is not None:
        kw["policy"] = bool(policy) and kw["policy"]
    key = key_hash(
        {
            "feat": fkey,
            "pairs": [p.pair_id for p in test_pairs],
            "k": kw["k"],
            "layer": kw["layer"],
            "bs": kw["batch_size"],
            **({} if kw["policy"] else {"policy": False}),
        }
    )
    tens, meta = cache.root / "pa_data" / f"{key}.safetensors", cache.root / "pa_data" / f"{key}.json"
    if not (tens.exists() and meta.exists()):
        data = prepare_pa_data(model, tok, test_pairs, **kw, progress=progress)
        flat = {
            f"{side}.{f}": getattr(getattr(data, side), f).contiguous()
            for side in ("chosen", "rejected")
            for f in SideData.__dataclass_fields__
            if getattr(getattr(data, side), f) is not None
        }
        tens.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(tens, "wb") as fh:
            fh.write(save(flat))
        fields = ("user_ids", "pair_ids", "prompts", "model_id", "layer", "k")
        write_json(meta, json.loads(json.dumps({f: getattr(data, f) for f in fields})))  # meta last
    m, t = read_json(meta), load_file(str(tens))
    sides = {
        side: SideData(**{f: t.get(f"{side}.{f}") for f in SideData.__dataclass_fields__})
        for side in ("chosen", "rejected")
    }
    return PAData(**m, **sides)


@dataclass
class Study1Inputs:
    """What every RM of one study-1 dataset is trained and evaluated on (:func:`study1_inputs`).

    ``model, tok``: the policy; ``data``: the dataset's pairs; ``feats``: their
    :class:`~analysis.features.passes.PairFeatures`; ``fkey``: the features' cache key (it keys the RMs);
    ``test_pairs``: the held-out pairs; ``pa_data``: their
    :class:`~analysis.evaluation.policy_accuracy.PAData` once prepared (:func:`rm_points` fills it on first use);
    ``train_prefixes``: :class:`~analysis.rewards.base.PrefixRows` of every prefix of the training
    responses (``cfg.reward_norm = "prefix"``; None with ``response``).
    """

    model: object
    tok: object
    data: Dataset
    feats: object
    fkey: str
    test_pairs: list
    pa_data: object | None = None
    train_prefixes: object | None = None


def dataset_config(cfg: StudyConfig, ds: str) -> StudyConfig:
    """``cfg`` as study 1 applies it to dataset ``ds``: with ``pa_policy_datasets: real`` a dataset
    that is not real evidence (:func:`analysis.studies.datasets.is_real`: this project's synthetic
    known-answer checks) gets the ``score`` variant only, which saves its top-k candidate pass."""
    from dataclasses import replace

    from analysis.studies.datasets import is_real

    if cfg.pa_policy_datasets == "real" and not is_real(ds) and "policy" in cfg.pa_variants:
        return replace(cfg, pa_variants=[v for v in cfg.pa_variants if v != "policy"] or ["score"])
    return cfg


def study1_inputs(
    cfg: StudyConfig, ds: str, cache: StudyCache, schedule: Schedule = NO_SCHEDULE
) -> Study1Inputs:
    """Pairs and features of one study-1 dataset on the policy model (one sweep ``features`` task)."""
    from analysis.features.passes import supports_prompt_sharing

    cfg = dataset_config(cfg, ds)

    model, tok = get_model(cfg, schedule=schedule)
    data = study1_dataset(cfg, ds, model, tok, cache)
    check_splits(data.pairs, ds)  # before any feature or policy-accuracy pass
    fkey = feature_key(cfg, model, tok, data.pairs)
    test_pairs = [p for p in data.pairs if p.split == "test"]
    prepared = None
    if test_pairs and supports_prompt_sharing(model):
        # the policy-accuracy pass runs every test response in full: its last positions are those
        # responses' RM features, so the feature store gets them from it instead of a second pass
        prepared = pa_data(cfg, model, tok, test_pairs, cache, fkey)
        seed_feature_store(cfg, model, tok, cache, prepared, test_pairs)
    prefixes = train_prefixes(cfg, model, tok, data.pairs, cache, fkey)
    feats = features(cfg, model, tok, data.pairs, cache)
    check_splits(feats, ds)
    return Study1Inputs(model, tok, data, feats, fkey, test_pairs, prepared, prefixes)


def train_prefixes(cfg: StudyConfig, model, tok, pairs, cache: StudyCache, fkey: str):
    """:class:`analysis.rewards.base.PrefixRows` of every prefix of the train split's responses of
    ``pairs`` (``cfg.reward_norm = "prefix"``; None with ``response``): the RMs fit their reward
    centre and scale on them (:meth:`analysis.rewards.base.RewardModel.fit_reward_normalisation`).

    They come from the same cached prefix pass as the test pairs' policy-accuracy data
    (:func:`pa_data`, without the candidate pass); its last position of each response is that
    response's RM feature, so it also seeds the feature store (:func:`seed_feature_store`) and the
    training pairs need no separate feature pass: the prefix statistics cost about nothing extra.
    """
    from analysis.config.algorithms import train_prefix_kwargs
    from analysis.evaluation.policy_accuracy import prefix_rows
    from analysis.features.passes import supports_prompt_sharing

    train = [p for p in pairs if p.split == "train"]
    if train_prefix_kwargs(cfg) is None or not train:
        return None
    data = pa_data(cfg, model, tok, train, cache, fkey, policy=False)
    if supports_prompt_sharing(model):
        seed_feature_store(cfg, model, tok, cache, data, train)
    return prefix_rows(data)


def seed_feature_store(cfg: StudyConfig, model, tok, cache: StudyCache, data, pairs) -> int:
    """Put the full-response features of :class:`analysis.evaluation.policy_accuracy.PAData` of ``pairs`` (the
    last prefix feature of each response) into the studies' feature store; returns rows added."""
    import torch

    from analysis.studies.rms import feature_store

    if list(data.pair_ids) != [p.pair_id for p in pairs]:
        raise ValueError("policy-accuracy data and pairs are not in the same order")
    prompts, responses, rows = [], [], []
    for side in ("chosen", "rejected"):
        sd = getattr(data, side)
        last = torch.cumsum(sd.lengths, 0) - 1
        rows.append(sd.feats[last].float())
        prompts += [p.prompt for p in pairs]
        responses += [getattr(p, side) for p in pairs]
    return feature_store(cfg, model, tok, cache).put(prompts, responses, torch.cat(rows))


def dataset_card_row(data) -> dict:
    """One row of the ``cards`` table: a study-1 dataset's users, prompts, pairs per split and the rows
    its loader dropped (a :class:`analysis.studies.datasets.Dataset`; its card, or one from its pairs)."""
    from analysis.data.preferences import preference_card

    card = data.card or preference_card(data.pairs, name=data.name, source=data.name, task="")
    splits = {s: sum(p.split == s for p in data.pairs) for s in ("train", "val", "test")}
    return {
        "dataset": data.name,
        "source": card.source,
        "n_users": card.n_users,
        "n_prompts": card.n_items,
        "n_pairs": len(data.pairs),
        **{f"n_{s}": n for s, n in splits.items()},
        "dropped": sum(card.dropped.values()),
        "dropped_why": "; ".join(f"{n} {why}" for why, n in card.dropped.items() if n),
        "notes": card.notes,
    }


def rm_points(
    cfg: StudyConfig, ds: str, rm_spec: tuple, inputs: Study1Inputs, cache: StudyCache
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Study-1 rows of ONE RM ``rm_spec = (method, seed, budget, normalize_reward)``: its ``points``
    (RM accuracy + policy accuracy at every (variant, length_norm, w)) and its ``per_pair``
    outcomes, each cached (``study1_rm_points`` / ``study1_rm_per_pair``; one sweep
    ``policy_accuracy`` task). ``inputs``: :func:`study1_inputs` (its ``pa_data`` is filled on
    first use). Both frames are returned as read back from the cache, so a fresh and a resumed
    (or swept) run assemble identical study tables."""
    from analysis.config.algorithms import policy_accuracy_config
    from analysis.evaluation.policy_accuracy import policy_accuracy

    cfg = dataset_config(cfg, ds)
    pac = policy_accuracy_config(cfg)
    m, s, b, norm = rm_spec
    model, tok, feats, fkey = inputs.model, inputs.tok, inputs.feats, inputs.fkey
    key = {
        "study": 1,
        "feat": fkey,
        "rm": [m, s, b, cfg.rm_bootstrap, norm],
        "w": list(cfg.w_values),
        "k": cfg.k,
        "model": model_key(model),
        "n_boot": cfg.n_boot,
        "seed": cfg.seed,
        "reward_norm": cfg.reward_norm,
        "v": 2,
        **({} if list(cfg.pa_variants) == ["score", "policy"] else {"variants": list(cfg.pa_variants)}),
    }
    held: dict = {}

    def run():
        rm = train_rm(
            feats,
            m,
            s,
            b,
            cache,
            fkey,
            cfg.rm_bootstrap,
            normalize_reward=norm,
            budgets=list(cfg.budgets) if norm else None,
            reward_norm=cfg.reward_norm,
            prefixes=inputs.train_prefixes,
        )
        rm_id = f"{m}/s{s}/b{b}" + ("" if norm else "/raw")
        acc, acc_df = rm_accuracy_row(rm, feats.subset("test"), cfg)
        fit = getattr(rm, "fit_log_", {}) or {}
        row = {
            "dataset": ds,
            "rm_id": rm_id,
            "method": m,
            "seed": s,
            "budget": b,
            "steps_run": fit.get("steps_run"),
            "n_train_pairs": fit.get("n_train_pairs"),
            "normalize_reward": norm,
            "sensitivity": not norm,
            **acc,
        }
        if inputs.pa_data is None:
            inputs.pa_data = pa_data(cfg, model, tok, inputs.test_pairs, cache, fkey)
        res = policy_accuracy(rm, inputs.pa_data, pac, tok=tok)
        pa = res.summary.rename(
            columns={"mean": "policy_acc", "ci_low": "policy_acc_lo", "ci_high": "policy_acc_hi"}
        )
        pa.insert(0, "rm_id", rm_id)
        pa = pa[["rm_id", "variant", "length_norm", "w", "policy_acc", "policy_acc_lo", "policy_acc_hi"]]
        pp = res.per_pair.assign(
            col=[pa_column(*k) for k in res.per_pair[["variant", "length_norm", "w"]].values]
        )
        wide = pp.pivot(index="pair_id", columns="col", values="correct").reset_index()
        wide = wide.rename_axis(columns=None).assign(rm_id=rm_id)
        rm_long = acc_df[["user_id", "pair_id", "correct"]].assign(rm_id=rm_id, method=m)
        rm_long = rm_long.rename(columns={"correct": "rm_correct"})
        held["per_pair"] = rm_long.merge(wide, on=["rm_id", "pair_id"], how="left").assign(dataset=ds)
        return pd.DataFrame([row]).merge(pa, on="rm_id", how="left")

    def run_pairs():
        if "per_pair" not in held:
            run()
        return held["per_pair"]

    cache.frame("study1_rm_points", key, run)
    cache.frame("study1_rm_per_pair", key, run_pairs)

    def missing():
        raise RuntimeError("study-1 cache entry vanished while being read")

    return cache.frame("study1_rm_points", key, missing), cache.frame("study1_rm_per_pair", key, missing)


def policy_acc_gain(points: pd.DataFrame, per_pair: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """``points`` with ``policy_acc_gain`` = PA(w) - PA(w = 0) of the same RM, variant and
    length_norm and its 95% interval (``policy_acc_gain_lo``, ``policy_acc_gain_hi``): how much the
    reward moves policy accuracy away from what the base policy alone ranks (the score variant at
    w = 0 is the base model's ranking accuracy, the same for every RM).

    Paired on the same test pairs: each pair's difference of correctness at w and at 0 (from
    ``per_pair``, the :func:`pa_column` outcomes), per user then over users, with the same
    two-level bootstrap (users, then pairs; ``cfg.n_boot``, ``cfg.seed``) as policy accuracy
    itself (:func:`analysis.metrics.intervals.summarize_by_user`). At w = 0 the gain is exactly 0;
    NaN when w = 0 is not among ``cfg.w_values``.
    """
    from analysis.metrics.intervals import summarize_by_user

    out = points.copy()
    gain = np.full(len(out), np.nan)
    lo, hi = gain.copy(), gain.copy()
    groups = {k: g for k, g in per_pair.groupby(["dataset", "rm_id"], sort=False)}
    for i, r in enumerate(out[["dataset", "rm_id", "variant", "length_norm", "w"]].itertuples(index=False)):
        g = groups.get((str(r.dataset), str(r.rm_id)))
        col, zero = pa_column(r.variant, r.length_norm, r.w), pa_column(r.variant, r.length_norm, 0.0)
        if g is None or col not in g.columns or zero not in g.columns:
            continue
        diff = g[col].to_numpy(float) - g[zero].to_numpy(float)
        s = summarize_by_user(list(g["user_id"]), diff, n_boot=cfg.n_boot, seed=cfg.seed)
        gain[i], lo[i], hi[i] = s["mean"], s["ci_low"], s["ci_high"]
    at = out.columns.get_loc("policy_acc_hi") + 1 if "policy_acc_hi" in out.columns else len(out.columns)
    for j, (name, v) in enumerate(
        (("policy_acc_gain", gain), ("policy_acc_gain_lo", lo), ("policy_acc_gain_hi", hi))
    ):
        out.insert(at + j, name, v)
    return out


def policy_acc_gain_table(points: pd.DataFrame) -> pd.DataFrame:
    """Policy accuracy beside its gain over w = 0, one row per (dataset, variant, length_norm, w)
    over the population (the ``normalize_reward = False`` sensitivity RMs left out): ``n_rms``,
    the median ``policy_acc``, ``pa_mid_share`` (share in (0.05, 0.95)), the median
    ``policy_acc_gain`` and the shares of RMs whose gain's 95% interval lies above 0
    (``gain_above_0``) or below 0 (``gain_below_0``)."""
    p = points
    if "sensitivity" in p.columns:
        p = p[~p["sensitivity"].fillna(False).astype(bool)]
    rows = []
    for (ds, variant, ln, w), g in p.groupby(["dataset", "variant", "length_norm", "w"], sort=False):
        y = g["policy_acc"].to_numpy(float)
        rows.append(
            {
                "dataset": ds,
                "variant": variant,
                "length_norm": bool(ln),
                "w": float(w),
                "n_rms": len(g),
                "policy_acc": float(np.median(y)),
                "pa_mid_share": float(np.mean((y > PA_FLOOR) & (y < 1 - PA_FLOOR))),
                "policy_acc_gain": float(g["policy_acc_gain"].median()),
                "gain_above_0": float((g["policy_acc_gain_lo"] > 0).mean()),
                "gain_below_0": float((g["policy_acc_gain_hi"] < 0).mean()),
            }
        )
    return pd.DataFrame(rows)


def tau_table(points: pd.DataFrame, cfg: StudyConfig, per_pair: pd.DataFrame | None = None) -> pd.DataFrame:
    """Kendall's tau-b of rm_acc vs policy_acc per (dataset, variant, length_norm, w).

    With ``per_pair`` (one row per (dataset, rm_id, pair_id): user_id, rm_correct and the
    :func:`pa_column` outcomes) the interval, p-value and reliabilities come from
    :func:`analysis.metrics.tau.honest_tau` (``interval = "test set x seeds in cells"``: tau_lo,
    tau_hi, p_value over the trained population; cluster_lo, cluster_hi with n_clusters: the
    "generalise over methods" sensitivity interval; naive_lo, naive_hi: RMs as exact points);
    without it only the naive interval resampling RMs is available (``interval = "RMs only
    (naive)"``). ``pa_mid_share`` is the share of RMs whose policy accuracy is off the floor and
    ceiling (inside (0.05, 0.95)): claim 1's testability needs at least half.
    ``cfg.honest_tau = "headline"`` (the default) computes the honest tau only for the claim-1
    settings (both variants at ``w = cfg.rgd_w``, both length norms); the other rows keep the
    naive interval, labelled as such.
    """
    from analysis.metrics.tau import honest_tau, kendall_tau_ci

    rows = []
    if "sensitivity" in points.columns:  # the normalize_reward=False rows are not part of the population
        points = points[~points["sensitivity"].fillna(False).astype(bool)]
    for (ds, variant, ln, w), g in points.groupby(["dataset", "variant", "length_norm", "w"], sort=False):
        # accuracies are ratios of small counts: round so that equal accuracies reached by different
        # summation orders (1e-16 apart) are exact ties for tau-b, in memory and after a cache round trip
        x, y = (np.round(g[c].to_numpy(float), TIE_DECIMALS) for c in ("rm_acc", "policy_acc"))
        t = kendall_tau_ci(x, y, n_boot=cfg.n_boot, seed=cfg.seed)
        row = {
            "dataset": ds,
            "variant": variant,
            "length_norm": bool(ln),
            "w": float(w),
            "tau": t["tau"],
            "tau_lo": t["ci_low"],
            "tau_hi": t["ci_high"],
            "p_value": t["p_value"],
            "n_rms": t["n"],
            "stable_population": t["n"] >= MIN_STABLE_POPULATION,
            "pa_mid_share": float(np.mean((y > PA_FLOOR) & (y < 1 - PA_FLOOR))) if y.size else np.nan,
            "interval": "RMs only (naive)",
        }
        col = pa_column(variant, ln, w)
        headline = abs(float(w) - cfg.rgd_w) < 1e-9
        if per_pair is not None and col in per_pair.columns and (headline or cfg.honest_tau == "all"):
            pp = per_pair[per_pair["dataset"] == ds]
            rm_ids = list(dict.fromkeys(g["rm_id"]))
            pp = pp[pp["rm_id"].isin(rm_ids)]
            rm_o = pp.pivot(index="rm_id", columns="pair_id", values="rm_correct").loc[rm_ids]
            pa_o = pp.pivot(index="rm_id", columns="pair_id", values=col).loc[rm_ids, rm_o.columns]
            users = pp.drop_duplicates("pair_id").set_index("pair_id").loc[rm_o.columns, "user_id"]
            meta = g.drop_duplicates("rm_id").set_index("rm_id").loc[rm_ids]
            cells = meta["method"].astype(str) + "|" + meta["budget"].astype(str)
            h = honest_tau(
                users,
                rm_o.to_numpy(float),
                pa_o.to_numpy(float),
                meta["method"],
                cells=cells,
                n_boot=cfg.n_boot,
                seed=cfg.seed,
            )
            row.update(
                tau=h["tau"],
                tau_lo=h["ci_low"],
                tau_hi=h["ci_high"],
                p_value=h["p_boot"],
                p_scipy=h["p_scipy"],
                rel_rm=h["rel_rm"],
                rel_policy=h["rel_policy"],
                tau_corrected=h["tau_corrected"],
                cluster_lo=h["cluster_ci_low"],
                cluster_hi=h["cluster_ci_high"],
                naive_lo=h["naive_ci_low"],
                naive_hi=h["naive_ci_high"],
                n_cells=h["n_cells"],
                n_clusters=h["n_clusters"],
                interval=HEADLINE_INTERVAL,
            )
        rows.append(row)
    return pd.DataFrame(rows)


def rm_vs_policy_accuracy(
    cfg: StudyConfig,
    cache_dir: str | None = None,
    *,
    datasets: list[str] | None = None,
    progress: bool = True,
    schedule: Schedule = NO_SCHEDULE,
) -> dict[str, pd.DataFrame]:
    """Run study 1. Returns tidy frames:

    - ``rms``: one row per (dataset, rm_id): method, seed, budget, steps_run, n_train_pairs,
      rm_acc, rm_acc_lo, rm_acc_hi, n_users, n_test_pairs.
    - ``points``: one row per (dataset, rm_id, variant, length_norm, w): the rms columns plus
      policy_acc, policy_acc_lo, policy_acc_hi and policy_acc_gain, policy_acc_gain_lo,
      policy_acc_gain_hi (PA(w) - PA(w = 0) of the same RM, variant and length_norm, paired
      bootstrap: :func:`policy_acc_gain`).
    - ``tau``: one row per (dataset, variant, length_norm, w): tau, tau_lo, tau_hi, p_value
      (test set x seeds in cells bootstrap), p_scipy, rel_rm, rel_policy, tau_corrected,
      cluster_lo, cluster_hi, naive_lo, naive_hi, n_rms, n_cells, n_clusters, pa_mid_share,
      stable_population, interval (:func:`tau_table`).
    - ``per_pair``: one row per (dataset, rm_id, pair_id): user_id, rm_correct and policy
      correctness per setting (:func:`pa_column`): what the honest tau resamples.
    - ``pairs``: pairs per user and split for each dataset (the overfitting context, design 9).
    - ``cards``: one row per dataset: source, users, prompts, pairs per split, rows dropped by the
      loader and why (:func:`dataset_card_row`).

    Every intermediate (pairs, features, fitted RMs, per-RM results) is cached under
    ``cache_dir``; a rerun after an interruption resumes.

    ``schedule`` (:mod:`analysis.studies.schedule`): told when the work starts and when the
    inputs of the Pref-LaMP dataset of ``cfg.preflamp_source`` (pairs, features) are cached, which
    come first; studies 2-3 read them (:func:`analysis.studies.preflamp.preflamp_run`).
    """
    from analysis.rewards.evaluate import pairs_per_user_table

    cache = StudyCache(cache_dir)
    all_rms, all_points, all_pairs, all_pp, cards = [], [], [], [], []
    check_datasets(cfg)  # before any model work: every name built in or in data_paths
    names = list(datasets or cfg.datasets)
    schedule.started(cfg.device)
    main = [d for d in names if d == f"{cfg.preflamp_source}_preflamp"]
    all_inputs = {ds: study1_inputs(cfg, ds, cache, schedule) for ds in main}
    schedule.inputs_ready()
    all_inputs.update({ds: study1_inputs(cfg, ds, cache, schedule) for ds in names if ds not in all_inputs})
    for ds in names:
        inputs = all_inputs[ds]
        feats, fkey = inputs.feats, inputs.fkey
        combos = [(m, s, b) for m in cfg.methods for s in cfg.seeds for b in cfg.budgets]
        raw_combos = [(m, cfg.seeds[0], max(cfg.budgets)) for m in cfg.methods]  # normalize_reward=False
        if len(combos) < MIN_STABLE_POPULATION:
            warnings.warn(
                f"{ds}: a population of {len(combos)} RMs gives an unstable Kendall tau "
                f"(use >= {MIN_STABLE_POPULATION}: more methods, seeds or budgets)",
                stacklevel=2,
            )
        key = {
            "study": 1,
            "feat": fkey,
            "combos": combos,
            "w": list(cfg.w_values),
            "k": cfg.k,
            "model": model_key(inputs.model),
            "n_boot": cfg.n_boot,
            "seed": cfg.seed,
            "reward_norm": cfg.reward_norm,
            "v": 5,
            **(
                {}
                if (variants := list(dataset_config(cfg, ds).pa_variants)) == ["score", "policy"]
                else {"variants": variants}
            ),
        }
        held: dict = {}

        def run(combos=combos, raw_combos=raw_combos, ds=ds, inputs=inputs, held=held):
            todo = [(*c, True) for c in combos] + [(*c, False) for c in raw_combos]
            got = [
                rm_points(cfg, ds, spec, inputs, cache)
                for spec in tqdm(todo, desc=f"{ds}: RM population", disable=not progress)
            ]
            held["per_pair"] = pd.concat([pp for _, pp in got], ignore_index=True)
            return pd.concat([pts for pts, _ in got], ignore_index=True)

        def run_pairs(run=run, held=held):
            if "per_pair" not in held:
                run()
            return held["per_pair"]

        points = cache.frame("study1_points", key, run)
        all_pp.append(cache.frame("study1_per_pair", key, run_pairs))
        all_points.append(points)
        all_rms.append(
            points.drop_duplicates("rm_id")[
                [
                    c
                    for c in points.columns
                    if not c.startswith("policy_acc") and c not in ("variant", "length_norm", "w")
                ]
            ]
        )
        pp = pairs_per_user_table(feats)
        pp.insert(0, "dataset", ds)
        all_pairs.append(pp)
        cards.append(dataset_card_row(inputs.data))
    points = pd.concat(all_points, ignore_index=True)
    points["length_norm"] = points["length_norm"].astype(bool)
    per_pair = pd.concat(all_pp, ignore_index=True)
    for c in ("user_id", "pair_id", "rm_id", "dataset"):
        per_pair[c] = per_pair[c].astype(str)
    points = policy_acc_gain(points, per_pair, cfg)
    return {
        "rms": pd.concat(all_rms, ignore_index=True),
        "points": points,
        "tau": tau_table(points, cfg, per_pair),
        "per_pair": per_pair,
        "pairs": pd.concat(all_pairs, ignore_index=True),
        "cards": pd.DataFrame(cards),
    }
