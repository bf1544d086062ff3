"""One entry point for the studies: ``load_tasks(source, path, **kw) -> (tasks, card)``."""

from __future__ import annotations

import os

from analysis.data.records import DatasetCard, UserTask
from analysis.errors import ConfigError, lookup

TASK_SOURCES = ("synthetic", "lamp", "news_category")


def default_data_path(source: str) -> str | None:
    """The data file a source reads when none is given: the vendored subset for ``news_category``
    (installed with the package), ``None`` for sources the user must supply (``lamp``)."""
    if source == "news_category":
        from analysis.data.vendored import news_category_path

        return str(news_category_path())
    return None


def load_tasks(
    source: str, path: str | os.PathLike | None = None, **kw
) -> tuple[list[UserTask], DatasetCard]:
    """Dispatch to a loader.

    - ``"synthetic"``: :func:`analysis.data.synthetic.make_synthetic_users` (``path`` unused;
      ``n_users``, ``n_profile``, ``n_test``, ``seed``).
    - ``"lamp"``: :func:`analysis.data.lamp.load_lamp` (``task``, ``split``, ...).
    - ``"news_category"``: :func:`analysis.data.news_category.load_news_category`
      (``min_profile``, ``n_test``, ``multi_author``, ``skip_empty``); ``path=None`` reads the subset
      vendored in the package.

    Unknown keywords raise ``TypeError`` from the loader (never silently dropped).
    """
    if source == "synthetic":
        from analysis.data.synthetic import make_synthetic_users

        data = make_synthetic_users(**kw)
        return data.tasks, data.card
    lookup(TASK_SOURCES, source, "task source")
    if path is None and source == "news_category":
        path = default_data_path(source)
    if path is None:
        raise ConfigError(f"source {source!r} needs a path")
    if source == "lamp":
        from analysis.data.lamp import load_lamp

        return load_lamp(path, **kw)
    from analysis.data.news_category import load_news_category

    return load_news_category(path, **kw)
