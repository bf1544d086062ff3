"""Converter for the HuffPost News Category Dataset (the raw source of LaMP-4).

Input: JSON lines (or a JSON list) with fields ``headline, short_description, authors, date``
(``category, link`` optional). Output: ``n_test`` :class:`UserTask` s per author, one per held-out
article: the author's ``n_test`` **newest** articles are the test items (generation targets) and
every older article is a ``short_description -> headline`` profile item. Articles are ordered by
date; on equal dates the earlier line in the file counts as the newer one (the official file is
sorted newest first). All of an author's tasks carry the SAME profile, the articles older than
every held-out one, so no held-out article appears in a profile, in a Pref-LaMP pair built from
the profiles, in an ICL example or in an RM's training data.

Author strings are handled explicitly:

1. An empty ``authors`` field: the record is dropped (counted in the card).
2. Affiliations and by-lines are removed: a trailing ``", AP"`` / ``", AP NEWS"`` / ``", Reuters"``
   and a leading ``"By "``.
3. The rest is split on commas and ``" and "`` into names. One name: a single-author record.
   Several names (``"Eric Tucker and Rahim Faiez, AP"``) are a multi-author record, treated by
   ``multi_author``: ``"drop"`` (default: a co-written headline is no clean signal of one
   person's style), ``"first"`` (credited to the first-named author) or ``"each"`` (the article
   joins every co-author's history).
4. Names are matched case- and accent-insensitively (``"DÁNICA COTO"`` = ``"Danica Coto"``); the
   user id is the most frequent spelling.

An author becomes a user when they have at least ``n_test + min_profile`` articles (defaults
``n_test=1``, ``min_profile=4``: at least 5 articles).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

from analysis.data.readers import get_field, read_records
from analysis.data.records import DataError, DatasetCard, ProfileItem, UserTask
from analysis.errors import ConfigError, lookup

MULTI_AUTHOR_POLICIES = ("drop", "first", "each")
_AFFILIATION = re.compile(r",\s*(AP NEWS|AP|ASSOCIATED PRESS|REUTERS)\s*$", re.IGNORECASE)
_SPLIT = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+|\s*&\s*", re.IGNORECASE)


def split_authors(authors: str) -> list[str]:
    """Individual author names in an ``authors`` string (affiliation and "By " removed).

    >>> split_authors("Eric Tucker and Rahim Faiez, AP")
    ['Eric Tucker', 'Rahim Faiez']
    >>> split_authors("Elise Foley, Sara Boboltz, and Paul Blumenthal")
    ['Elise Foley', 'Sara Boboltz', 'Paul Blumenthal']
    """
    s = _AFFILIATION.sub("", authors.strip())
    s = re.sub(r"^by\s+", "", s, flags=re.IGNORECASE)
    return [n for n in (x.strip() for x in _SPLIT.split(s)) if n and n.lower() not in ("and", "ap")]


def author_key(name: str) -> str:
    """Case- and accent-insensitive key of a name."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return " ".join(folded.casefold().split())


def load_news_category(
    path: str | os.PathLike | None = None,
    *,
    min_profile: int = 4,
    n_test: int = 1,
    multi_author: str = "drop",
    skip_empty: bool = False,
) -> tuple[list[UserTask], DatasetCard]:
    """Group News Category records by author into :class:`UserTask` s (see module docstring).

    ``path=None`` reads the subset vendored in the package
    (:func:`analysis.data.vendored.news_category_path`); a user's full file works the same.

    ``skip_empty=True`` drops records with an empty headline or short_description instead of
    raising (the full Kaggle file has many empty descriptions); by default they are errors.

    ``n_test``: held-out articles (generation targets) per author, each one :class:`UserTask`
    (newest first) with the shared profile of the older articles.
    """
    lookup(MULTI_AUTHOR_POLICIES, multi_author, "multi_author policy")
    if min_profile < 1:
        raise ConfigError(f"min_profile must be >= 1 (a user needs a non-empty profile), got {min_profile}")
    if n_test < 1:
        raise ConfigError(f"n_test must be >= 1 (held-out articles per author), got {n_test}")
    if path is None:
        from analysis.data.vendored import news_category_path

        path = news_category_path()
    path = Path(path)
    by_author: dict[str, list[tuple[str, int, ProfileItem]]] = defaultdict(list)
    spellings: dict[str, Counter] = defaultdict(Counter)
    n_records = n_no_author = n_multi = n_empty = 0
    for line, index, rec in read_records(path):
        n_records += 1
        loc = {"path": path, "line": line, "record": index if line is None else None}
        authors = get_field(rec, "authors", allow_empty=True, **loc)
        headline = get_field(rec, "headline", allow_empty=skip_empty, **loc)
        desc = get_field(rec, "short_description", allow_empty=skip_empty, **loc)
        date = get_field(rec, "date", **loc)
        if not _valid_date(date):
            raise DataError(f"expected an ISO date YYYY-MM-DD, got {date!r}", field="date", **_str(loc))
        names = split_authors(authors)
        if not names:
            n_no_author += 1
            continue
        if not headline.strip() or not desc.strip():
            n_empty += 1
            continue
        if len(names) > 1:
            n_multi += 1
            if multi_author == "drop":
                continue
            names = names[:1] if multi_author == "first" else names
        item_id = str(rec.get("link") or f"line{line if line is not None else index}")
        order = line if line is not None else index
        item = ProfileItem(input=desc.strip(), output=headline.strip(), item_id=item_id, date=date[:10])
        for name in dict.fromkeys(names):
            key = author_key(name)
            spellings[key][name] += 1
            by_author[key].append((date[:10], order, item))

    if n_records == 0:
        raise DataError("no records in file", path=str(path))
    tasks: list[UserTask] = []
    per_user: dict[str, int] = {}
    for key in sorted(by_author):
        arts = by_author[key]
        if len(arts) < n_test + min_profile:
            continue
        user_id = spellings[key].most_common(1)[0][0]
        # newest first; same date -> earliest line first (file is sorted newest first)
        arts = sorted(arts, key=lambda a: (a[0], -a[1]), reverse=True)
        # one profile for every target: the articles older than all of them, oldest first
        profile = [a[2] for a in reversed(arts[n_test:])]
        for _, _, test in arts[:n_test]:
            tasks.append(
                UserTask(
                    user_id, list(profile), test.input, test.output, test_id=test.item_id, test_date=test.date
                )
            )
        per_user[user_id] = len(profile)
    if not tasks:
        raise DataError(
            f"no author has >= {n_test + min_profile} articles ({n_test} held out + {min_profile} "
            f"profile items) among {n_records} records; lower min_profile or n_test, or check the "
            "authors field",
            path=str(path),
        )
    card = DatasetCard(
        name=f"news_category:{path.stem}",
        source="news_category",
        task="news_headline",
        n_users=len(per_user),
        n_items=len(tasks),
        notes=(
            f"{n_records} records; {n_no_author} without author dropped; {n_multi} multi-author "
            f"({multi_author}); {n_empty} with an empty headline/description skipped; "
            f"users need >= {n_test} + {min_profile} articles; the {n_test} newest article(s) of each "
            f"user held out as generation targets (n_items = {len(tasks)} targets), all of a user's "
            "targets share one profile of the older articles; per_user counts profile items."
        ),
        per_user=per_user,
    )
    return tasks, card


def _str(loc: dict) -> dict:
    return {k: (str(v) if k == "path" else v) for k, v in loc.items()}


def _valid_date(date: str) -> bool:
    try:
        _dt.date.fromisoformat(date[:10])
    except ValueError:
        return False
    return True
