"""Preference JSONL read/write and the public-dataset adapters (the real hub schemas: test_data_public_sets.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.data.adapters import load_preference_source
from analysis.data.preferences import assign_splits, read_preferences, write_preferences
from analysis.data.records import DataError, PreferencePair


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_roundtrip_and_atomic_write(tmp_path):
    pairs = [PreferencePair("u1", f"p{i}", f"good {i}", f"bad {i}", f"u1/{i}", "train") for i in range(3)]
    path = tmp_path / "prefs.jsonl"
    assert write_preferences(path, pairs) == 3
    assert read_preferences(path) == pairs
    # a failure while writing leaves neither the target nor a temp file
    out = tmp_path / "broken.jsonl"
    with pytest.raises(AttributeError):
        write_preferences(out, [pairs[0], "not a pair"])
    assert list(tmp_path.iterdir()) == [path]


def test_missing_splits_are_assigned_per_user_by_prompt(tmp_path):
    rows = [
        {"user_id": u, "prompt": f"p{i}", "chosen": "a", "rejected": "b"}
        for u in ("u1", "u2")
        for i in range(10)
    ]
    pairs = read_preferences(_jsonl(tmp_path / "p.jsonl", rows), seed=1)
    assert [p.pair_id for p in pairs[:2]] == ["u1/1", "u1/2"]  # default id: user / line
    for u in ("u1", "u2"):
        splits = [p.split for p in pairs if p.user_id == u]
        assert splits.count("test") == 2 and splits.count("val") == 2 and splits.count("train") == 6
    assert [p.split for p in read_preferences(tmp_path / "p.jsonl", seed=1)] == [p.split for p in pairs]
    # assign_splits: all pairs of one prompt share a split
    many = [PreferencePair("u", f"p{i % 4}", f"c{i}", "r", f"u/{i}") for i in range(12)]
    split_of = {}
    for p in assign_splits(many, seed=0):
        assert split_of.setdefault(p.prompt, p.split) == p.split


@pytest.mark.parametrize(
    "lines, expect",
    [
        (['{"user_id": "u", "prompt": "p", "chosen": "c"}'], ["line 1", "field 'rejected'", "missing field"]),
        (
            ['{"user_id": "u", "prompt": "p", "chosen": "c", "rejected": ""}'],
            ["line 1", "field 'rejected'", "empty string"],
        ),
        (
            ['{"user_id": "u", "prompt": "p", "chosen": "c", "rejected": "r", "split": "holdout"}'],
            ["line 1", "field 'split'"],
        ),
        (
            [
                '{"user_id": "u", "prompt": "p", "chosen": "c", "rejected": "r", "split": "train"}',
                '{"user_id": "u", "prompt": "q", "chosen": "c", "rejected": "r"}',
            ],
            ["line 2", "field 'split'", "give all or none"],
        ),
        (
            [
                '{"user_id": "u", "prompt": "p", "chosen": "c", "rejected": "r", "pair_id": "x"}',
                '{"user_id": "u", "prompt": "q", "chosen": "c", "rejected": "r", "pair_id": "x"}',
            ],
            ["line 2", "duplicate pair_id"],
        ),
        (
            ['{"user_id": "u", "prompt": "p", "chosen": "c", "rejected": "r"}', "{oops"],
            ["line 2", "malformed JSON"],
        ),
        ([], ["no preference pairs"]),
    ],
)
def test_read_preferences_bad_input(tmp_path, lines, expect):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_preferences(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    for part in expect:
        assert part in msg, msg


def test_read_preferences_non_utf8(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"user_id": "u", "prompt": "p", "chosen": "c", "rejected": "r"}\n{"user_id": "\xff"}\n'
    )
    with pytest.raises(DataError, match=r"line 2.*not valid UTF-8"):
        read_preferences(path)


# ----------------------------------------------------------------------------- adapters
def test_public_sets_go_through_the_real_schema_loaders(tmp_path):
    """psoups / personal_llm / tldr are the hub schemas of analysis.data.public_sets (tested there)."""
    rows = [
        {"prompt": f"Explain topic {i}", "chosen": f"u{u} good {i}", "rejected": f"u{u} bad {i}", "uid": u}
        for u in (1, 2)
        for i in range(6)
    ]
    pairs, card = load_preference_source("psoups", _jsonl(tmp_path / "ps.jsonl", rows), seed=3)
    assert card.per_user == {"1": 6, "2": 6} and card.name == "psoups"
    assert all(p.chosen == f"u{p.user_id} good {p.prompt.split()[-1]}" for p in pairs)
    again, _ = load_preference_source("psoups", tmp_path / "ps.jsonl", seed=3, max_pairs_per_user=4)
    assert len(again) == 8
    with pytest.raises(DataError, match=r"ps.jsonl, line 1, field 'uid': missing field"):
        load_preference_source(
            "psoups", _jsonl(tmp_path / "ps.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"}])
        )


def test_vpl_relabelled_hh_objective_is_user(tmp_path):
    dia = "\n\nHuman: How do I bake bread?\n\nAssistant:"
    rows = [
        {"chosen": dia + " Knead, rise, bake.", "rejected": dia + " No idea.", "objective": "helpful"},
        {
            "chosen": dia + " Be careful with the oven.",
            "rejected": dia + " Knead, rise, bake.",
            "objective": "harmless",
        },
        {"prompt": "Q?", "chosen": "Q? yes", "rejected": "Q? no", "objective": "helpful"},
    ]
    pairs, card = load_preference_source("vpl_hh", _jsonl(tmp_path / "vpl.jsonl", rows))
    assert card.per_user == {"harmless": 1, "helpful": 2}
    assert (pairs[0].prompt, pairs[0].chosen, pairs[0].rejected) == (dia, "Knead, rise, bake.", "No idea.")
    assert (pairs[2].prompt, pairs[2].chosen, pairs[2].rejected) == ("Q?", "yes", "no")
    missing = [{"chosen": dia + " a", "rejected": dia + " b"}]
    with pytest.raises(DataError, match=r"line 1, field 'objective': missing field"):
        load_preference_source("vpl_hh", _jsonl(tmp_path / "v2.jsonl", missing))


def test_adapter_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown preference source"):
        load_preference_source("nope", tmp_path)
    with pytest.raises(ValueError, match="exactly one of"):
        load_preference_source("tldr")
    with pytest.raises(DataError, match="file not found"):
        load_preference_source("tldr", tmp_path / "absent.jsonl")


@pytest.mark.parametrize("alias", ["validation", "dev", "Validation", "val"])
def test_split_aliases_are_read_as_val(tmp_path, alias):
    rows = [
        {"user_id": "u", "prompt": "p", "chosen": "c", "rejected": "r", "split": "train"},
        {"user_id": "u", "prompt": "q", "chosen": "c", "rejected": "r", "split": alias},
        {"user_id": "u", "prompt": "s", "chosen": "c", "rejected": "r", "split": "test"},
    ]
    pairs = read_preferences(_jsonl(tmp_path / "prefs.jsonl", rows))
    assert [p.split for p in pairs] == ["train", "val", "test"]


# ----------------------------------------------------------------------------- what real exports contain


def test_unescaped_line_separators_inside_strings_are_one_line(tmp_path):
    """json.dumps(..., ensure_ascii=False) leaves U+0085, U+2028 and U+2029 unescaped inside strings;
    str.splitlines() would break the line there (and refuse the file as malformed JSON)."""
    texts = ["next\u0085line", "line\u2028separator", "para\u2029graph"]
    rows = [
        {"user_id": "u", "prompt": f"p{i}", "chosen": t, "rejected": "plain", "split": "train"}
        for i, t in enumerate(texts)
    ]
    path = tmp_path / "multilingual.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert "\u2028" in path.read_text(encoding="utf-8")  # really written unescaped
    pairs = read_preferences(path)
    assert [p.chosen for p in pairs] == texts and [p.pair_id for p in pairs] == ["u/1", "u/2", "u/3"]


def test_crlf_line_ends_are_read(tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b'{"user_id": "u", "prompt": "p", "chosen": "c", "rejected": "r"}\r\n')
    assert read_preferences(path)[0].rejected == "r"


def test_numeric_ids_are_read_as_strings(tmp_path):
    rows = [
        {"user_id": 7, "prompt": f"p{i}", "chosen": "c", "rejected": "r", "pair_id": 100 + i}
        for i in range(3)
    ]
    pairs = read_preferences(_jsonl(tmp_path / "num.jsonl", rows))
    assert {p.user_id for p in pairs} == {"7"} and [p.pair_id for p in pairs] == ["100", "101", "102"]
    bad = [{"user_id": 1.5, "prompt": "p", "chosen": "c", "rejected": "r"}]
    with pytest.raises(DataError, match=r"line 1, field 'user_id': expected a string or integer id"):
        read_preferences(_jsonl(tmp_path / "frac.jsonl", bad))
    with pytest.raises(DataError, match=r"field 'user_id': expected str/int/float, got bool"):
        read_preferences(_jsonl(tmp_path / "bool.jsonl", [{**bad[0], "user_id": True}]))


def test_equal_responses_are_dropped_and_counted_in_the_card(tmp_path, capsys):
    from analysis.cli import main
    from analysis.data.preferences import load_preferences

    rows = [{"user_id": "u", "prompt": f"p{i}", "chosen": "same", "rejected": "same "} for i in range(2)]
    rows += [{"user_id": "u", "prompt": f"q{i}", "chosen": "good", "rejected": "bad"} for i in range(5)]
    path = _jsonl(tmp_path / "same.jsonl", rows)
    pairs, card = load_preferences(path)
    assert len(pairs) == 5 and all(p.chosen != p.rejected for p in pairs)
    assert card.dropped == {"chosen == rejected": 2} and card.n_pairs == 5
    assert "7 rows" in card.notes and "2 pairs with chosen == rejected dropped" in card.notes
    assert main(["data", "summary", "--source", "preferences", "--path", str(path)]) == 0
    out = capsys.readouterr().out
    assert "dropped:   2 (chosen == rejected)" in out and "pairs: 5" in out
    with pytest.raises(DataError, match="all 2 have chosen == rejected"):
        load_preferences(_jsonl(tmp_path / "all_same.jsonl", rows[:2]))


def test_csv_parquet_and_a_column_mapping(tmp_path):
    import pandas as pd

    from analysis.data.preferences import load_preferences
    from analysis.errors import ConfigError

    frame = pd.DataFrame(
        {
            "worker": [3, 3, 4, 4],
            "question": ["q1", "q2", "q1", "q2"],
            "better": ['a, "quoted"', "b\nsecond line", "c", "d"],
            "worse": ["x", "y", "z", "w"],
            "part": ["train", "test", "train", "dev"],
        }
    )
    columns = {
        "user": "worker",
        "prompt": "question",
        "chosen": "better",
        "rejected": "worse",
        "split": "part",
    }
    frame.to_csv(tmp_path / "prefs.csv", index=False)
    frame.to_parquet(tmp_path / "prefs.parquet")
    for name in ("prefs.csv", "prefs.parquet"):
        pairs, card = load_preferences(tmp_path / name, columns=columns)
        assert [(p.user_id, p.split) for p in pairs] == [
            ("3", "train"),
            ("3", "test"),
            ("4", "train"),
            ("4", "val"),
        ]
        assert pairs[1].chosen == "b\nsecond line" and pairs[0].chosen == 'a, "quoted"'
        assert card.n_users == 2 and "from the 'part' column" in card.notes
    # a CSV row's line is where it starts (the quoted cell of row 2 spans two lines)
    frame.assign(worse=["x", "y", "", "w"]).to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(DataError, match=r"gap\.csv, line 5, field 'worse': missing field"):
        load_preferences(tmp_path / "gap.csv", columns=columns)
    with pytest.raises(ConfigError, match="did you mean 'prompt'"):
        load_preferences(tmp_path / "prefs.csv", columns={"promt": "question"})


def test_source_split_names_of_a_folder_are_kept(tmp_path):
    from analysis.data.preferences import load_preferences

    (tmp_path / "d").mkdir()
    for split, n in (("train", 4), ("test", 2)):
        _jsonl(
            tmp_path / "d" / f"{split}.jsonl",
            [{"user_id": "u", "prompt": f"{split}{i}", "chosen": "c", "rejected": "r"} for i in range(n)],
        )
    pairs, card = load_preferences(tmp_path / "d")
    assert [p.split for p in pairs] == ["test"] * 2 + ["train"] * 4
    assert len({p.pair_id for p in pairs}) == 6 and "source's split names" in card.notes


def test_a_hub_dataset_keeps_its_split_names(monkeypatch):
    """``hub:owner/name`` goes through analysis.data.hub.iter_hub_rows (stood in for here: no network)."""
    import analysis.data.hub as hub
    from analysis.data.preferences import is_hub_source, load_preferences

    seen = []

    def rows(hub_id, config=None, **kw):
        seen.append(hub_id)
        for split, n in (("train", 3), ("validation", 1), ("test", 2)):
            for i in range(n):
                rec = {"worker": 5, "prompt": f"{split}{i}", "chosen": "c", "rejected": "r"}
                yield hub.split_name(split), {"path": f"hub:{hub_id}[{split}]", "record": i}, rec

    monkeypatch.setattr(hub, "iter_hub_rows", rows)
    pairs, card = load_preferences("hub:me/prefs", columns={"user": "worker"})
    assert seen == ["me/prefs"] and [p.split for p in pairs] == ["train"] * 3 + ["val"] + ["test"] * 2
    assert {p.user_id for p in pairs} == {"5"} and len({p.pair_id for p in pairs}) == 6
    assert is_hub_source("hub:me/prefs") and is_hub_source("me/prefs") and not is_hub_source("me/prefs.jsonl")
