"""Study-level glue over the generation runner: the systems, scored against the users' real text.

Systems (design 3.2-3.3), all on the same zero-shot prompt ``x = zero_shot_prompt(task, input)``,
are methods of :func:`analysis.generation.runner.run_generations` (one JSONL per model and user set
under ``<cache>/generations/``, resumable):

- ``base``: greedy decoding of the policy (method ``base``).
- ``icl_k{k}``: greedy decoding with ``k`` retrieved profile examples in the prompt (method
  ``icl``; retriever and rendering from the config, recorded in every row).
- ``rgd_{method}_w{w}``: ARGS (:func:`analysis.decoding.args.args_generate`) with the method's
  RM, weight ``w`` and top-``k`` candidates (:func:`analysis.generation.methods.register_rgd_method`),
  all RMs in one pass (:func:`shared_args`).
- ``bon_{method}_n{n}``: best-of-n with the method's RM (``n = cfg.best_of_n``; 0 disables),
  every RM re-ranking ONE shared set of samples (:func:`shared_sample_bon`).

ROUGE is computed after loading, so switching stemming never regenerates. Study row schema:
``model, user_id, test_id, system, kind, method, icl_k, w, input, prompt (the exact rendered
prompt text), text, reference, rouge1, rougeL, reward, oracle_reward``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.config.schema import StudyConfig
from analysis.data.records import UserTask
from analysis.decoding.base import GenerationConfig
from analysis.studies.cache import StudyCache, key_hash
from analysis.studies.models import model_key

COLUMNS = [
    "model",
    "user_id",
    "test_id",
    "system",
    "kind",
    "method",
    "icl_k",
    "w",
    "input",
    "prompt",
    "text",
    "reference",
    "rouge1",
    "rougeL",
    "reward",
    "oracle_reward",
]


def tasks_key(tasks: list[UserTask]) -> str:
    return key_hash(
        [[t.user_id, t.test_id, t.test_input, [(p.item_id, p.output) for p in t.profile]] for t in tasks]
    )


def rouge_f(
    predictions: list[str], references: list[str], use_stemmer: bool
) -> tuple[list[float], list[float]]:
    """ROUGE-1 and ROUGE-L F-measure per generation (:func:`analysis.metrics.rouge.rouge_scores`)."""
    from analysis.metrics.rouge import rouge_scores

    out = rouge_scores(predictions, references, use_stemmer=use_stemmer)
    return [float(x) for x in out["rouge1"]], [float(x) for x in out["rougeL"]]


SAMPLE_BLOCK = 4  # samples per prompt drawn and cached together (draw_samples)


def draw_samples(
    cfg: StudyConfig, model, tok, tasks, params: dict, n: int, samples: dict, cache: StudyCache | None = None
) -> tuple:
    """``(prompts, texts)``: ``n`` samples per task's zero-shot prompt at ``cfg.sample_temperature``
    / ``cfg.sample_top_p`` (sample j of prompt i seeded from ``(seed, i, j)``, as
    :func:`analysis.decoding.best_of_n.best_of_n`), memoised in ``samples`` and, with a ``cache``,
    on disk (kind ``samples``), so a later call (the reward-guided systems after the others) draws
    nothing.

    Samples are drawn and cached in blocks of :data:`SAMPLE_BLOCK` per prompt (samples 0-3, 4-7,
    ...), so a larger draw of the same prompts reuses a smaller one: study 5's 16 samples per target
    start with study 2's best-of-4 samples and draw only the other 12.
    """
    from analysis.config.algorithms import best_of_n_config
    from analysis.decoding.base import generate_sample
    from analysis.generation.methods import base_prompt

    bon = best_of_n_config(cfg, n)
    prompts = [base_prompt(params["task"], t) for t in tasks]
    blocks = []
    for start in range(0, bon.n, SAMPLE_BLOCK):
        size = min(SAMPLE_BLOCK, bon.n - start)
        memo = key_hash(
            [prompts, [start, size], bon.seed, params["max_new_tokens"], bon.temperature, bon.top_p]
        )
        if memo not in samples:

            def draw(start=start, size=size):
                return generate_sample(
                    model,
                    tok,
                    prompts,
                    GenerationConfig(
                        temperature=bon.temperature,
                        top_p=bon.top_p,
                        max_new_tokens=params["max_new_tokens"],
                        batch_size=params["batch_size"],
                    ),
                    n=size,
                    seed=bon.seed,
                    first_sample=start,
                    progress=True,
                )

            samples[memo] = cache.json("samples", [model_key(model), memo], draw) if cache else draw()
        blocks.append(samples[memo])
    return prompts, [[t for block in blocks for t in block[i]] for i in range(len(prompts))]


def shared_sample_base(cfg: StudyConfig, n: int, samples: dict, cache: StudyCache | None = None):
    """A runner method: the "sampled base" system, sample 0 of the shared best-of-``n`` samples
    (equal to :func:`analysis.decoding.best_of_n.sample_base`: same settings and seeds; tested)."""

    def generate(model, tok, tasks, params):
        return [d[0] for d in draw_samples(cfg, model, tok, tasks, params, n, samples, cache)[1]]

    return generate


def shared_sample_bon(cfg: StudyConfig, store, rm, n: int, samples: dict, cache: StudyCache | None = None):
    """A runner method: best-of-n with ``rm`` over ONE set of samples shared by every RM (design 3.2).

    ``n`` samples per prompt (:func:`draw_samples`: ``cfg.sample_temperature`` and
    ``cfg.sample_top_p``, seeded as :func:`analysis.decoding.best_of_n.best_of_n` does) are drawn
    once per task list (memoised in ``samples``); the RM keeps the sample with its highest
    ``r_u(x, y)`` (ties: the first sample; empty samples never win). Equal to ``best_of_n`` per
    RM, without re-sampling and re-encoding for every method (tested). Features come from
    ``store`` (a TextFeatureStore).
    """

    def generate(model, tok, tasks, params):
        prompts, drawn = draw_samples(cfg, model, tok, tasks, params, n, samples, cache)
        flat = [(i, j) for i in range(len(tasks)) for j in range(n) if drawn[i][j].strip()]
        feats = store.get(
            [prompts[i] for i, _ in flat], [drawn[i][j] for i, j in flat], batch_size=params["batch_size"]
        )
        r = rm.reward([tasks[i].user_id for i, _ in flat], feats).tolist() if flat else []
        best: dict[int, tuple[float, int]] = {}
        for (i, j), v in zip(flat, r, strict=True):
            if i not in best or v > best[i][0]:  # strict: ties keep the first sample
                best[i] = (v, j)
        return [
            {"text": drawn[i][best[i][1]], "reward": best[i][0]}
            if i in best
            else {"text": drawn[i][0], "reward": None}
            for i in range(len(tasks))
        ]

    return generate


def shared_args(cfg: StudyConfig, rms: dict, method: str, memo: dict):
    """A runner method: ARGS with the RM of ``method``, computed for EVERY RM of ``rms`` in one
    pass (:func:`analysis.decoding.args.args_generate_multi`: the RMs share cache rows while
    their tokens agree) and memoised in ``memo``, so the other RMs' systems are memo hits. Same
    rows as one ARGS run per RM (tested); the memo key is the prompts and decoding params, so
    each w (and each resumed subset of tasks) is its own pass over all RMs."""

    def generate(model, tok, tasks, params):
        from analysis.decoding.args import ArgsConfig, args_generate_multi
        from analysis.generation.methods import base_prompt

        prompts = [base_prompt(params["task"], t) for t in tasks]
        users = [t.user_id for t in tasks]
        kw = {k: params[k] for k in ArgsConfig.__dataclass_fields__ if k in params and k != "batch_size"}
        key = key_hash([prompts, users, sorted(kw.items()), params["batch_size"]])
        if key not in memo:
            names = list(rms)
            args_cfg = ArgsConfig(**kw, batch_size=params["batch_size"])
            outs = args_generate_multi(model, tok, [rms[m] for m in names], prompts, users, args_cfg)
            memo[key] = dict(zip(names, outs, strict=True))
        return [{"text": o.text, "reward": float(o.reward)} for o in memo[key][method]]

    return generate


def user_shards(cfg: StudyConfig, tasks: list[UserTask]) -> list[list[int]]:
    """Indices of ``tasks`` in shards of ``cfg.shard_users`` users (users in order of first appearance).

    Generations are cached per shard (one runner file each), so a sweep runs one task per (model,
    shard) and the study, which walks the same shards, finds every row. ``shard_users = 0``: one shard.
    """
    order = list(dict.fromkeys(t.user_id for t in tasks))
    size = cfg.shard_users or max(1, len(order))
    shard_of = {u: i // size for i, u in enumerate(order)}
    out: list[list[int]] = [[] for _ in range(-(-len(order) // size))]
    for i, t in enumerate(tasks):
        out[shard_of[t.user_id]].append(i)
    return out


def train_pair_ids(pairs) -> set[str]:
    """Pair ids of the Pref-LaMP training split: what the RMs learn from, and so (ICL parity) the
    only profile items ICL may retrieve by default (:func:`icl_profiles`)."""
    return {p.pair_id for p in pairs if p.split == "train"}


def icl_profiles(cfg: StudyConfig, tasks: list[UserTask], train_ids: set[str] | None) -> list[UserTask]:
    """The tasks ICL retrieves from (ICL parity, ``cfg.icl_pool``).

    ``train``: each profile keeps only the items whose Pref-LaMP pair (``pair_id =
    "<user>/<item_id>"``) is in ``train_ids``, the pairs the RMs were trained on, so ICL and the
    RMs see the same evidence; ``profile`` (or ``train_ids`` None): every profile item.
    """
    if cfg.icl_pool == "profile" or train_ids is None:
        return list(tasks)
    out = []
    for t in tasks:
        prof = [p for p in t.profile if f"{t.user_id}/{p.item_id}" in train_ids]
        out.append(UserTask(t.user_id, prof, t.test_input, t.test_output, t.test_id, t.test_date))
    return out


def generate_systems(
    cfg: StudyConfig,
    model,
    tok,
    tasks,
    cache: StudyCache,
    model_name: str,
    rms: dict,
    w_values,
    train_ids: set[str] | None = None,
) -> list[dict]:
    """Rows (study schema, before scoring) of base, sampled base, ICL (each k), best-of-n and ARGS
    (each w, RM).

    ICL retrieves from :func:`icl_profiles` (``train_ids``: the pair ids the RMs were trained
    on). Per shard of users (:func:`user_shards`; one sweep task each), three
    :func:`analysis.generation.runner.run_generations` calls (base, ICL on its own profiles, the rest);
    their JSONL files are the cache. The rows come back in the order of one call over all tasks
    (systems in order, then tasks), whatever the sharding.
    """
    shards = user_shards(cfg, tasks)
    if len(shards) <= 1:
        return _generate_shard(cfg, model, tok, tasks, cache, model_name, rms, w_values, train_ids)
    at: dict[int, tuple[list[dict], int]] = {}  # task index -> (its shard's rows, position in the shard)
    for idx in shards:
        rows = _generate_shard(
            cfg, model, tok, [tasks[i] for i in idx], cache, model_name, rms, w_values, train_ids
        )
        at.update({i: (rows, j) for j, i in enumerate(idx)})
    n_systems = len(at[0][0]) // len(shards[0])
    out = []
    for s in range(n_systems):
        for i in range(len(tasks)):
            rows, j = at[i]
            out.append(rows[s * (len(rows) // n_systems) + j])
    return out


def _generate_shard(
    cfg: StudyConfig,
    model,
    tok,
    tasks,
    cache: StudyCache,
    model_name: str,
    rms: dict,
    w_values,
    train_ids: set[str] | None = None,
) -> list[dict]:
    from analysis.config.algorithms import args_config, best_of_n_config, generation_config, icl_config
    from analysis.generation.methods import MethodSpec, register_method, register_rgd_method
    from analysis.generation.runner import run_generations
    from analysis.studies.rms import feature_store

    specs: list = [MethodSpec("base")]
    kinds = {"base": ("base", "", np.nan, np.nan)}
    icl_tasks, icl_specs = icl_profiles(cfg, tasks, train_ids), []
    for k in cfg.icl_k:
        conf = icl_config(cfg, k)  # the runner's icl method takes these fields (its own default for the rest)
        icl = {f: getattr(conf, f) for f in ("k", "retriever", "rendering", "max_prompt_tokens", "seed")}
        icl_specs.append(MethodSpec("icl", icl, system=f"icl_k{k}"))
        kinds[f"icl_k{k}"] = ("icl", f"icl ({conf.retriever}, {conf.rendering})", k, np.nan)
    n, samples = cfg.best_of_n, {}
    shared = best_of_n_config(cfg, max(n, 1))  # the shared samples (also the sampled base's)
    sampling = {"seed": shared.seed, "temperature": shared.temperature, "top_p": shared.top_p}
    if cfg.sampled_base:
        register_method(
            "study_sampled_base",
            shared_sample_base(cfg, max(n, 1), samples, cache),
            defaults={"n_drawn": max(n, 1), **sampling},
            description="one sample of the base policy (sample 0 of best-of-n's samples)",
            replace=True,
        )
        specs.append(MethodSpec("study_sampled_base", system="base_sampled"))
        kinds["base_sampled"] = ("base_sampled", "", np.nan, np.nan)
    if n > 0:
        store = feature_store(cfg, model, tok, cache)
        for method, rm in rms.items():
            rm_id = getattr(rm, "study_key_", rm.method)
            name = f"study_bon_{method}"
            register_method(
                name,
                shared_sample_bon(cfg, store, rm, n, samples, cache),
                defaults={"n": n, **sampling, "rm": rm_id},
                description=f"best-of-{n} over shared samples with RM {rm_id}",
                replace=True,
            )
            specs.append(MethodSpec(name, system=f"bon_{method}_n{n}"))
            kinds[f"bon_{method}_n{n}"] = ("bon", method, np.nan, np.nan)
    args_memo: dict = {}  # ARGS of every RM in one pass (shared_args)
    for w in w_values:
        for method, rm in rms.items():
            rm_id = getattr(rm, "study_key_", rm.method)
            name = f"study_args_{method}"
            fn = shared_args(cfg, rms, method, args_memo)
            k = args_config(cfg, w).k
            register_rgd_method(name, rm, rm_id=rm_id, decoder="args", k=k, replace=True, fn=fn)
            specs.append(MethodSpec(name, {"w": w}, system=f"rgd_{method}_w{w:g}"))
            kinds[f"rgd_{method}_w{w:g}"] = ("rgd", method, np.nan, w)
    rows, gen = [], generation_config(cfg)
    first = 2 if cfg.sampled_base else 1  # base (and sampled base), ICL, the reward-guided systems
    for job_tasks, job_specs in ((tasks, specs[:first]), (icl_tasks, icl_specs), (tasks, specs[first:])):
        if not job_specs:
            continue
        key = key_hash([model_key(model), tasks_key(job_tasks), cfg.task])
        rows += run_generations(
            model,
            tok,
            job_tasks,
            job_specs,
            cache.root / "generations" / f"{key}.jsonl",
            task=cfg.task,
            batch_size=gen.batch_size,
            chunk_size=max(1, len(job_tasks)),
            max_new_tokens=gen.max_new_tokens,
            model_name=model_name,
        )
    out = []
    for r in rows:
        kind, method, icl_k, w = kinds[r["system"]]
        out.append(
            {
                "model": model_name,
                "user_id": r["user_id"],
                "test_id": r["test_id"],
                "system": r["system"],
                "kind": kind,
                "method": method,
                "icl_k": icl_k,
                "w": w,
                "input": r["input"],
                "prompt": r["prompt"],
                "text": r["text"],
                "reference": r["reference"] or "",
                "reward": np.nan if r["reward"] is None else r["reward"],
            }
        )
    return out


def score_rows(cfg: StudyConfig, rows: list[dict], styles: dict[str, str] | None = None) -> pd.DataFrame:
    """Add ROUGE-1/L (``cfg.rouge_stemming``) and, for synthetic style users, the oracle reward."""
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    df["rouge1"], df["rougeL"] = rouge_f(list(df["text"]), list(df["reference"]), cfg.rouge_stemming)
    if styles:
        from analysis.data.synthetic import oracle_reward

        df["oracle_reward"] = [
            oracle_reward(styles[u], t) if u in styles else np.nan
            for u, t in zip(df["user_id"], df["text"], strict=True)
        ]
    else:
        df["oracle_reward"] = np.nan
    return df[COLUMNS]


def system_summary(gens: pd.DataFrame, cfg: StudyConfig, metric_cols=("rouge1", "rougeL")) -> pd.DataFrame:
    """One row per (model, system): mean and bootstrap interval over users of each metric."""
    from analysis.metrics.intervals import summarize_by_user

    rows = []
    for (model, system), g in gens.groupby(["model", "system"], sort=False):
        r = {
            "model": model,
            "system": system,
            "kind": g["kind"].iloc[0],
            "method": g["method"].iloc[0],
            "icl_k": g["icl_k"].iloc[0],
            "w": g["w"].iloc[0],
        }
        for m in metric_cols:
            s = summarize_by_user(list(g["user_id"]), g[m].to_numpy(float), n_boot=cfg.n_boot, seed=cfg.seed)
            r.update({m: s["mean"], f"{m}_lo": s["ci_low"], f"{m}_hi": s["ci_high"]})
        r.update(
            n_users=int(g["user_id"].nunique()),
            n_generations=len(g),
            oracle_reward=float(g["oracle_reward"].mean()) if g["oracle_reward"].notna().any() else np.nan,
        )
        rows.append(r)
    return pd.DataFrame(rows)


def per_user(gens: pd.DataFrame, system: str, metric: str = "rouge1") -> dict[str, dict]:
    """``{user: {test_id: metric}}`` of one system: item-level input of ``paired_comparison``."""
    from analysis.metrics.intervals import per_user_items

    g = gens[gens["system"] == system]
    return per_user_items(list(g["user_id"]), list(g["test_id"]), g[metric].to_numpy(float))
