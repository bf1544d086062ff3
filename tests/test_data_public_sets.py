"""The three public preference sets of study 1 on fixtures written with the hubs' exact columns and types.

Known answers: PersonalLLM pairs are re-ranked here from the fixture's raw scores (z-scored per
source split, weighted by the seeded Dirichlet users); P-SOUPS / TL;DR pairs must be the rows'
own chosen / ``choice``. No test touches the network: the hub path runs against a fake
``datasets`` module.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from analysis.data.hub import HubError, assign_prompt_splits
from analysis.data.public_sets import (
    PERSONAL_LLM_RMS,
    load_public_preferences,
    personal_llm_weights,
)
from analysis.data.records import DataError
from analysis.data.splits import split_counts


# ----------------------------------------------------------------------------- fixtures (hub schemas)
def _personal_llm_rows(n: int, start: int = 0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(start, start + n):
        row = {"prompt": f"Question {i}?", "prompt_id": np.int64(i), "subset": "anthropic_helpful"}
        for k in range(1, 9):
            row[f"response_{k}"] = f"answer {k} to question {i}"
            row[f"response_{k}_model"] = f"llm-{k}"
            for j, rm in enumerate(PERSONAL_LLM_RMS):
                row[f"response_{k}_{rm}"] = float(rng.normal(j, 1 + j))  # RM-specific scales
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture
def personal_llm_dir(tmp_path):
    d = tmp_path / "PersonalLLM" / "data"
    d.mkdir(parents=True)
    _personal_llm_rows(24, 0, seed=1).to_parquet(d / "train-00000-of-00001.parquet")
    _personal_llm_rows(8, 24, seed=2).to_parquet(d / "test-00000-of-00001.parquet")
    return d


def _psoups_frame(uids, prompts, extra=None) -> pd.DataFrame:
    rows = [
        {
            "prompt": f"Explain topic {p}",
            "chosen": f"user {u} likes {p}",
            "rejected": f"user {u} dislikes {p}",
            "uid": u,
        }
        for u in uids
        for p in prompts
    ]
    df = pd.DataFrame(rows).astype({"uid": "int64"})
    if extra:
        df = df.assign(**extra)
    return df


def _tldr_row(i: int, worker: str, choice: int, post: str | None = "My post") -> dict:
    return {
        "info": {
            "id": f"t3_{i}",
            "post": None if post is None else f"{post} {i}",
            "title": f"Title {i}",
            "subreddit": "relationships",
            "site": None,
            "article": None if post is not None else f"Article {i}",
        },
        "summaries": [
            {"text": f" first summary {i}", "policy": "sup2", "note": None},
            {"text": f"second summary {i} ", "policy": "ref", "note": "ok"},
        ],
        "choice": np.int32(choice),
        "worker": worker,
        "batch": "batch3",
        "split": "train",
        "extra": {"confidence": np.int32(7)},
    }


@pytest.fixture
def tldr_dir(tmp_path):
    d = tmp_path / "summarize_from_feedback" / "comparisons"
    (d / "train").mkdir(parents=True)
    (d / "validation").mkdir()
    train = [_tldr_row(i, "w1", i % 2) for i in range(12)] + [_tldr_row(100 + i, "w2", 1) for i in range(8)]
    train += [_tldr_row(200, "w3", 0), _tldr_row(201, "w3", 1), _tldr_row(300, "w1", 0, post=None)]
    val = [_tldr_row(400 + i, w, 0) for i in range(3) for w in ("w1", "w2")]
    pd.DataFrame(train).to_parquet(d / "train" / "0000.parquet")
    pd.DataFrame(val).to_parquet(d / "validation" / "0000.parquet")
    return d


def _no_leak(pairs):
    train = {p.prompt for p in pairs if p.split == "train"}
    held = {p.prompt for p in pairs if p.split != "train"}
    assert train and held and not train & held
    texts = {t for p in pairs if p.split == "train" for t in (p.prompt, p.chosen, p.rejected)}
    assert not any(p.prompt in texts for p in pairs if p.split == "test")


# ----------------------------------------------------------------------------- PersonalLLM
def test_personal_llm_pairs_follow_the_dirichlet_users(personal_llm_dir):
    params = {"path": str(personal_llm_dir), "n_users": 5, "alpha": 0.5, "pairs_per_user": 20, "seed": 3}
    pairs, card = load_public_preferences("personal_llm", params)
    assert card.n_users == 5 and card.per_user == {f"u{i}": 20 for i in range(5)}
    assert "licence: CC BY 4.0" in card.notes
    # recompute every user's reward from the raw fixture: z-score each RM over its source split
    weights = personal_llm_weights(5, 0.5, 3)
    reward: dict[tuple[str, str], float] = {}
    for f in sorted(personal_llm_dir.iterdir()):
        df = pd.read_parquet(f)
        for rm in PERSONAL_LLM_RMS:
            cols = [f"response_{k}_{rm}" for k in range(1, 9)]
            vals = df[cols].to_numpy()
            df[cols] = (vals - vals.mean()) / vals.std()
        for _, row in df.iterrows():
            for k in range(1, 9):
                z = np.array([row[f"response_{k}_{rm}"] for rm in PERSONAL_LLM_RMS])
                for u in range(5):
                    reward[(f"u{u}", row[f"response_{k}"])] = float(weights[u] @ z)
    for p in pairs:
        assert reward[(p.user_id, p.chosen)] > reward[(p.user_id, p.rejected)]
        assert p.chosen.endswith(p.prompt.split()[-1].rstrip("?")) and p.rejected != p.chosen
    # splits by prompt across users; the hub's test prompts stay test
    _no_leak(pairs)
    hub_test = {f"Question {i}?" for i in range(24, 32)}
    assert {p.prompt for p in pairs if p.split == "test"} <= hub_test
    n_train, n_val, n_test = split_counts(20, 0.15, 0.2)
    for u in card.per_user:
        mine = [p.split for p in pairs if p.user_id == u]
        assert (mine.count("train"), mine.count("val"), mine.count("test")) == (n_train, n_val, n_test)
    # users differ (alpha < 1 makes them peaked) and the set is deterministic by seed
    assert len({tuple(np.argsort(w)[-1:]) for w in weights}) > 1
    assert load_public_preferences("personal_llm", params)[0] == pairs
    assert load_public_preferences("personal_llm", {**params, "seed": 4})[0] != pairs


def test_personal_llm_bad_scores_name_file_record_and_field(personal_llm_dir, tmp_path):
    df = _personal_llm_rows(6)
    df.loc[4, "response_3_gemma_7b"] = None  # a missing score in a parquet column -> NaN
    df.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad.parquet, record 4, field 'response_3_gemma_7b': score is nan"):
        load_public_preferences("personal_llm", {"path": str(tmp_path / "bad.parquet")})
    rows = _personal_llm_rows(3).to_dict(orient="records")
    rows[1]["response_2_beaver_7b"] = "high"
    del rows[2]["response_8"]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows[:2]))
    with pytest.raises(
        DataError, match=r"bad.jsonl, line 2, field 'response_2_beaver_7b': expected int/float, got str"
    ):
        load_public_preferences("personal_llm", {"path": str(path)})
    path.write_text(json.dumps(rows[2]))
    with pytest.raises(DataError, match=r"bad.jsonl, line 1, field 'response_8': missing field"):
        load_public_preferences("personal_llm", {"path": str(path)})
    with pytest.raises(DataError, match=r"unknown setting for personal_llm 'alpah'; did you mean 'alpha'\?"):
        load_public_preferences("personal_llm", {"path": str(personal_llm_dir), "alpah": 0.1})


# ----------------------------------------------------------------------------- P-SOUPS
def test_psoups_users_are_uids_and_chosen_is_kept(tmp_path):
    d = tmp_path / "psoups" / "default"
    d.mkdir(parents=True)
    _psoups_frame(range(1, 7), range(30)).to_parquet(d / "train-00000-of-00001.parquet")
    _psoups_frame(range(1, 7), range(30, 36)).to_parquet(d / "test-00000-of-00001.parquet")
    pairs, card = load_public_preferences("psoups", {"path": str(d), "seed": 1})
    assert card.per_user == {str(u): 36 for u in range(1, 7)}
    for p in pairs:
        assert p.chosen == f"user {p.user_id} likes {p.prompt.split()[-1]}"
        assert p.rejected == f"user {p.user_id} dislikes {p.prompt.split()[-1]}"
    _no_leak(pairs)
    assert {p.prompt for p in pairs if p.split == "test"} == {f"Explain topic {i}" for i in range(30, 36)}
    # the cap samples each user's pairs, seeded; the same seed gives the same set
    capped, card = load_public_preferences("psoups", {"path": str(d), "max_pairs_per_user": 10, "seed": 1})
    assert set(card.per_user.values()) == {10}
    assert (
        capped == load_public_preferences("psoups", {"path": str(d), "max_pairs_per_user": 10, "seed": 1})[0]
    )
    assert (
        capped != load_public_preferences("psoups", {"path": str(d), "max_pairs_per_user": 10, "seed": 2})[0]
    )


def test_psoups_new_user_config_has_only_a_test_split_and_preference_keys(tmp_path):
    df = _psoups_frame([7, 8], range(20), extra={"preference_key": "P1A P2B P3A"})
    df.loc[df.uid == 8, "preference_key"] = "P1B P2A P3B"
    df.to_parquet(tmp_path / "test-00000-of-00001.parquet")
    pairs, card = load_public_preferences("psoups", {"path": str(tmp_path), "hub_config": "new-user"})
    assert card.per_user == {"7": 20, "8": 20}
    assert "preference keys: 7=P1A P2B P3A, 8=P1B P2A P3B" in card.notes
    _no_leak(pairs)  # one source split only: re-split by prompt


def test_psoups_bad_uid_names_record_and_field(tmp_path):
    df = _psoups_frame([1], range(3)).astype({"uid": "float64"})
    df.to_parquet(tmp_path / "p.parquet")
    with pytest.raises(DataError, match=r"p.parquet, record 0, field 'uid': expected int/str, got float"):
        load_public_preferences("psoups", {"path": str(tmp_path / "p.parquet")})
    rows = [
        {"prompt": "x", "chosen": "", "rejected": "b", "uid": 1},
        {"chosen": "a", "rejected": "b", "uid": 1},
    ]
    (tmp_path / "q.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match=r"q.jsonl, line 2, field 'prompt': missing field"):
        load_public_preferences("psoups", {"path": str(tmp_path / "q.jsonl")})
    with pytest.raises(DataError, match=r"setting 'max_pairs_per_user' of psoups must be an integer >= 0"):
        load_public_preferences("psoups", {"path": str(tmp_path / "q.jsonl"), "max_pairs_per_user": -1})


def test_empty_texts_are_dropped_and_counted(tmp_path):
    df = _psoups_frame([1, 2], range(10))
    df.loc[3, "chosen"] = ""  # real data has the odd empty response: drop it, do not abort
    df.loc[5, "rejected"] = df.loc[5, "chosen"]
    df.to_parquet(tmp_path / "p.parquet")
    pairs, card = load_public_preferences("psoups", {"path": str(tmp_path / "p.parquet")})
    assert card.n_pairs == 18 and "2 with an empty text or chosen == rejected dropped" in card.notes
    rows = _personal_llm_rows(10)
    rows.loc[:, "response_2"] = ""  # response 2 never takes part in a pair
    rows.to_parquet(tmp_path / "pl.parquet")
    pairs, _ = load_public_preferences(
        "personal_llm", {"path": str(tmp_path / "pl.parquet"), "pairs_per_user": 30}
    )
    assert len(pairs) == 50 * 30 and not any("answer 2 " in t for p in pairs for t in (p.chosen, p.rejected))


# ----------------------------------------------------------------------------- TL;DR
def test_tldr_workers_with_enough_comparisons_and_choice_direction(tldr_dir):
    pairs, card = load_public_preferences("tldr", {"path": str(tldr_dir), "min_comparisons": 5, "seed": 0})
    assert card.per_user == {"w1": 15, "w2": 11}  # w3 has 2 comparisons; the CNN/DM row is skipped
    assert "1 skipped" in card.notes
    for p in pairs:
        i = int(p.prompt.split("\n")[0 + 2].split()[-1])
        assert p.prompt == f"SUBREDDIT: r/relationships\nTITLE: Title {i}\nPOST: My post {i}\nTL;DR:"
        choice = i % 2 if p.user_id == "w1" and i < 100 else (1 if 100 <= i < 200 else 0)
        texts = [f"first summary {i}", f"second summary {i}"]
        assert (p.chosen, p.rejected) == (texts[choice], texts[1 - choice])
    _no_leak(pairs)
    assert {p.prompt.split("\n")[1] for p in pairs if p.split == "val"} == {
        f"TITLE: Title {400 + i}" for i in range(3)
    }
    assert load_public_preferences("tldr", {"path": str(tldr_dir), "min_comparisons": 5})[0] == pairs
    with pytest.raises(DataError, match=r"no user has >= 50 comparisons \(the most is 15\)"):
        load_public_preferences("tldr", {"path": str(tldr_dir), "min_comparisons": 50})


def test_tldr_bad_choice_names_file_record_and_field(tmp_path):
    pd.DataFrame([_tldr_row(0, "w1", 0), _tldr_row(1, "w1", 2)]).to_parquet(tmp_path / "c.parquet")
    with pytest.raises(
        DataError, match=r"c.parquet, record 1, field 'choice': expected 2 summaries and choice 0 or 1"
    ):
        load_public_preferences("tldr", {"path": str(tmp_path / "c.parquet")})


# ----------------------------------------------------------------------------- hub access (no network)
def test_hub_path_uses_load_dataset_and_fails_in_one_line(monkeypatch, tldr_dir):
    calls = []
    frames = {s: pd.read_parquet(tldr_dir / s / "0000.parquet") for s in ("train", "validation")}

    def load_dataset(hub_id, config=None, **kw):
        calls.append((hub_id, config, kw))
        # datasets yields plain Python objects (lists, dicts, None)
        return {s: json.loads(df.to_json(orient="records")) for s, df in frames.items()}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    pairs, card = load_public_preferences("tldr", {"min_comparisons": 5})
    assert calls == [("openai/summarize_from_feedback", "comparisons", {"revision": "refs/convert/parquet"})]
    assert pairs == load_public_preferences("tldr", {"path": str(tldr_dir), "min_comparisons": 5})[0]
    assert card.source == "hub:openai/summarize_from_feedback (comparisons)"

    def offline(*a, **kw):
        raise ConnectionError(
            "Couldn't reach 'namkoong-lab/PersonalLLM' on the Hub (LocalEntryNotFoundError)\nmore"
        )

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(HubError) as e:
        load_public_preferences("personal_llm")
    assert "\n" not in str(e.value) and "hub:namkoong-lab/PersonalLLM: cannot load it" in str(e.value)
    assert "data_paths.personal_llm" in str(e.value)
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(DataError, match=r"needs the optional 'datasets' package: pip install"):
        load_public_preferences("psoups")


def test_prompt_splits_keep_source_test_and_sample_prompts():
    prompts = {f"p{i}": "train" for i in range(40)} | {f"t{i}": "test" for i in range(10)}
    out = assign_prompt_splits(prompts, val_frac=0.2, test_frac=0.2, seed=0)
    assert {p for p, s in out.items() if s == "test"} == {f"t{i}" for i in range(10)}
    assert sum(s == "val" for s in out.values()) == 8  # carved from the 40 train prompts
    small = assign_prompt_splits(prompts, val_frac=0.2, test_frac=0.2, seed=0, n_prompts=10)
    assert sorted(small.values()).count("test") == 2 and len(small) == 10
    assert small == assign_prompt_splits(prompts, val_frac=0.2, test_frac=0.2, seed=0, n_prompts=10)


# ----------------------------------------------------------------------------- study 1 of the paper preset
def test_paper_study1_builds_the_three_public_sets_from_local_copies(tmp_path, personal_llm_dir, tldr_dir):
    from analysis.config.parse import load_config
    from analysis.studies.datasets import STUDY1_DATASETS, StudyCache, study1_dataset

    ps = tmp_path / "psoups"
    ps.mkdir()
    _psoups_frame(range(1, 7), range(12)).to_parquet(ps / "train-00000-of-00001.parquet")
    _psoups_frame(range(1, 7), range(12, 15)).to_parquet(ps / "test-00000-of-00001.parquet")
    paths = {"personal_llm": str(personal_llm_dir), "psoups": str(ps), "tldr": str(tldr_dir), "lamp": ""}
    options = {"personal_llm": {"pairs_per_user": 10, "n_prompts": 20}, "tldr": {"min_comparisons": 5}}
    cfg = load_config("paper", {"data_paths": paths, "public_sets": options, "n_users": 4, "seed": 2})
    assert cfg.datasets == ["personal_llm", "psoups", "tldr"] and set(cfg.datasets) <= set(STUDY1_DATASETS)
    cache = StudyCache(tmp_path / "cache")
    for name in cfg.datasets:
        data = study1_dataset(cfg, name, None, None, cache)  # no model needed: the pairs are given
        params = {"seed": 2, "n_users": 4, **options.get(name, {}), "path": paths[name]}
        assert data.name == name and data.pairs == load_public_preferences(name, params)[0]
        assert {"train", "test"} <= {p.split for p in data.pairs}
        assert len({p.user_id for p in data.pairs}) == {"personal_llm": 4, "psoups": 4, "tldr": 2}[name]
