"""benchmarks/bench_precision.py's comparison of two study-1 runs: verdicts per dataset, largest tau change."""

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.studies.findings import claim1

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_precision", ROOT / "benchmarks" / "bench_precision.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def _tau(values: dict[tuple[str, float], tuple[float, float, float]]) -> pd.DataFrame:
    rows = [
        {
            "dataset": ds,
            "variant": "score",
            "length_norm": False,
            "w": w,
            "tau": t,
            "tau_lo": lo,
            "tau_hi": hi,
            "p_value": 0.01,
            "n_rms": 80,
        }
        for (ds, w), (t, lo, hi) in values.items()
    ]
    return pd.DataFrame(rows)


def test_verdicts_of_claim1_per_dataset_and_the_largest_tau_change():
    nan = math.nan
    a = _tau(
        {("news", 1.0): (0.39, 0.30, 0.48), ("attr", 1.0): (0.10, -0.1, 0.3), ("attr", 2.0): (0.2, 0, 0.4)}
    )
    b = _tau(
        {("news", 1.0): (0.32, 0.22, 0.42), ("attr", 1.0): (-0.38, -0.5, -0.25), ("attr", 2.0): (nan,) * 3}
    )
    for tau in (a, b):
        finding = claim1(tau, 1.0)
        verdicts = bench.dataset_verdicts(finding)
        parts = {"news (score variant, paper v1)", "attr (score variant, paper v1)", "overall"}
        assert set(verdicts) == parts and verdicts["overall"] == finding["verdict"]
        assert set(verdicts.values()) <= {"supported", "not supported", "inconclusive", "not testable"}
    change, where = bench.largest_tau_change(a, b)
    assert change == math.inf and where.startswith("attr score length_norm=False w=2:")  # NaN in one run
    change, where = bench.largest_tau_change(a[a["w"] == 1.0], b[b["w"] == 1.0])
    assert change == pytest.approx(0.48) and where == "attr score length_norm=False w=1: 0.100 -> -0.380"
