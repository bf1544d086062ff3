"""bfloat16 vs float32 on the CPU: prefill, decode steps and greedy generation of SmolLM2-135M-Instruct.

The same weights are loaded twice (``dtype="float32"`` and ``dtype="bfloat16"``) and timed on the
same inputs, alternating the two dtypes, best of ``--repeats``:

- prefill: one forward of a batch of ~130-token headline prompts (tokens/s);
- decode step: one cached one-token step with 1 row and with 10 rows (the ARGS candidate step);
- generation: :func:`analysis.decoding.base.generate_greedy` of ``--n`` prompts (the report's
  dominant kind of work), whose time ratio is the last line ``bf16_speedup=<fp32 s / bf16 s>``.

It also prints whether this CPU has native bf16 (AVX512-BF16 or AMX; without it bf16 is emulated
and slower than float32), what ``dtype: auto`` picks (float32 on every CPU: bfloat16 is used only
when asked, because its rounding changes the studies' numbers, see ``bench_precision.py``; this
benchmark measures the speed that costs) and how many greedy texts agree between the dtypes.

Run: ``python benchmarks/bench_dtype.py [--threads 2] [--n 16] [--max-new-tokens 24] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import inspect
import time

import torch
from bench_batched_generation import make_prompts

from analysis.decoding.base import GenerationConfig


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def prefill_seconds(model, batch: dict, repeats: int) -> float:
    return _best(lambda: model(**batch), repeats)


def _cache(out):
    cache = getattr(out, "cache", None)
    return out.past_key_values if cache is None else cache


@torch.no_grad()
def decode_step_seconds(model, tok, prompt: str, rows: int, repeats: int, steps: int = 8) -> float:
    """Mean time of one cached one-token step with ``rows`` rows (after a prompt prefill)."""
    from analysis.models.tokens import encode_prompt

    ids = torch.tensor([encode_prompt(tok, prompt)] * rows)
    params = inspect.signature(model.forward).parameters
    cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.2x

    def run():
        out = model(ids, use_cache=True)
        cache, nxt = _cache(out), out.logits[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for _ in range(steps):
            out = model(nxt, use_cache=True, **{cache_kw: cache})
            cache, nxt = _cache(out), out.logits[:, -1:].argmax(-1)
        return (time.perf_counter() - t0) / steps

    return min(run() for _ in range(repeats))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=16, help="prompts for prefill and greedy generation")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default="smollm2-135m-instruct")
    args = p.parse_args(argv)

    from analysis.decoding.base import generate_greedy
    from analysis.models.loading import cpu_bf16_supported, load_model, resolve_dtype
    from analysis.models.tokens import render_prompt

    torch.set_num_threads(args.threads)
    prompts = make_prompts(args.n)
    models = {dt: load_model(args.model, dtype=dt, threads=args.threads) for dt in ("float32", "bfloat16")}
    tok = models["float32"][1]
    tok.padding_side = "left"
    batch = tok(
        [render_prompt(tok, q) for q in prompts], return_tensors="pt", padding=True, add_special_tokens=False
    )
    n_tokens = int(batch["attention_mask"].sum())
    res: dict[str, dict[str, float]] = {dt: {} for dt in models}
    texts: dict[str, list[str]] = {}
    for model, _ in models.values():  # warm-up (oneDNN kernels are created on first use)
        generate_greedy(model, tok, prompts[:2], GenerationConfig(max_new_tokens=4, batch_size=2))
    for _ in range(args.repeats):  # alternate the dtypes so that machine noise hits both
        for dt, (model, _) in models.items():
            r = res[dt]
            r["prefill"] = min(r.get("prefill", 1e9), prefill_seconds(model, batch, 1))
            r["step1"] = min(r.get("step1", 1e9), decode_step_seconds(model, tok, prompts[0], 1, 1))
            r["step10"] = min(r.get("step10", 1e9), decode_step_seconds(model, tok, prompts[0], 10, 1))
            t0 = time.perf_counter()
            texts[dt] = generate_greedy(
                model, tok, prompts, GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.n)
            )
            r["generate"] = min(r.get("generate", 1e9), time.perf_counter() - t0)

    print(
        f"model={args.model} threads={args.threads} prompts={args.n} prompt_tokens={n_tokens} "
        f"max_new_tokens={args.max_new_tokens} torch={torch.__version__} "
        f"cpu_capability={torch.backends.cpu.get_cpu_capability()}"
    )
    print(f"native cpu bf16: {cpu_bf16_supported()}; dtype auto -> {resolve_dtype('auto', 'cpu')}")
    for dt, r in res.items():
        print(
            f"{dt:9s} prefill {n_tokens / r['prefill']:7.0f} tokens/s | decode step 1 row {r['step1'] * 1e3:6.1f} ms"
            f" | 10 rows {r['step10'] * 1e3:6.1f} ms | greedy generation {r['generate']:6.2f} s"
        )
    f, b = res["float32"], res["bfloat16"]
    same = sum(x == y for x, y in zip(texts["float32"], texts["bfloat16"], strict=True))
    print(
        f"ratios fp32/bf16: prefill_speedup={f['prefill'] / b['prefill']:.2f} "
        f"decode_step_ratio_1row={f['step1'] / b['step1']:.2f} decode_step_ratio_10rows={f['step10'] / b['step10']:.2f}"
    )
    print(f"identical greedy texts fp32 vs bf16: {same}/{args.n}; example bf16: {texts['bfloat16'][0]!r}")
    print(f"bf16_speedup={f['generate'] / b['generate']:.2f}")


if __name__ == "__main__":
    main()
