"""Preference JSONL read/write and the public-dataset adapters on fixtures in each source schema."""

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
def test_psoups_folder_one_file_per_profile(tmp_path):
    folder = tmp_path / "psoups"
    folder.mkdir()
    for prof in ("P1A", "P1B"):
        rows = [
            {
                "user_input": f"Explain topic {i}",
                "completion_a": f"{prof} preferred {i}",
                "completion_b": f"{prof} other {i}",
            }
            for i in range(5)
        ]
        (folder / f"{prof}.json").write_text(json.dumps(rows), encoding="utf-8")
    pairs, card = load_preference_source("psoups", folder)
    assert card.n_users == 2 and card.per_user == {"P1A": 5, "P1B": 5} and card.n_pairs == 10
    p = next(p for p in pairs if p.pair_id == "P1B/3")
    assert (p.user_id, p.prompt, p.chosen, p.rejected) == (
        "P1B",
        "Explain topic 3",
        "P1B preferred 3",
        "P1B other 3",
    )


def test_personal_llm_users_are_reward_models_and_parquet(tmp_path):
    rows = []
    for i in range(4):
        row = {"prompt": f"q{i}", "subset": "s", "prompt_id": i}
        for r in range(1, 4):
            row[f"response_{r}"] = f"answer {r} to q{i}"
            row[f"response_{r}_model"] = "some-llm"
            row[f"response_{r}_gemma_2b"] = float(r)  # prefers response 3
            row[f"response_{r}_llama3_sfairx"] = float(-r)  # prefers response 1
            row[f"response_{r}_flat"] = 0.5  # ties: no pair
        rows.append(row)
    pairs, card = load_preference_source("personal_llm", _jsonl(tmp_path / "pl.jsonl", rows))
    assert card.per_user == {"gemma_2b": 4, "llama3_sfairx": 4}
    g = next(p for p in pairs if p.user_id == "gemma_2b" and p.prompt == "q2")
    assert (g.chosen, g.rejected) == ("answer 3 to q2", "answer 1 to q2")
    lam = next(p for p in pairs if p.user_id == "llama3_sfairx" and p.prompt == "q2")
    assert (lam.chosen, lam.rejected) == ("answer 1 to q2", "answer 3 to q2")
    # persona = weighted mixture of reward models
    pairs, card = load_preference_source(
        "personal_llm",
        tmp_path / "pl.jsonl",
        personas={"mostly_gemma": {"gemma_2b": 0.8, "llama3_sfairx": 0.2}},
    )
    assert card.per_user == {"mostly_gemma": 4} and pairs[0].chosen.startswith("answer 3")
    # parquet gives the same pairs
    import pandas as pd

    pd.DataFrame(rows).to_parquet(tmp_path / "pl.parquet")
    pq_pairs, _ = load_preference_source("personal_llm", tmp_path / "pl.parquet")
    js_pairs, _ = load_preference_source("personal_llm", tmp_path / "pl.jsonl")
    assert pq_pairs == js_pairs
    with pytest.raises(DataError, match="unknown reward models"):
        load_preference_source("personal_llm", tmp_path / "pl.jsonl", personas={"x": {"nope": 1.0}})


def test_tldr_comparisons_by_worker(tmp_path):
    def row(i, worker, choice):
        return {
            "info": {"id": f"t{i}", "post": f"My post {i}", "title": f"Title {i}", "subreddit": "tifu"},
            "summaries": [
                {"text": f" first {i}", "policy": "a", "note": None},
                {"text": f"second {i}", "policy": "b"},
            ],
            "choice": choice,
            "worker": worker,
            "batch": "b1",
            "split": "train",
            "extra": {"confidence": 8},
        }

    rows = [row(0, "w1", 1), row(1, "w1", 0), row(2, "w2", 0)]
    pairs, card = load_preference_source("tldr", _jsonl(tmp_path / "c.jsonl", rows))
    assert card.per_user == {"w1": 2, "w2": 1}
    p = pairs[0]
    assert p.prompt == "SUBREDDIT: r/tifu\nTITLE: Title 0\nPOST: My post 0\nTL;DR:"
    assert (p.chosen, p.rejected) == ("second 0", "first 0")
    # parquet (nested struct + list columns) gives the same pairs
    import pandas as pd

    pd.DataFrame(rows).to_parquet(tmp_path / "c.parquet")
    assert load_preference_source("tldr", tmp_path / "c.parquet")[0] == pairs
    bad = [dict(row(3, "w3", 0), choice=2)]
    with pytest.raises(DataError, match=r"c2.jsonl, line 1, field 'choice'"):
        load_preference_source("tldr", _jsonl(tmp_path / "c2.jsonl", bad))


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
