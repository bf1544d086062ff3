"""Record types shared by every loader, builder and study (design section 4.1).

Plain dataclasses, validated on construction: a record that exists is a valid record.
Validation failures raise :class:`DataError`, which names the file, the record and the field so
the CLI can print one clear line instead of a traceback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from analysis.errors import UserError, lookup

SPLITS = ("train", "val", "test")


class DataError(UserError):
    """A user-facing data problem: names the file, the record (id or line) and the field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        record: str | int | None = None,
        field: str | None = None,
        line: int | None = None,
    ):
        self.path, self.record, self.field, self.reason = path, record, field, message
        self.line = line
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")

    def located(
        self, *, path: str | None = None, record: str | int | None = None, line: int | None = None
    ) -> DataError:
        """Return a copy with missing location parts filled in (used by loaders)."""
        return DataError(
            self.reason,
            path=self.path if self.path is not None else path,
            record=self.record if self.record is not None else record,
            field=self.field,
            line=self.line if self.line is not None else line,
        )


def _check_text(value: Any, name: str, record: str | None, *, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {type(value).__name__}", record=record, field=name)
    if not allow_empty and not value.strip():
        raise DataError("is empty", record=record, field=name)


@dataclass(frozen=True)
class ProfileItem:
    """One past (input -> output) example of a user, e.g. article text -> the user's headline."""

    input: str
    output: str
    item_id: str
    date: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.item_id, "item_id", None)
        _check_text(self.input, "input", self.item_id)
        _check_text(self.output, "output", self.item_id)
        if self.date is not None:
            _check_text(self.date, "date", self.item_id)


@dataclass
class UserTask:
    """The Pref-LaMP unit: a user's history plus a held-out input with its real completion."""

    user_id: str
    profile: list[ProfileItem]
    test_input: str
    test_output: str | None = None
    test_id: str | None = None
    test_date: str | None = None

    def __post_init__(self) -> None:
        rec = self.test_id or self.user_id
        _check_text(self.user_id, "user_id", rec)
        if not self.profile:
            raise DataError("user has an empty profile", record=rec, field="profile")
        for item in self.profile:
            if not isinstance(item, ProfileItem):
                raise DataError("profile entries must be ProfileItem", record=rec, field="profile")
        _check_text(self.test_input, "test_input", rec)
        if self.test_output is not None:
            _check_text(self.test_output, "test_output", rec)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UserTask:
        d = dict(d)
        d["profile"] = [ProfileItem(**p) for p in d["profile"]]
        return cls(**d)


@dataclass(frozen=True)
class PreferencePair:
    """A user's preference: ``chosen`` preferred over ``rejected`` for ``prompt``."""

    user_id: str
    prompt: str
    chosen: str
    rejected: str
    pair_id: str = ""
    split: str = "train"

    def __post_init__(self) -> None:
        rec = self.pair_id or None
        _check_text(self.user_id, "user_id", rec)
        _check_text(self.prompt, "prompt", rec)
        _check_text(self.chosen, "chosen", rec)
        _check_text(self.rejected, "rejected", rec)
        lookup(SPLITS, self.split, "split", DataError, record=rec, field="split")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DatasetCard:
    """What a dataset is: where it came from, what task, how many of what, how negatives were made."""

    name: str
    source: str
    task: str
    n_users: int
    n_items: int = 0
    n_pairs: int = 0
    negatives: str | None = None
    synthetic: bool = False
    notes: str = ""
    per_user: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(
        default_factory=dict
    )  # rows left out, by reason (e.g. chosen == rejected)

    def to_dict(self) -> dict:
        return asdict(self)
