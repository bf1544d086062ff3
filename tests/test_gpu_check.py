"""benchmarks/gpu_check.py stays runnable: its CPU smoke mode (tiny config) prints the ARGS overhead lines."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_smoke_prints_args_overhead(capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = ["--device", "cpu", "--tiny", "--dtype", "float32", "--checks", "overhead"]
    assert mod.main(argv) == 0
    out = capsys.readouterr().out
    lines = {
        ln.split("=")[0]: float(ln.split("=")[1]) for ln in out.splitlines() if ln.startswith("args_overhead")
    }
    assert set(lines) == {"args_overhead_vs_greedy[b1]", "args_overhead_vs_greedy[b8]"}
    assert all(v > 0 for v in lines.values()) and out.rstrip().endswith("gpu_check=ok")
    # the full-size check builds the real Qwen2.5-0.5B architecture
    assert mod.QWEN25_05B["hidden_size"] == 896 and mod.QWEN25_05B["num_hidden_layers"] == 24
