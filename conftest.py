"""Settings for the doctests of analysis/ (``--doctest-modules``; tests/ has its own conftest.py).

Doctests run offline on one CPU thread, like the unit tests, and never load a real model.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
