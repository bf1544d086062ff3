"""Data layer: records, loaders, synthetic users, Pref-LaMP builder (design section 4)."""

from analysis.data.records import DataError, DatasetCard, PreferencePair, ProfileItem, UserTask

__all__ = ["DataError", "DatasetCard", "PreferencePair", "ProfileItem", "UserTask"]
