"""Data shipped inside the package (installed with it, also from a wheel): see README.md here.

- ``news_category_subset.jsonl``: 1,172 real records of the HuffPost News Category Dataset v3
  (CC BY 4.0, Rishabh Misra), the raw source of LaMP-4. The News Category loader and the
  embedded preset read it when no other file is given; ``data_paths.news_category`` still
  points the same code at a user's full file.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

NEWS_CATEGORY_SUBSET = "news_category_subset.jsonl"
VENDORED_FILES = (NEWS_CATEGORY_SUBSET,)


def vendored_path(name: str = NEWS_CATEGORY_SUBSET) -> Path:
    """Filesystem path of a vendored data file (located with :mod:`importlib.resources`).

    >>> vendored_path().name
    'news_category_subset.jsonl'
    """
    if name not in VENDORED_FILES:
        raise ValueError(f"no vendored data file {name!r}; vendored: {', '.join(VENDORED_FILES)}")
    res = files(__name__) / name
    path = Path(str(res))
    if not path.is_file():  # e.g. a zipped install, or package data left out of the build
        raise FileNotFoundError(
            f"vendored data file {name} is missing from the installed package at {res}; "
            "reinstall personalized-alignment-analysis (its package data includes it)"
        )
    return path


def news_category_path() -> Path:
    """The vendored News Category subset (default input of the News Category loader)."""
    return vendored_path(NEWS_CATEGORY_SUBSET)
