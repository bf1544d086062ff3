"""The studies as a task graph run by a local or a Ray engine (design section 8b; ``analysis sweep``).

- :mod:`analysis.sweep.graph`: the tasks and their dependencies (:func:`build_graph`).
- :mod:`analysis.sweep.tasks`: runs one task through the study functions (the only module here
  that imports :mod:`analysis.studies`).
- :mod:`analysis.sweep.engines`: ``local`` and ``ray`` engines.
- :mod:`analysis.sweep.estimate`: the GPU-hour estimate of ``--dry-run``.
- :mod:`analysis.cli.sweep`: the ``sweep`` command.
"""

from analysis.sweep.graph import Graph, Task, build_graph

__all__ = ["Graph", "Task", "build_graph"]
