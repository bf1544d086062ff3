"""The one hook through which whoever runs a study orders its work against other processes.

A study calls its ``schedule`` at fixed points of its code: which thread count its model uses
(:meth:`Schedule.threads`), when its main work starts (:meth:`Schedule.started`), when what
another process reads from the study cache is written (:meth:`Schedule.inputs_ready`) and where
it needs what another process writes (:meth:`Schedule.wait_for_inputs`). The default,
:data:`NO_SCHEDULE`, does nothing: a study run alone (a script, a sweep task, a test) is
unaffected. The report's two notebooks sharing the CPU pass :data:`analysis.report.schedule.SCHEDULE`;
the studies never import it, so how a report schedules its notebooks stays out of the science.
"""

from __future__ import annotations


class Schedule:
    """No-op hooks; a runner overrides the ones it needs (any object with these methods will do)."""

    def threads(self, threads: int) -> int:
        """The torch thread count a study's model uses now, given the config's ``threads``."""
        return threads

    def started(self, device: str) -> None:
        """The study's main work starts now, on ``device``."""

    def inputs_ready(self) -> None:
        """What the next process reads from the study cache is written."""

    def wait_for_inputs(self) -> None:
        """Return once what this study reads from another process is in the study cache."""


NO_SCHEDULE = Schedule()
