"""Compile the bytecode of the modules a report imports, once, at set-up (``make setup`` runs it).

    python -m analysis.warmup

A report starts five Python processes (the runner and one kernel per notebook), each importing
torch, transformers, pandas, matplotlib, papermill and the rest. Where no bytecode is on disk and
``PYTHONDONTWRITEBYTECODE`` is set (as on our CI machines), every one of them compiles those
modules again: measured here, these imports took ~36 s instead of ~12 s. Compiling all of
site-packages at install time (``uv pip install --compile-bytecode``) took ~50 s of the set-up;
importing what a report uses, in two processes at once with bytecode writing on, compiles only
those modules (~4,000 of ~15,000 files) in ~20 s. A module a report imports that is not listed
here is compiled when first imported, as without this step. Exits non-zero if a group fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

# two groups of about equal compile time, run side by side (transformers alone is ~17 s)
GROUPS: tuple[tuple[str, ...], ...] = (
    (
        "torch",
        "transformers",
        "transformers.models.llama.modeling_llama",
        "transformers.models.llama.configuration_llama",
        "transformers.tokenization_utils_fast",
        "transformers.generation",
        "safetensors.torch",
    ),
    (
        "numpy",
        "pandas",
        "scipy.stats",
        "matplotlib.pyplot",
        "seaborn",
        "papermill",
        "nbconvert",
        "ipykernel.kernelapp",
        "ipykernel.ipkernel",
        "IPython",
        "ipywidgets",
        "rouge_score.rouge_scorer",
        "bm25s",
        "tqdm.auto",
        "filelock",
        "yaml",
    ),
)


def main() -> int:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.monotonic()
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:  # an optional package this venv lacks\n"
        "        print(f'[warmup] skipped {name}: {exc}', file=sys.stderr)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, *group], env=env) for group in GROUPS]
    rc = max(p.wait() for p in procs)
    print(f"[warmup] compiled the report's imports in {time.monotonic() - t0:.0f} s", flush=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
