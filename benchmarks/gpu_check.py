"""CUDA smoke check of the `paper` preset's code paths with tiny random models.

Not a test (CI has no GPU) and not a benchmark: run it on a machine with a CUDA GPU to check
device placement and bf16 end to end (features, RM training, cached vs reference ARGS, policy
accuracy, generation, all three studies). Prints one line per check and ``gpu_check=ok`` last.

    python benchmarks/gpu_check.py [--dtype bfloat16 float32]
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


def save_tiny(root: Path, arch: str, seed: int) -> str:
    from analysis.models import build_tiny_model

    model, tok = build_tiny_model(arch, seed=seed)
    path = root / f"tiny-{arch}-{seed}"
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return str(path)


def check_args(path: str, dtype: str, device: str) -> None:
    """Cached ARGS == reference ARGS on CUDA; w=0 == greedy; rewards on the GPU."""
    from analysis.data.records import PreferencePair
    from analysis.decoding.args import args_generate
    from analysis.decoding.base import generate_greedy
    from analysis.decoding.reference import reference_args
    from analysis.features import pair_features
    from analysis.models import load_model
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
    greedy = generate_greedy(model, tok, prompts, max_new_tokens=8)
    w0 = args_generate(model, tok, rm, prompts, users, w=0.0, k=4, max_new_tokens=8)
    same_w0 = [o.text for o in w0] == greedy
    cached = args_generate(model, tok, rm, prompts, users, w=1.5, k=4, max_new_tokens=8)
    ref = reference_args(model, tok, rm, prompts, users, w=1.5, k=4, max_new_tokens=8)
    same = [list(map(int, a.tokens)) for a in cached] == [list(map(int, b.tokens)) for b in ref]
    print(
        f"[{dtype}] args: w=0 == greedy: {same_w0}; cached == reference: {same}; "
        f"feature device {feats.chosen.device}; texts {[o.text for o in cached]}",
        flush=True,
    )
    if dtype == "float32":
        assert same_w0 and same, "cached/greedy mismatch on CUDA float32"


def check_studies(paths: list[str], dtype: str, cache: Path, device: str) -> None:
    from analysis.config import load_config
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu only to dry-run this script")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check=skipped (no CUDA device)")
        return 0
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"device: {name}, torch {torch.__version__}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    paths = [save_tiny(root, "qwen2", 0), save_tiny(root, "llama", 1)]
    for dtype in args.dtype:
        check_args(paths[0], dtype, args.device)
        check_studies(paths, dtype, root / f"cache-{dtype}", args.device)
    print("gpu_check=ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
