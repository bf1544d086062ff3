"""Personalized alignment analysis: do personalized reward models personalize generations?

See ``docs/design.md`` (shared) and the README. Submodules are imported lazily by users:
``analysis.config``, ``analysis.models``, ``analysis.data``, ``analysis.features``,
``analysis.rewards``, ``analysis.decoding``, ``analysis.icl``, ``analysis.metrics``,
``analysis.studies``.
"""

__version__ = "0.1.0"
