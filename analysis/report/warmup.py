"""Compile the bytecode of the modules a report imports, once, at set-up (``make setup`` runs it).

    python -m analysis.report.warmup

A report starts five Python processes (the runner and one kernel per notebook), each importing
torch, transformers, pandas, matplotlib, papermill and the rest. Where no bytecode is on disk and
``PYTHONDONTWRITEBYTECODE`` is set (as on the development machine), every one of them compiles
those modules again, which triples their import time. Importing what a report uses in two
processes at once, with bytecode writing on, and saving one figure compiles only those modules
(about a quarter of site-packages), in half the time compiling all of site-packages at install
time takes (measurements: ``docs/performance.md``). A module that a report
imports and no group reaches is compiled when first imported, as without this step. Exits non-zero
if a group's process fails (a module that is not installed is skipped with a message).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

# two groups of about equal compile time, run side by side (transformers is the largest part)
GROUPS: tuple[tuple[str, ...], ...] = (
    (
        "torch",
        "transformers",
        "transformers.models.llama.modeling_llama",
        "transformers.models.llama.configuration_llama",
        "transformers.models.auto.tokenization_auto",
        "transformers.tokenization_utils_fast",
        "transformers.generation",
        "safetensors.torch",
        # this package (its bytecode goes to analysis/__pycache__, as any import's would)
        "analysis.studies.rm_policy",
        "analysis.studies.preflamp",
        "analysis.report.plots",
        "analysis.report.runner",
        "analysis.inspect.widgets",
    ),
    (
        "numpy",
        "pandas",
        "scipy.stats",
        "matplotlib.pyplot",
        "matplotlib.backends.backend_agg",
        "matplotlib.backends.backend_pdf",
        "seaborn",
        "papermill",
        "nbconvert",
        "ipykernel.kernelapp",
        "ipykernel.ipkernel",
        "IPython",
        "ipywidgets",
        "rouge_score.rouge_scorer",
        "rank_bm25",
        "tqdm.auto",
        "filelock",
        "yaml",
    ),
)


def _figures() -> None:
    """Save a figure as PNG and PDF (analysis.report.plots.save_figure's formats): that loads the image and
    font-subsetting modules (PIL, fontTools) that no import above reaches."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="x")
    ax.legend()
    for fmt in ("png", "pdf"):
        fig.savefig(io.BytesIO(), format=fmt)


def _import(names: list[str]) -> None:
    """Import ``names`` (their bytecode is written as a side effect); save a figure after
    matplotlib.pyplot."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an optional package this venv lacks
            print(f"[warmup] skipped {name}: {exc}", file=sys.stderr)
    if "matplotlib.pyplot" in names:
        _figures()


def main(argv: list[str] | None = None, groups: tuple[tuple[str, ...], ...] = GROUPS) -> int:
    """Import each of ``groups`` in its own process, all at once, with bytecode writing on."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--import"]:
        _import(argv[1:])
        return 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "analysis.report.warmup", "--import"]
    procs = [subprocess.Popen([*cmd, *g], env=env) for g in groups]
    rc = max(p.wait() for p in procs)
    print(f"[warmup] compiled the report's imports in {time.monotonic() - t0:.0f} s", flush=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
