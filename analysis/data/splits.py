"""Train / validation / test assignment by item (design section 4.4).

One rule for every builder: a user's items are split, not their pairs, so that no item of the
validation or test split is ever seen in training. When every item has a date, the split is
chronological (oldest -> train, newest -> test); otherwise it is a seeded shuffle.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence


def split_counts(n: int, val_frac: float, test_frac: float) -> tuple[int, int, int]:
    """Sizes ``(n_train, n_val, n_test)`` for ``n`` items.

    ``n_test = round(n * test_frac)`` and ``n_val = round(n * val_frac)``, each raised to 1 when its
    fraction is positive and ``n >= 3``; train always keeps at least one item.
    """
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(
            f"need 0 <= val_frac, test_frac and val_frac + test_frac < 1, got {val_frac}, {test_frac}"
        )
    n_test, n_val = round(n * test_frac), round(n * val_frac)
    if n >= 3:
        n_test = max(n_test, 1 if test_frac > 0 else 0)
        n_val = max(n_val, 1 if val_frac > 0 else 0)
    while n_test + n_val >= n and (n_test or n_val):
        if n_val >= n_test and n_val:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def split_items(
    keys: Sequence[str],
    dates: Sequence[str | None] | None = None,
    *,
    val_frac: float = 0.15,
    test_frac: float = 0.2,
    seed: int | str = 0,
) -> dict[str, str]:
    """Assign each item key to ``"train"``, ``"val"`` or ``"test"``.

    With a date for every key the order is chronological (ISO dates sort as strings; ties broken
    by key), the newest items going to test. Otherwise keys are sorted, then shuffled with
    ``random.Random(seed)`` (an int or a string such as ``f"{seed}-{user_id}"``). Returns ``{key: split}``.
    """
    keys = list(dict.fromkeys(keys))
    if dates is not None and len(dates) == len(keys) and all(d for d in dates):
        order = [k for _, k in sorted(zip(dates, keys, strict=True))]
    else:
        order = sorted(keys)
        random.Random(seed).shuffle(order)
    n_train, n_val, _ = split_counts(len(order), val_frac, test_frac)
    return {
        k: "train" if i < n_train else "val" if i < n_train + n_val else "test" for i, k in enumerate(order)
    }


def split_items_across_users(
    user_items: Mapping[str, Sequence[str]],
    dates: Mapping[str, str | None] | None = None,
    *,
    val_frac: float = 0.15,
    test_frac: float = 0.2,
    seed: int | str = 0,
) -> dict[str, str]:
    """One split per item for ALL users who hold it (items shared across users, e.g. a synthetic pool).

    So that no text of a held-out pair can reach any user's training pairs, an item is train, val
    or test for everyone. Each user in turn claims still-unassigned items for test, then val,
    until their own :func:`split_counts` quota (counting items already assigned) is met, newest
    first when every item has a date (otherwise a seeded shuffle per user); every item left over
    is train. Returns ``{item: split}``.
    """
    split: dict[str, str] = {}
    for u, keys in user_items.items():
        keys = list(dict.fromkeys(keys))
        _, n_val, n_test = split_counts(len(keys), val_frac, test_frac)
        have = Counter(split[k] for k in keys if k in split)
        free = [k for k in keys if k not in split]
        if dates is not None and all(dates.get(k) for k in free):
            free.sort(key=lambda k: (dates[k], k), reverse=True)
        else:
            free.sort()
            random.Random(f"{seed}-{u}").shuffle(free)
        need = {"test": max(0, n_test - have["test"]), "val": max(0, n_val - have["val"])}
        for k in free:
            which = "test" if need["test"] else "val" if need["val"] else None
            if which is None:
                break
            split[k] = which
            need[which] -= 1
    for keys in user_items.values():
        for k in keys:
            split.setdefault(k, "train")
    return split
