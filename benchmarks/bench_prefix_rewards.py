"""Benchmark: scoring every prefix of N responses, one pass vs one RM call per prefix.

Policy accuracy (score variant, design section 2) needs, for every response token t,

    S_u(y) = sum_t [ log pi(y_t | x, y_{<t}) + w * r_u(x, y_{<=t}) ].

- one-pass (ours): one teacher-forced forward of ``x + y`` per response gives phi(x, y_{<=t}) and
  the log-probs for every t (:func:`analysis.features.passes.prefix_features`), then the RM head.
- per-prefix (naive): for each t, run the backbone on ``x + y_{<=t}`` alone (an RM called on
  each prefix separately, as the reference ARGS does), take the last hidden state for the reward
  and the second-to-last logits for log pi(y_t | ...) (LM head on those two positions only).

Same model (embedded SmolLM2-135M-Instruct), same process, 1 CPU thread. The two S values are
checked to agree within a tolerance that fits the dtype (printed with it): 1e-3 relative in
float32 (the CPU default); 8 machine epsilons in a lower precision (bfloat16: 8 x 2^-7 = 6.25e-2),
because each of S's terms carries that dtype's rounding, in another order on each path (measured
in bfloat16: 2.0e-2). The last line printed is ``prefix_scoring_speedup=<ratio>``.

    python benchmarks/bench_prefix_rewards.py --n 4 --tokens 32 [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import time

import torch


def _responses(tok, n: int, n_tokens: int) -> tuple[list[str], list[str]]:
    from analysis.data.synthetic import make_items, render_headline
    from analysis.data.tasks import zero_shot_prompt

    items = list(make_items(max(n, 2), seed=0).values())[:n]
    prompts, responses = [], []
    for item in items:
        text = render_headline("descriptive", item) + ". " + item.input
        ids = tok(text, add_special_tokens=False).input_ids[:n_tokens]
        prompts.append(zero_shot_prompt("news_headline", item.input))
        responses.append(tok.decode(ids))
    return prompts, responses


@torch.no_grad()
def _naive_scores(model, tok, rm, users, prompts, response_ids, w: float) -> list[float]:
    from analysis.features.passes import select_hidden
    from analysis.models.tokens import encode_prompt

    out = []
    for u, p, r in zip(users, prompts, response_ids, strict=True):
        p_ids, total = encode_prompt(tok, p), 0.0
        for t in range(1, len(r) + 1):
            # logits only for the last two positions: the baseline pays for no unused LM-head rows
            o = model(torch.tensor([p_ids + r[:t]]), output_hidden_states=True, logits_to_keep=2)
            phi = select_hidden(o, -1)[:, -1].float()  # (1, H)
            lp = torch.log_softmax(o.logits[0, -2].float(), -1)[r[t - 1]]
            total += float(lp) + w * float(rm.reward([u], phi)[0])
        out.append(total)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4, help="responses")
    ap.add_argument("--tokens", type=int, default=32, help="tokens per response")
    ap.add_argument("--w", type=float, default=1.0, help="reward weight")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="auto", help="model dtype (auto: float32 on CPU)")
    args = ap.parse_args(argv)

    from analysis.features.passes import BackboneSpec, PairFeatures, prefix_features
    from analysis.models.loading import load_model, model_dtype, model_id
    from analysis.rewards import make_reward_model

    torch.manual_seed(0)
    model, tok = load_model(args.model, dtype=args.dtype, threads=args.threads)
    dtype = model_dtype(model)
    tol = max(1e-3, 8 * torch.finfo(next(model.parameters()).dtype).eps)
    H = model.config.hidden_size
    # a personalized head on SmolLM2-sized features (head quality does not affect the timing)
    g = torch.Generator().manual_seed(0)
    c, r = torch.randn(64, H, generator=g), torch.randn(64, H, generator=g)
    users = [f"u{i % 2}" for i in range(64)]
    rm = make_reward_model("lore", rank=8, steps=20).fit(
        PairFeatures(users, c, r, [str(i) for i in range(64)], ["train"] * 64, BackboneSpec(model_id(model)))
    )

    prompts, responses = _responses(tok, args.n, args.tokens)
    bench_users = [f"u{i % 2}" for i in range(args.n)]
    prefix_features(model, tok, prompts[:1], responses[:1])  # warm-up

    t0 = time.perf_counter()
    pf = prefix_features(model, tok, prompts, responses, batch_size=args.n)
    fast = [
        float(lp.sum() + args.w * rm.reward([u] * len(f), f).sum())
        for u, f, lp in zip(bench_users, pf.features, pf.logprobs, strict=True)
    ]
    t_fast = time.perf_counter() - t0

    ids = [r.tolist() for r in pf.response_ids]
    t0 = time.perf_counter()
    naive = _naive_scores(model, tok, rm, bench_users, prompts, ids, args.w)
    t_naive = time.perf_counter() - t0

    n_tok = [len(i) for i in ids]
    diff = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(fast, naive, strict=True))
    print(
        f"model={args.model} dtype={dtype} threads={torch.get_num_threads()} N={args.n} "
        f"response_tokens={n_tok} prompt_tokens={pf.prompt_lens}"
    )
    print(f"one_pass_s={t_fast:.3f} per_prefix_s={t_naive:.3f} prefixes={sum(n_tok)}")
    print(f"max_relative_score_diff={diff:.2e} (tolerance in {dtype}: {tol:.2e})")
    if diff > tol:
        raise SystemExit(
            f"one-pass and per-prefix scores disagree in {dtype} (max relative diff {diff:.2e} > {tol:.2e})"
        )
    print(f"prefix_scoring_speedup={t_naive / t_fast:.1f}")


if __name__ == "__main__":
    main()
