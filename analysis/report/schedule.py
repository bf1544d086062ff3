"""Two notebooks of one report sharing the CPU: :func:`handoff`, :func:`share_cpu`,
:func:`inputs_ready`, :func:`wait_for_inputs`, :func:`claim_cpu`, and :data:`SCHEDULE`, the
studies' hook (:class:`analysis.studies.schedule.Schedule`) that calls them.

The report runner (:func:`analysis.report.runner.run_report`) runs the notebooks one after the other,
except that a notebook may call :func:`handoff`: the runner then starts the next notebook next to
it, one thread each. Notebook 01 hands off as soon as its study starts (on CPU), so notebooks 01
and 02 run side by side from the first minute: two one-thread processes get more work done than
one two-thread process (measurements: ``docs/performance.md``). What both need (the Pref-LaMP
pairs' base generations) they split chunk by chunk through the study cache
(:func:`analysis.data.preflamp.base_generations`). What only notebook 01 computes and notebook 02
reads (the Pref-LaMP features) notebook 02 waits for (:func:`wait_for_inputs`, after its work that
needs no reward model) until notebook 01 has called :func:`inputs_ready` (or has ended).

Two processes of two torch threads each on two cores stall each other (OpenMP threads wait for
one another); one thread each does not. And a matrix product's result depends on the thread count
in the last bits (MKL splits some products differently), so *when* a process changes its thread
count must not depend on timing. Hence a fixed schedule:

- :func:`handoff` (the earlier notebook): the rest of this kernel's run uses one thread;
- :func:`share_cpu` (the later notebook, at a fixed point of its code): one thread from here on,
  whether or not the earlier notebook still runs;
- :func:`claim_cpu` (the later notebook, at a fixed point after that): wait until the earlier
  notebook has ended, then go back to the kernel's own thread count.

:func:`inputs_ready` and :func:`wait_for_inputs` only order work; they never change a thread count.

The runner tells each kernel four file paths through environment variables: the ones it touches
to hand off and to say its inputs are ready, and the ones that exist once the notebook before it
has ended or is ready (at once when none runs next to it). Outside the runner (no environment
variables) every function here does nothing, and :func:`thread_limit` is the identity.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

HANDOFF_ENV = "ANALYSIS_HANDOFF_FILE"  # path: created when the next notebook may start
PREVIOUS_ENV = "ANALYSIS_PREVIOUS_ENDED_FILE"  # path: exists once the notebook before this one ended
READY_ENV = "ANALYSIS_READY_FILE"  # path: created when what the next notebook reads is cached
PREVIOUS_READY_ENV = "ANALYSIS_PREVIOUS_READY_FILE"  # path: exists once the notebook before is ready
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


def inputs_ready() -> bool:
    """Tell the notebook after this one that what it reads from the study cache is written (its
    :func:`wait_for_inputs` returns). Returns whether a runner was told."""
    path = os.environ.get(READY_ENV)
    if not path:
        return False
    from analysis.io import write_text

    write_text(Path(path), f"{time.time():.3f}\n")
    return True


def _wait_for_any(paths: list[str], timeout: float | None, waiting: str, failed: str) -> None:
    t0 = time.monotonic()
    if not any(Path(p).exists() for p in paths):
        print(f"[cpu] waiting for the previous notebook {waiting}", flush=True)
    while not any(Path(p).exists() for p in paths):
        if timeout is not None and time.monotonic() - t0 > timeout:
            raise TimeoutError(f"the previous notebook did not {failed} within {timeout} s")
        time.sleep(POLL_SECONDS)


def wait_for_inputs(timeout: float | None = None) -> bool:
    """Under the report runner: wait until the notebook before this one has written what this one
    reads (its :func:`inputs_ready`) or has ended. Returns whether it waited for a runner; raises
    TimeoutError after ``timeout`` seconds (None: no limit). The thread count is left as it is."""
    paths = [p for p in (os.environ.get(PREVIOUS_READY_ENV), os.environ.get(PREVIOUS_ENV)) if p]
    if not paths:
        return False
    _wait_for_any(paths, timeout, "to cache what this one reads", "cache what this one reads")
    return True


def claim_cpu(timeout: float | None = None) -> bool:
    """Under the report runner: wait until the notebook before this one has ended, then return to
    this kernel's own thread count (the one before :func:`share_cpu`). Returns whether it waited
    for a runner; raises TimeoutError after ``timeout`` seconds (None: no limit)."""
    path = os.environ.get(PREVIOUS_ENV)
    if not path:
        return False
    import torch

    _wait_for_any([path], timeout, "to end before using every thread", "end")
    if _state["limit"] is not None and _state["before"] is not None:
        torch.set_num_threads(_state["before"])
    _state["limit"] = None
    return True


class ReportSchedule:
    """The studies' :class:`~analysis.studies.schedule.Schedule` in a report's notebook: the model's
    threads follow :func:`thread_limit`; a study that starts on CPU hands off (:func:`handoff`: not
    on a GPU, where the next notebook would load a second model into its memory); the readiness
    hooks are :func:`inputs_ready` and :func:`wait_for_inputs`. Outside the runner all do nothing."""

    def threads(self, threads: int) -> int:
        return thread_limit(threads)

    def started(self, device: str) -> None:
        if device == "cpu":
            handoff()

    def inputs_ready(self) -> None:
        inputs_ready()

    def wait_for_inputs(self) -> None:
        wait_for_inputs()


SCHEDULE = ReportSchedule()
