"""Data layer: records, loaders, synthetic users, Pref-LaMP builder (design section 4).

Modules: ``records`` (types), ``tasks`` (prompt text), ``synthetic`` / ``attributes`` (synthetic
users), ``lamp``, ``news_category`` (loaders), ``preflamp`` (pairs from user tasks),
``preferences`` (preference JSONL), ``adapters`` (public preference sets), ``splits``,
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
