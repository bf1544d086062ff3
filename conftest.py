"""Settings for the doctests of analysis/ (``--doctest-modules``; tests/ has its own conftest.py).

Doctests run offline on one CPU thread, like the unit tests, and never load a real model.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

# Examples that need a loaded model, tokenizer and RM in scope and cannot run as written. They are
# in modules another branch rewrites (issue 10, items 1-3); strict: once an example is made true,
# this entry fails the run as XPASS and must be deleted.
KNOWN_FALSE_EXAMPLES = {
    "analysis.decoding.args.args_generate": "uses undefined model, tok, rm",
    "analysis.decoding.best_of_n.best_of_n": "uses undefined model, tok, rm",
    "analysis.policy_accuracy.policy_accuracy": "uses undefined model, tok, test_pairs, rm",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        reason = KNOWN_FALSE_EXAMPLES.get(item.name)
        if reason and type(item).__name__ == "DoctestItem":
            item.add_marker(
                pytest.mark.xfail(reason=f"doctest {reason} (owned by the pipeline branch)", strict=True)
            )
