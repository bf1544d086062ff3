"""Generations of every system for Pref-LaMP test inputs, scored against the users' real text.

Systems (design 3.2-3.3), all on the same zero-shot prompt ``x = zero_shot_prompt(task, input)``:

- ``base``: greedy decoding of the policy.
- ``icl_k{k}``: greedy decoding with ``k`` retrieved profile examples in the prompt
  (:mod:`analysis.icl`; retriever and rendering from the config, recorded in every row).
- ``rgd_{method}_w{w}``: ARGS (:func:`analysis.decoding.args.args_generate`) with the method's
  RM, weight ``w`` and top-``k`` candidates.
- ``bon_{method}_n{n}``: best-of-n with the method's RM (``n = cfg.best_of_n``; 0 disables).

Each system's texts are cached (keyed by model, users, settings and the RM) so a rerun skips
finished systems; ROUGE is computed after loading, so switching stemming never regenerates.
Row schema: ``model, user_id, test_id, system, kind, method, icl_k, w, input, prompt (the exact
rendered prompt text), text, reference, rouge1, rougeL, reward, oracle_reward``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.config import StudyConfig
from analysis.data.records import UserTask
from analysis.studies.common import StudyCache, key_hash, model_key

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


# --------------------------------------------------------------------------- adapters


def rouge_f(
    predictions: list[str], references: list[str], use_stemmer: bool
) -> tuple[list[float], list[float]]:
    """ROUGE-1 and ROUGE-L F-measure per generation (:func:`analysis.metrics.rouge_scores`)."""
    from analysis.metrics import rouge_scores

    out = rouge_scores(predictions, references, use_stemmer=use_stemmer)
    return [float(x) for x in out["rouge1"]], [float(x) for x in out["rougeL"]]


def icl_prompt(cfg: StudyConfig, tok, task: UserTask, k: int):
    """The ICL prompt for one user task (:func:`analysis.icl.build_icl_prompt`): ``.messages``, ``.text``."""
    from analysis.icl import ICLConfig, build_icl_prompt

    icfg = ICLConfig(
        k=k,
        retriever=cfg.retriever,
        rendering=cfg.icl_rendering,
        max_prompt_tokens=cfg.max_prompt_tokens,
        seed=cfg.seed,
    )
    return build_icl_prompt(tok, cfg.task, task, icfg)


# --------------------------------------------------------------------------- systems


def _zero_shot(cfg: StudyConfig, tasks: list[UserTask]) -> list[str]:
    from analysis.data.tasks import zero_shot_prompt

    return [zero_shot_prompt(cfg.task, t.test_input) for t in tasks]


def _rows(cfg, tasks, model_name, system, kind, method, icl_k, w, prompts_text, texts, rewards):
    return [
        {
            "model": model_name,
            "user_id": t.user_id,
            "test_id": t.test_id or f"{t.user_id}/{i}",
            "system": system,
            "kind": kind,
            "method": method,
            "icl_k": icl_k,
            "w": w,
            "input": t.test_input,
            "prompt": p,
            "text": txt,
            "reference": t.test_output or "",
            "reward": r,
        }
        for i, (t, p, txt, r) in enumerate(zip(tasks, prompts_text, texts, rewards, strict=True))
    ]


def base_system(cfg, model, tok, tasks, cache: StudyCache, model_name: str) -> list[dict]:
    from analysis.decoding.base import generate_greedy
    from analysis.models import render_prompt

    prompts = _zero_shot(cfg, tasks)
    key = {
        "sys": "base",
        "model": model_key(model),
        "tasks": tasks_key(tasks),
        "mnt": cfg.max_new_tokens,
        "task": cfg.task,
    }
    texts = cache.json(
        "generations",
        key,
        lambda: generate_greedy(
            model, tok, prompts, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, progress=True
        ),
    )
    return _rows(
        cfg,
        tasks,
        model_name,
        "base",
        "base",
        "",
        np.nan,
        np.nan,
        [render_prompt(tok, p) for p in prompts],
        texts,
        [np.nan] * len(tasks),
    )


def icl_system(cfg, model, tok, tasks, cache: StudyCache, model_name: str, k: int) -> list[dict]:
    from analysis.decoding.base import generate_greedy

    built = [icl_prompt(cfg, tok, t, k) for t in tasks]
    msgs = [b.messages for b in built]
    key = {
        "sys": "icl",
        "k": k,
        "model": model_key(model),
        "tasks": tasks_key(tasks),
        "mnt": cfg.max_new_tokens,
        "retriever": cfg.retriever,
        "rendering": cfg.icl_rendering,
        "mpt": cfg.max_prompt_tokens,
        "task": cfg.task,
        "seed": cfg.seed,
    }
    texts = cache.json(
        "generations",
        key,
        lambda: generate_greedy(
            model,
            tok,
            msgs,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=max(1, cfg.batch_size // 2),
            progress=True,
        ),
    )
    return _rows(
        cfg,
        tasks,
        model_name,
        f"icl_k{k}",
        "icl",
        f"icl ({cfg.retriever}, {cfg.icl_rendering})",
        k,
        np.nan,
        [b.text for b in built],
        texts,
        [np.nan] * len(tasks),
    )


def rgd_system(cfg, model, tok, tasks, cache: StudyCache, model_name: str, rm, w: float) -> list[dict]:
    from analysis.decoding.args import args_generate
    from analysis.models import render_prompt

    prompts = _zero_shot(cfg, tasks)
    key = {
        "sys": "args",
        "rm": getattr(rm, "study_key_", rm.method),
        "w": w,
        "k": cfg.k,
        "model": model_key(model),
        "tasks": tasks_key(tasks),
        "mnt": cfg.max_new_tokens,
        "task": cfg.task,
    }

    def run():
        outs = args_generate(
            model,
            tok,
            rm,
            prompts,
            [t.user_id for t in tasks],
            w=w,
            k=cfg.k,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=min(8, cfg.batch_size),
            progress=True,
        )
        return {
            "texts": [o.text for o in outs],
            "rewards": [None if o.reward is None or math.isnan(o.reward) else float(o.reward) for o in outs],
        }

    got = cache.json("generations", key, run)
    rewards = [np.nan if r is None else r for r in got["rewards"]]
    return _rows(
        cfg,
        tasks,
        model_name,
        f"rgd_{rm.method}_w{w:g}",
        "rgd",
        rm.method,
        np.nan,
        w,
        [render_prompt(tok, p) for p in prompts],
        got["texts"],
        rewards,
    )


def bon_systems(cfg, model, tok, tasks, cache: StudyCache, model_name: str, rms: dict, n: int) -> list[dict]:
    """Best-of-n for every RM from ONE set of samples (design 3.2).

    ``n`` samples per prompt (``generate_sample``, T = 1, seeded as
    :func:`analysis.decoding.best_of_n.best_of_n` does) are drawn once; each RM keeps the sample
    with its highest ``r_u(x, y)`` (ties: the first sample; empty samples never win). Equal to
    calling ``best_of_n`` per RM, without re-sampling and re-encoding for every method (tested).
    """
    from analysis.decoding.base import generate_sample
    from analysis.models import render_prompt
    from analysis.studies.common import TextFeatureStore

    prompts = _zero_shot(cfg, tasks)
    key = {
        "sys": "samples",
        "n": n,
        "seed": cfg.seed,
        "model": model_key(model),
        "tasks": tasks_key(tasks),
        "mnt": cfg.max_new_tokens,
        "task": cfg.task,
    }
    samples = cache.json(
        "generations",
        key,
        lambda: generate_sample(
            model,
            tok,
            prompts,
            n=n,
            temperature=1.0,
            seed=cfg.seed,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            progress=True,
        ),
    )
    flat = [(i, j) for i in range(len(tasks)) for j in range(n) if samples[i][j].strip()]
    store = TextFeatureStore(cache, model, tok, cfg.feature_layer)
    feats = store.get(
        [prompts[i] for i, _ in flat], [samples[i][j] for i, j in flat], batch_size=cfg.batch_size
    )
    rows = []
    for method, rm in rms.items():
        r = rm.reward([tasks[i].user_id for i, _ in flat], feats).tolist() if flat else []
        best: dict[int, tuple[float, int]] = {}
        for (i, j), v in zip(flat, r, strict=True):
            if i not in best or v > best[i][0]:  # strict: ties keep the first sample
                best[i] = (v, j)
        texts = [samples[i][best[i][1]] if i in best else samples[i][0] for i in range(len(tasks))]
        rewards = [best[i][0] if i in best else np.nan for i in range(len(tasks))]
        rows += _rows(
            cfg,
            tasks,
            model_name,
            f"bon_{method}_n{n}",
            "bon",
            method,
            np.nan,
            np.nan,
            [render_prompt(tok, p) for p in prompts],
            texts,
            rewards,
        )
    return rows


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
    from analysis.metrics import summarize_by_user

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
    from analysis.metrics import per_user_items

    g = gens[gens["system"] == system]
    return per_user_items(list(g["user_id"]), list(g["test_id"]), g[metric].to_numpy(float))
