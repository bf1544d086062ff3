"""Personalized alignment analysis: do personalized reward models personalize generations?

See ``docs/design.md`` (shared) and the README. Submodules are imported lazily by users:
``analysis.config.parse``, ``analysis.models.loading``, ``analysis.data``, ``analysis.features.passes``,
``analysis.rewards``, ``analysis.decoding``, ``analysis.generation.icl``, ``analysis.metrics.intervals``,
``analysis.studies``.
"""

__version__ = "0.1.0"
