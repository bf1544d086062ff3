"""Two notebooks of one report sharing the CPU: :func:`handoff`, :func:`share_cpu`, :func:`claim_cpu`.

The report runner (:func:`analysis.report.run_report`) runs the notebooks one after the other,
except that a notebook may call :func:`handoff` once everything the *next* notebook reads from the
study cache is written (notebook 01 does once the pairs and features of the Pref-LaMP dataset
that notebook 02 reads before its :func:`claim_cpu` are cached): the runner then starts the next
notebook while this one finishes its remaining work (study 1's other datasets and its RM
populations, mostly small single-threaded steps), so the second core is not left idle.

Two processes of two torch threads each on two cores stall each other (OpenMP threads wait for
one another: a generation run took 3x as long next to a one-thread job, measured here); one thread
each does not. And a matrix product's result depends on the thread count in the last bits (MKL
splits some products differently), so *when* a process changes its thread count must not depend
on timing. Hence a fixed schedule:

- :func:`handoff` (the earlier notebook): the rest of this kernel's run uses one thread;
- :func:`share_cpu` (the later notebook, at a fixed point of its code): one thread from here on,
  whether or not the earlier notebook still runs;
- :func:`claim_cpu` (the later notebook, at a fixed point after that): wait until the earlier
  notebook has ended, then go back to the kernel's own thread count.

The runner tells each kernel two file paths through environment variables: the one it touches to
hand off, and the one that exists once the notebook before it has ended (at once when none runs
next to it). Outside the runner (no environment variables) every function here does nothing, and
:func:`thread_limit` is the identity.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

HANDOFF_ENV = "ANALYSIS_HANDOFF_FILE"  # path: created when the next notebook may start
PREVIOUS_ENV = "ANALYSIS_PREVIOUS_ENDED_FILE"  # path: exists once the notebook before this one ended
POLL_SECONDS = 0.5

_state: dict = {"limit": None, "before": None}


def thread_limit(threads: int) -> int:
    """``threads``, capped to one while this kernel shares the CPU (after :func:`handoff` or
    :func:`share_cpu`, until :func:`claim_cpu`). The studies' model holder sets this."""
    limit = _state["limit"]
    return threads if limit is None else max(1, min(threads, limit))


def _one_thread() -> None:
    import torch

    if _state["limit"] is None:
        _state["before"] = torch.get_num_threads()
    _state["limit"] = 1
    torch.set_num_threads(1)


def handoff() -> bool:
    """Tell the report runner that the next notebook may start now; this kernel goes on with one
    thread. Returns whether a runner was told (False outside it: nothing changes)."""
    path = os.environ.get(HANDOFF_ENV)
    if not path:
        return False
    from analysis.io import write_text

    _one_thread()
    write_text(Path(path), f"{time.time():.3f}\n")
    return True


def share_cpu() -> bool:
    """Under the report runner: use one thread from here on (until :func:`claim_cpu`), whether or
    not the notebook before this one still runs, so the numbers never depend on timing."""
    if not os.environ.get(PREVIOUS_ENV):
        return False
    _one_thread()
    return True


def claim_cpu(timeout: float | None = None) -> bool:
    """Under the report runner: wait until the notebook before this one has ended, then return to
    this kernel's own thread count (the one before :func:`share_cpu`). Returns whether it waited
    for a runner; raises TimeoutError after ``timeout`` seconds (None: no limit)."""
    path = os.environ.get(PREVIOUS_ENV)
    if not path:
        return False
    import torch

    t0 = time.monotonic()
    if not Path(path).exists():
        print("[cpu] waiting for the previous notebook to end before using every thread", flush=True)
    while not Path(path).exists():
        if timeout is not None and time.monotonic() - t0 > timeout:
            raise TimeoutError(f"the previous notebook did not end within {timeout} s")
        time.sleep(POLL_SECONDS)
    if _state["limit"] is not None and _state["before"] is not None:
        torch.set_num_threads(_state["before"])
    _state["limit"] = None
    return True
