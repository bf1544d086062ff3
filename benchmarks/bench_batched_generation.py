"""Batched vs one-at-a-time greedy generation on the embedded SmolLM2-135M-Instruct (1 thread).

Generates headlines for 32 short news-like articles twice through the generation runner
(:func:`analysis.generation.runner.run_generations`, method ``base``, each run into a fresh file): once
with ``batch_size=32`` (length-bucketed chunks, left-padded batches, KV cache, shared prefix,
finished rows dropped), once with ``batch_size=1`` (prompt by prompt), after an untimed warm-up
of both (the batched workload once, two prompts one at a time). Prints the timings,
whether the texts agree, and as the last line ``batched_generation_speedup=<ratio>``
(goal >= 8; ratio = time one-at-a-time / time batched).

Run: ``python benchmarks/bench_batched_generation.py [--n 32] [--max-new-tokens 32] [--threads 1]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

SUBJECTS = [
    "The city council",
    "A local school",
    "The regional hospital",
    "Scientists at the university",
    "The football club",
    "A tech start-up",
    "The river authority",
    "Farmers in the valley",
]
EVENTS = [
    "approved a new budget for road repairs after a long debate",
    "announced a plan to cut energy use by a third within five years",
    "reported a sharp rise in visitors during the summer festival",
    "opened a new bridge that links the two halves of the old town",
]


def make_prompts(n: int) -> list[str]:
    from analysis.data.tasks import zero_shot_prompt

    arts = [
        f"{SUBJECTS[i % len(SUBJECTS)]} {EVENTS[(i // len(SUBJECTS) + i) % len(EVENTS)]}. "
        f"Officials said the decision followed months of consultation with residents."
        for i in range(n)
    ]
    return [zero_shot_prompt("news_headline", a) for a in arts]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--dtype", default="auto", help="model dtype (auto: float32 on CPU)")
    args = p.parse_args(argv)

    from analysis.generation.methods import PromptTask
    from analysis.generation.runner import run_generations
    from analysis.models.loading import load_model, model_dtype

    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, dtype=args.dtype, threads=args.threads)
    tasks = [PromptTask(f"u{i % 8}", q) for i, q in enumerate(make_prompts(args.n))]

    def run(batch_size: int, out: Path, items=tasks, max_new_tokens=args.max_new_tokens) -> list[str]:
        rows = run_generations(
            model,
            tok,
            items,
            ["base"],
            out,
            task=None,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            progress=False,
        )
        return [r["text"] for r in rows]

    with tempfile.TemporaryDirectory() as tmp:
        # warm-up, untimed and the same for both: the batched workload once and two prompts one at a
        # time, so neither timed run pays first-use costs (the heap growing to its working size,
        # first calls of a kernel at a new shape) that a long generation job pays once
        run(args.n, Path(tmp) / "warm-batched.jsonl")
        run(1, Path(tmp) / "warm-single.jsonl", tasks[:2])
        t0 = time.perf_counter()
        batched = run(args.n, Path(tmp) / "batched.jsonl")
        t_batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        single = run(1, Path(tmp) / "single.jsonl")
        t_single = time.perf_counter() - t0

    same = sum(a == b for a, b in zip(batched, single, strict=True))
    print(
        f"model={args.model} dtype={model_dtype(model)} threads={args.threads} prompts={args.n} "
        f"max_new_tokens={args.max_new_tokens}"
    )
    print(f"batched: {t_batched:.2f} s ({t_batched / args.n * 1000:.0f} ms/prompt)")
    print(f"one at a time: {t_single:.2f} s ({t_single / args.n * 1000:.0f} ms/prompt)")
    # bit-identical in float32; in bfloat16 a near-tie can split a text (information, not a check)
    print(f"identical texts: {same}/{args.n}; example: {batched[0]!r}")
    print(f"batched_generation_speedup={t_single / t_batched:.2f}")


if __name__ == "__main__":
    main()
