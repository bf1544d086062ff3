"""Public personalized preference sets behind one call, for the ``data`` / ``rm`` commands.

``load_preference_source(source, path, ...) -> (pairs, card)``:

- ``personal_llm``, ``psoups``, ``tldr``: the real hub schemas, users and prompt-level splits of
  :mod:`analysis.data.public_sets` (``**settings`` are that module's settings, e.g. ``alpha``,
  ``n_users``, ``min_comparisons``).
- ``vpl_hh`` (VPL relabelled HH-RLHF, Poddar et al. 2024): rows ``{chosen, rejected, objective}``
  with HH dialogues (``"\\n\\nHuman: ... \\n\\nAssistant: ..."``); user = ``objective``; the
  prompt is the shared text up to the last ``"\\n\\nAssistant:"`` (or a ``prompt`` field). Its
  pairs are split per user by prompt (:func:`analysis.data.preferences.assign_splits`).
"""

from __future__ import annotations

import os
from pathlib import Path

from analysis.data.hub import iter_hub_rows, iter_local_rows
from analysis.data.preferences import assign_splits, preference_card
from analysis.data.public_sets import PUBLIC_SETS, load_public_preferences
from analysis.data.readers import get_field
from analysis.data.records import DataError, DatasetCard, PreferencePair
from analysis.errors import ConfigError, lookup

ADAPTERS = (*PUBLIC_SETS, "vpl_hh")  # source names
_ASSISTANT = "\n\nAssistant:"


def _vpl_hh(loc: dict, rec: dict) -> PreferencePair:
    user = str(get_field(rec, "objective", kind=(str, int), **loc))
    chosen, rejected = get_field(rec, "chosen", **loc), get_field(rec, "rejected", **loc)
    if rec.get("prompt"):
        prompt = get_field(rec, "prompt", **loc)
        if chosen.startswith(prompt) and rejected.startswith(prompt):
            chosen, rejected = chosen[len(prompt) :], rejected[len(prompt) :]
    else:
        cut = chosen.rfind(_ASSISTANT)
        if cut < 0:
            raise DataError("no '\\n\\nAssistant:' turn in an HH dialogue", field="chosen", **loc)
        prompt = chosen[: cut + len(_ASSISTANT)]
        if not rejected.startswith(prompt):
            raise DataError("chosen and rejected do not share the dialogue prefix", field="rejected", **loc)
        chosen, rejected = chosen[len(prompt) :], rejected[len(prompt) :]
    return PreferencePair(user, prompt, chosen.strip(), rejected.strip())


def load_preference_source(
    source: str,
    path: str | os.PathLike | None = None,
    *,
    hub_id: str | None = None,
    val_frac: float = 0.15,
    test_frac: float = 0.2,
    seed: int = 0,
    **settings,
) -> tuple[list[PreferencePair], DatasetCard]:
    """Load a public personalized preference set as per-user pairs (see module docstring).

    Give ``path`` (local file / folder) or ``hub_id`` (``"hub"`` = the set's own hub id). Empty or
    malformed records raise :class:`DataError` naming file, line/record and field.
    """
    lookup(ADAPTERS, source, "preference source")
    if (path is None) == (hub_id is None):
        raise ConfigError("give exactly one of path= (local files) or hub_id= (Hugging Face hub)")
    if source in PUBLIC_SETS:
        params = {"path": str(path or ""), "seed": seed, "val_frac": val_frac, "test_frac": test_frac}
        if hub_id not in (None, "hub"):
            params["hub_id"] = hub_id
        return load_public_preferences(source, {**params, **settings})
    if settings:
        raise ConfigError(f"{source} takes no settings, got {sorted(settings)}")
    if hub_id in (None, "hub") and path is None:
        raise ConfigError(f"no default hub id for {source!r}; pass hub_id='owner/name'")
    rows = iter_local_rows(path) if path is not None else iter_hub_rows(str(hub_id))
    pairs: list[PreferencePair] = []
    n_records = n_same = 0
    counts: dict[str, int] = {}
    for _, loc, rec in rows:
        n_records += 1
        try:
            p = _vpl_hh(loc, rec)
        except DataError as e:
            raise e.located(path=loc["path"], line=loc.get("line"), record=loc.get("record")) from None
        if p.chosen.strip() == p.rejected.strip():
            n_same += 1
            continue
        k = counts[p.user_id] = counts.get(p.user_id, -1) + 1
        pairs.append(PreferencePair(p.user_id, p.prompt, p.chosen, p.rejected, f"{p.user_id}/{k}"))
    if not pairs:
        raise DataError(f"no usable preference pairs in {n_records} records", path=str(path or hub_id))
    pairs = assign_splits(pairs, val_frac=val_frac, test_frac=test_frac, seed=seed)
    card = preference_card(
        pairs,
        name=f"{source}:{Path(path).name if path else hub_id}",
        source=source,
        negatives="from the source's own comparisons",
        notes=f"{n_records} records; {n_same} pairs with chosen == rejected dropped",
    )
    return pairs, card
