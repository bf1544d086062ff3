"""Batched vs one-at-a-time greedy generation on the embedded SmolLM2-135M-Instruct (1 thread).

Generates headlines for 32 short news-like articles twice with
:func:`analysis.decoding.base.generate_greedy`: once in one batch of 32 (left-padded, KV cache),
once prompt by prompt. Prints the timings, whether the texts agree, and as the last line
``batched_generation_speedup=<ratio>`` (goal >= 5; ratio = time one-at-a-time / time batched).

Run: ``python benchmarks/bench_batched_generation.py [--n 32] [--max-new-tokens 32] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time

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
    args = p.parse_args(argv)

    from analysis.decoding.base import generate_greedy
    from analysis.models import load_model

    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, threads=args.threads)
    prompts = make_prompts(args.n)
    generate_greedy(model, tok, prompts[:2], max_new_tokens=4, batch_size=2)  # warm-up

    t0 = time.perf_counter()
    batched = generate_greedy(model, tok, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.n)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [generate_greedy(model, tok, [q], max_new_tokens=args.max_new_tokens)[0] for q in prompts]
    t_single = time.perf_counter() - t0

    same = sum(a == b for a, b in zip(batched, single, strict=True))
    print(f"model={args.model} threads={args.threads} prompts={args.n} max_new_tokens={args.max_new_tokens}")
    print(f"batched: {t_batched:.2f} s ({t_batched / args.n * 1000:.0f} ms/prompt)")
    print(f"one at a time: {t_single:.2f} s ({t_single / args.n * 1000:.0f} ms/prompt)")
    print(f"identical texts: {same}/{args.n}; example: {batched[0]!r}")
    print(f"batched_generation_speedup={t_single / t_batched:.2f}")


if __name__ == "__main__":
    main()
