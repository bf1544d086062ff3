"""Study-1 datasets of the user's own: any name that is not built in, read from ``data_paths.<name>``.

``--set datasets=[mine] --set data_paths={mine: prefs.jsonl}`` makes ``mine`` a ``preferences``
dataset: the file (JSONL, CSV / TSV, JSON, parquet), a folder of such files, or a hub dataset
(``hub:owner/name``) read by :func:`analysis.data.preferences.load_preferences`, with the column
mapping ``data_columns.<name>`` (keys ``user, prompt, chosen, rejected, split, pair_id``). Splits
come from the file's split column or the source's split names, else are assigned per user by
prompt with ``pair_test_frac`` held out for test (and 0.15 for val), seeded by ``seed``.
"""

from __future__ import annotations

import os

from analysis.config.schema import StudyConfig
from analysis.errors import ConfigError


def user_preference_dataset(cfg: StudyConfig, name: str):
    """``(pairs, card)`` of the user's dataset ``name`` (``data_paths.<name>``, ``data_columns.<name>``)."""
    from analysis.data.preferences import is_hub_source, load_preferences

    path = cfg.data_paths.get(name, "")
    if not path:
        raise ConfigError(
            f"study-1 dataset {name!r} is not built in and data_paths.{name} is not set "
            f"(your own preference file: --set data_paths='{{{name}: FILE}}')"
        )
    source = path if is_hub_source(path) else os.path.expanduser(path)
    pairs, card = load_preferences(
        source, columns=cfg.data_columns.get(name), name=name, seed=cfg.seed, test_frac=cfg.pair_test_frac
    )
    return pairs, card
