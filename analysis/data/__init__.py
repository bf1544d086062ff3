"""Data layer: records, loaders, synthetic users, Pref-LaMP builder (design section 4).

Modules: ``records`` (types), ``tasks`` (prompt text), ``synthetic`` / ``attributes`` (synthetic
users), ``lamp``, ``news_category`` (loaders), ``preflamp`` (pairs from user tasks),
``preferences`` (preference JSONL), ``public_sets`` (PersonalLLM, P-SOUPS, Reddit TL;DR with
their hub schemas) over ``hub`` (local or hub rows, prompt-level splits), ``adapters`` (one call
for the ``data`` / ``rm`` commands), ``splits``,
``vendored`` (real data shipped as package data: the News Category subset).
"""

from analysis.data.loaders import TASK_SOURCES, default_data_path, load_tasks
from analysis.data.records import DataError, DatasetCard, PreferencePair, ProfileItem, UserTask

__all__ = [
    "TASK_SOURCES",
    "DataError",
    "DatasetCard",
    "PreferencePair",
    "ProfileItem",
    "UserTask",
    "default_data_path",
    "load_tasks",
]
