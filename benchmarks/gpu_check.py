"""CUDA smoke check of the `paper` preset's code paths with tiny random models.

Not a test (CI has no GPU) and not a benchmark: run it on a machine with a CUDA GPU to check
device placement and bf16 end to end (features, RM training, cached vs reference ARGS, policy
accuracy, generation, all three studies), the sweep (issue 13) on tiny random Qwen2-config
models (local engine, and Ray when installed: one GPU per task, byte-identical caches), and the
ARGS overhead over greedy decoding on a randomly initialised model with the Qwen2.5-0.5B
configuration (timing needs no trained weights) at batch 1 and 8. Prints one line per check,
``args_overhead_vs_greedy[bN]=<x>`` per batch size and ``gpu_check=ok`` last.

    python benchmarks/gpu_check.py [--dtype bfloat16 float32] [--checks args studies sweep overhead]
    python benchmarks/gpu_check.py --device cpu --tiny   # CPU smoke run of this script (tiny sizes)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from analysis.decoding.base import GenerationConfig


def save_tiny(root: Path, arch: str, seed: int) -> str:
    from analysis.models.tiny import build_tiny_model

    model, tok = build_tiny_model(arch, seed=seed)
    path = root / f"tiny-{arch}-{seed}"
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return str(path)


def check_args(path: str, dtype: str, device: str) -> None:
    """Cached ARGS == reference ARGS on CUDA; w=0 == greedy; rewards on the GPU."""
    from analysis.data.records import PreferencePair
    from analysis.decoding.args import ArgsConfig, args_generate
    from analysis.decoding.base import generate_greedy
    from analysis.decoding.reference import reference_args
    from analysis.features.cache import pair_features
    from analysis.models.loading import load_model
    from analysis.rewards import make_reward_model

    model, tok = load_model(path, device=device, dtype=dtype)
    pairs = [
        PreferencePair(
            f"u{i % 2}",
            f"news item {i} city council",
            "Why did the mayor win?" if i % 2 else "mayor wins vote",
            "mayor wins vote" if i % 2 else "Why did the mayor win?",
            f"p{i}",
            "train",
        )
        for i in range(16)
    ]
    feats = pair_features(model, tok, pairs, progress=False)
    rm = make_reward_model("lore", seed=0).fit(feats)
    rm.to(device)
    prompts = ["the city council vote on the budget", "storm hits the river bridge", "team wins"]
    users = ["u0", "u1", "u0"]
    greedy = generate_greedy(model, tok, prompts, GenerationConfig(max_new_tokens=8))
    w0 = args_generate(model, tok, rm, prompts, users, ArgsConfig(w=0.0, k=4, max_new_tokens=8))
    same_w0 = [o.text for o in w0] == greedy
    cached = args_generate(model, tok, rm, prompts, users, ArgsConfig(w=1.5, k=4, max_new_tokens=8))
    ref = reference_args(model, tok, rm, prompts, users, ArgsConfig(w=1.5, k=4, max_new_tokens=8))
    same = [list(map(int, a.tokens)) for a in cached] == [list(map(int, b.tokens)) for b in ref]
    print(
        f"[{dtype}] args: w=0 == greedy: {same_w0}; cached == reference: {same}; "
        f"feature device {feats.chosen.device}; texts {[o.text for o in cached]}",
        flush=True,
    )
    if dtype == "float32":
        assert same_w0 and same, "cached/greedy mismatch on CUDA float32"


def check_studies(paths: list[str], dtype: str, cache: Path, device: str) -> None:
    from analysis.config.parse import load_config
    from analysis.studies import icl_vs_rgd_scale, preflamp_decoupling, rm_vs_policy_accuracy

    cfg = load_config(
        "paper",
        {
            "policy_model": paths[0],
            "models": paths,
            "model_sizes_b": {p: 0.001 * (i + 1) for i, p in enumerate(paths)},
            "datasets": ["synthetic_preflamp", "synthetic_style_swap", "synthetic_attributes"],
            "preflamp_source": "synthetic",
            "n_users": 4,
            "n_test_items": 2,
            "seeds": [0, 1],
            "budgets": [10, 40],
            "methods": ["shared_bt", "per_user_bt", "lore", "pal", "vpl"],
            "w_values": [0.0, 1.0],
            "k": 4,
            "best_of_n": 2,
            "icl_k": [1, 2],
            "max_new_tokens": 6,
            "batch_size": 8,
            "n_boot": 100,
            "dtype": dtype,
            "device": device,
            "max_prompt_tokens": 512,
        },
    )
    t0 = time.time()
    r1 = rm_vs_policy_accuracy(cfg, cache_dir=str(cache), progress=False)
    assert r1["points"]["policy_acc"].between(0, 1).all() and r1["rms"]["rm_acc"].between(0, 1).all()
    print(
        f"[{dtype}] study 1 ok in {time.time() - t0:.1f}s: {len(r1['rms'])} RMs, tau rows {len(r1['tau'])}",
        flush=True,
    )
    t0 = time.time()
    r2 = preflamp_decoupling(cfg, cache_dir=str(cache), progress=False)
    s = r2["summary"]
    assert s["rouge1"].between(0, 1).all() and not s["rouge1"].isna().any()
    print(f"[{dtype}] study 2 ok in {time.time() - t0:.1f}s: systems {list(s['label'])}", flush=True)
    t0 = time.time()
    r3 = icl_vs_rgd_scale(cfg, cache_dir=str(cache), progress=False)
    assert set(r3["scale"]["model"]) == set(paths) and all(math.isfinite(x) for x in r3["scale"]["rouge1"])
    print(f"[{dtype}] study 3 ok in {time.time() - t0:.1f}s: {len(r3['scale'])} rows", flush=True)


def check_sweep(paths: list[str], dtype: str, root: Path, device: str, engines: list[str]) -> None:
    """The sweep on tiny Qwen2-config models: every engine fills the same cache (byte for byte),
    the studies then compute nothing, and a rerun skips every task."""
    import warnings

    from analysis.cli.sweep import plan
    from analysis.config.parse import load_config
    from analysis.sweep.engines import run_local, run_ray

    cfg = load_config(
        "paper",
        {
            "policy_model": paths[0],
            "models": paths,
            "model_sizes_b": {p: 0.001 * (i + 1) for i, p in enumerate(paths)},
            "datasets": ["synthetic_style_swap", "synthetic_attributes"],
            "preflamp_source": "synthetic",
            "negatives": "base",
            "n_users": 3,
            "n_test_items": 1,
            "shard_users": 2,
            "seeds": [0],
            "budgets": [10],
            "methods": ["shared_bt", "lore"],
            "w_values": [0.0, 1.0],
            "k": 4,
            "best_of_n": 2,
            "icl_k": [1],
            "max_new_tokens": 4,
            "batch_size": 8,
            "n_boot": 50,
            "dtype": dtype,
            "device": device,
            "max_prompt_tokens": 512,
            "threads": 1,
        },
    )
    graph = plan(cfg, generation_w=())
    caches = {}
    for engine in engines:
        cache = root / f"sweep-{engine}-{dtype}"
        t0 = time.time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if engine == "ray":
                try:
                    import ray  # noqa: F401
                except ImportError:
                    print(f"[{dtype}] sweep ray: skipped (ray not installed; pip install -e '.[ray]')")
                    continue
                out = run_ray(graph, cfg, str(cache), echo=lambda s: None)
            else:
                out = run_local(graph, cfg, str(cache), echo=lambda s: None)
            again = run_local(graph, cfg, str(cache), echo=lambda s: None)
        assert out["done"] == len(graph.tasks) and again["skipped"] == len(graph.tasks)
        per_kind: dict[str, float] = {}
        for r in out["results"]:
            per_kind[r["kind"]] = per_kind.get(r["kind"], 0.0) + r["seconds"]
        print(
            f"[{dtype}] sweep {engine} ok in {time.time() - t0:.1f}s: {len(graph.tasks)} tasks {graph.counts()}; "
            f"task seconds {{{', '.join(f'{k}: {v:.1f}' for k, v in per_kind.items())}}}",
            flush=True,
        )
        caches[engine] = {
            str(p.relative_to(cache)): p.read_bytes()
            for p in sorted(cache.rglob("*"))
            if p.is_file() and "/sweep/" not in str(p) and not p.name.endswith((".lock", ".seconds.jsonl"))
        }
    if len(caches) == 2:
        a, b = caches.values()
        same = sorted(a) == sorted(b) and all(a[k] == b[k] for k in a)
        print(f"[{dtype}] sweep local == ray byte for byte: {same} ({len(a)} cache files)", flush=True)
        if dtype == "float32":
            assert same, "local and Ray sweeps differ on CUDA float32"


QWEN25_05B = dict(  # Qwen/Qwen2.5-0.5B-Instruct config.json (architecture only)
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    vocab_size=151936,
)


def check_args_overhead(dtype: str, device: str, tiny: bool, batch_sizes=(1, 8), n_new: int = 32) -> dict:
    """``args_overhead_vs_greedy`` = greedy tokens/s / cached-ARGS tokens/s (k=10, w=1) per batch size,
    on a random model with the Qwen2.5-0.5B configuration, fastest of 3 runs after a warm-up
    (``tiny``: 2 layers, hidden 64, the tokenizer's vocabulary, 8 new tokens, one run)."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    from analysis.data.synthetic import make_synthetic_users, style_swap_pairs
    from analysis.decoding.args import ArgsConfig, args_generate
    from analysis.features.cache import pair_features
    from analysis.models.tiny import build_tiny_tokenizer
    from analysis.rewards import make_reward_model

    tok = build_tiny_tokenizer(chat_template=True)
    arch = dict(QWEN25_05B)
    if tiny:
        arch.update(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            vocab_size=len(tok),
        )
        n_new, repeats = 8, 1
    else:
        repeats = 3
    conf = Qwen2Config(
        **arch, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(conf, dtype=getattr(torch, dtype)).to(device).eval()
    n_params = sum(p.numel() for p in model.parameters())
    pairs = style_swap_pairs(make_synthetic_users(n_users=3, n_profile=(4, 4), n_test=1, seed=0))
    rm = make_reward_model("per_user_bt", steps=40, seed=0).fit(
        pair_features(model, tok, pairs, progress=False)
    )
    rm.to(device)
    base = "Write a long, detailed story about a city council meeting where the school budget is decided."
    out = {}
    for bs in batch_sizes:
        prompts = [f"{base} Part {i}." for i in range(bs)]
        users = [rm.users_[i % len(rm.users_)] for i in range(bs)]

        def run(rm_, w, k, prompts=prompts, users=users, bs=bs):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            outs = args_generate(
                model, tok, rm_, prompts, users, ArgsConfig(w=w, k=k, max_new_tokens=n_new, batch_size=bs)
            )
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            return sum(len(o.tokens) for o in outs) / (time.perf_counter() - t0)

        run(None, 0.0, 1)  # warm-up (kernels, allocator)
        run(rm, 1.0, 10)
        greedy = max(run(None, 0.0, 1) for _ in range(repeats))  # the ARGS loop without candidates
        args_tps = max(run(rm, 1.0, 10) for _ in range(repeats))
        out[bs] = greedy / args_tps
        print(
            f"[{dtype}] ARGS overhead ({'tiny' if tiny else 'Qwen2.5-0.5B'} config, {n_params / 1e6:.1f}M params, "
            f"random weights) batch {bs}: greedy {greedy:.1f} tok/s, ARGS k=10 {args_tps:.1f} tok/s",
            flush=True,
        )
        print(f"args_overhead_vs_greedy[b{bs}]={out[bs]:.3f}", flush=True)
    return out


CHECKS = ("args", "studies", "sweep", "overhead")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu only to dry-run this script")
    ap.add_argument("--checks", nargs="+", choices=CHECKS, default=list(CHECKS))
    ap.add_argument("--engines", nargs="+", choices=("local", "ray"), default=["local", "ray"])
    ap.add_argument("--tiny", action="store_true", help="ARGS overhead on a tiny config (CPU smoke runs)")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check=skipped (no CUDA device)")
        return 0
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"device: {name}, torch {torch.__version__}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    paths = [save_tiny(root, "qwen2", 0), save_tiny(root, "llama", 1)]
    qwen = [paths[0], save_tiny(root, "qwen2", 2)]
    for dtype in args.dtype:
        if "args" in args.checks:
            check_args(paths[0], dtype, args.device)
        if "studies" in args.checks:
            check_studies(paths, dtype, root / f"cache-{dtype}", args.device)
        if "sweep" in args.checks:
            check_sweep(qwen, dtype, root, args.device, args.engines)
        if "overhead" in args.checks:
            check_args_overhead(dtype, args.device, args.tiny)
    print("gpu_check=ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
