"""GPU-hour estimate of a sweep graph (``--dry-run``).

Each task gets a roofline time from the work it does (its prefill tokens and its decode steps,
from the config) and the size of its model:

- prefill: ``2 * params * tokens`` FLOPs at ``PEAK_FLOPS * MFU``;
- a decode step (one batch): the weights read once, ``2 bytes * params`` at ``BANDWIDTH * BW_EFF``;
- plus ``CALL_OVERHEAD`` seconds per forward call (Python, kernel launches: dominant for small
  models on a GPU).

Every finished task records its measured seconds and this roofline time; when the cache holds
records measured on a GPU, each kind's roofline time is multiplied by the median of measured /
roofline of that kind (the output says which source was used). The constants are one H100 SXM
in bf16; token counts per item are the typical sizes below, not read from the data.
"""

from __future__ import annotations

import math
import statistics

from analysis.config.schema import StudyConfig
from analysis.sweep.graph import Graph, Task

PEAK_FLOPS, MFU = 989e12, 0.35  # H100 SXM dense bf16, achieved fraction in prefill
BANDWIDTH, BW_EFF = 3.35e12, 0.7  # HBM3 bytes/s, achieved fraction in decoding
PROMPT_TOKENS = 120  # zero-shot prompt with the chat template (LaMP-4 article head)
ICL_EXAMPLE_TOKENS = 150  # one retrieved profile example rendered as a chat turn
PAIRS_PER_USER = 40  # study code keeps the 40 newest profile items per user (Pref-LaMP)
TEST_FRACTION = 0.2  # share of a user's pairs in the test split
ARGS_STEP_COST = 1.6  # ARGS step / greedy step, measured on CPU (benchmarks/README.md)
CALL_OVERHEAD = 0.025  # seconds per forward call of an HF model on a GPU (launch-bound small models)
FIXED_SECONDS = {"rm": 20.0, "policy_accuracy": 5.0, "table": 2.0}  # small heads / pandas; no backbone


def _work(task: Task, cfg: StudyConfig, n_users: int) -> tuple[float, float, float]:
    """(prefill tokens, decode steps, prefill forward calls) of ``task``."""
    p, mnt, bs, k = task.p, cfg.max_new_tokens, cfg.batch_size, cfg.k
    seq = PROMPT_TOKENS + mnt
    if task.kind in ("features", "pa_data"):
        n_pairs = n_users * PAIRS_PER_USER
        if task.kind == "pa_data":  # two sides: prefix features in batches, then one candidate pass each
            n_t = n_pairs * TEST_FRACTION
            calls = 2 * (n_t / bs + n_t * (1 + math.ceil(mnt * k / 256)))
            return 2 * n_t * (2 * seq + mnt * k), 0.0, calls
        base_negatives = cfg.negatives == "base" and p["dataset"].endswith("preflamp")
        gen = n_pairs if base_negatives else 30 * 4 if p["dataset"] == "synthetic_attributes" else 0
        return 2 * n_pairs * seq + gen * PROMPT_TOKENS, math.ceil(gen / bs) * mnt, 2 * n_pairs / bs
    if task.kind == "generations":  # every system of the runner on one shard of users
        u = min(cfg.shard_users or n_users, n_users) * cfg.n_test_items
        parts = [(u * PROMPT_TOKENS, math.ceil(u / bs) * mnt, u / bs)]  # base
        b = max(1, bs // 2)
        for ki in cfg.icl_k:
            parts.append((u * (PROMPT_TOKENS + ki * ICL_EXAMPLE_TOKENS), math.ceil(u / b) * mnt, u / b))
        if cfg.best_of_n > 0:  # samples, then one feature pass over them (shared by every RM)
            n = u * cfg.best_of_n
            parts.append((n * PROMPT_TOKENS + n * seq, math.ceil(n / bs) * mnt, 2 * n / bs))
        for _ in range(len(p["w"]) * len(cfg.methods)):  # ARGS per (w, RM), batches of bs prompts
            parts.append((u * PROMPT_TOKENS, math.ceil(u / bs) * mnt * ARGS_STEP_COST, u / bs))
        return tuple(float(sum(x)) for x in zip(*parts, strict=True))
    if task.kind == "selection_samples":  # selection_n samples per target, then one feature pass
        n = n_users * cfg.n_test_items * cfg.selection_n
        return n * PROMPT_TOKENS + n * seq, math.ceil(n / bs) * mnt, 2 * n / bs
    if task.kind == "selection_rank":  # ARGS of the selection cells (the RMs' heads are small)
        u = n_users * cfg.n_test_items
        cells = min(cfg.selection_args_cells, len(cfg.methods) * len(cfg.budgets))
        return u * PROMPT_TOKENS * cells, math.ceil(u / bs) * mnt * ARGS_STEP_COST * cells, cells * u / bs
    return 0.0, 0.0, 0.0


def roofline_seconds(task: Task, cfg: StudyConfig, size_b: float, n_users: int) -> float:
    if task.kind in FIXED_SECONDS:
        return FIXED_SECONDS[task.kind]
    tokens, steps, calls = _work(task, cfg, n_users)
    params = size_b * 1e9
    step = max(2 * params / (BANDWIDTH * BW_EFF), 0.0) + CALL_OVERHEAD
    return 2 * params * tokens / (PEAK_FLOPS * MFU) + steps * step + calls * CALL_OVERHEAD


def calibration(records: list[dict]) -> tuple[dict[str, float], str]:
    """Per-kind median of measured / roofline seconds over records measured on a GPU."""
    gpu = [r for r in records if r.get("device", "").startswith("cuda") and r.get("roofline_s")]
    ratios: dict[str, list[float]] = {}
    for r in gpu:
        ratios.setdefault(r["kind"], []).append(r["seconds"] / r["roofline_s"])
    names = sorted({r.get("device_name", "?") for r in gpu})
    return {k: statistics.median(v) for k, v in ratios.items()}, ", ".join(names)


def estimate(graph: Graph, cfg: StudyConfig, sizes: dict[str, float], records: list[dict]) -> dict:
    """GPU-hours per kind and in total, with a line saying how they were obtained."""
    factors, devices = calibration(records)
    per_kind: dict[str, float] = {}
    for t in graph.tasks:
        s = roofline_seconds(t, cfg, sizes[t.model], graph.n_users) * factors.get(t.kind, 1.0)
        per_kind[t.kind] = per_kind.get(t.kind, 0.0) + s / 3600
    how = (
        f"roofline (H100 bf16: {PEAK_FLOPS / 1e12:.0f} TFLOP/s x {MFU} MFU prefill, "
        f"{BANDWIDTH / 1e12:.2f} TB/s x {BW_EFF} decode; {PAIRS_PER_USER} pairs/user, "
        f"{PROMPT_TOKENS}-token prompts, {CALL_OVERHEAD * 1000:.0f} ms per forward call)"
    )
    if factors:
        how += f", scaled per kind by measured/roofline of {sorted(factors)} tasks on {devices}"
    else:
        how += "; no GPU-measured task records in this cache yet to calibrate it"
    return {"gpu_hours": sum(per_kind.values()), "per_kind": per_kind, "how": how}
