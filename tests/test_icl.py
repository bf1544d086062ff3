"""Retrieval, ICL prompt rendering and token budgets (analysis.generation.icl)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from analysis.data.records import DataError, ProfileItem, UserTask
from analysis.data.tasks import zero_shot_prompt
from analysis.generation.icl import ICLConfig, build_icl_prompt, icl_messages, retrieve, words
from analysis.models.tiny import build_tiny_tokenizer
from analysis.models.tokens import encode_prompt, render_prompt


def _item(i, text, out="a headline", date=None):
    return ProfileItem(input=text, output=out, item_id=f"i{i}", date=date)


PROFILE = [
    _item(0, "the city council met on monday to discuss the budget for the new year"),
    _item(1, "the city council met to discuss the zeppelin hangar and its quartz roof"),
    _item(2, "the city council met on tuesday to discuss school lunches for the year"),
    _item(3, "the city council met on friday to discuss parking in the old town"),
]


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


def test_bm25_ranks_item_sharing_rare_words_first():
    # every item shares "the city council met ... discuss"; only item 1 has the rare words
    query = "the city council will discuss a quartz zeppelin"
    ranked = retrieve(PROFILE, query, k=4, method="bm25")
    assert ranked[0].item_id == "i1"
    assert sorted(p.item_id for p in ranked) == ["i0", "i1", "i2", "i3"]
    # a query about a word only item 3 has
    assert retrieve(PROFILE, "parking problems", k=1)[0].item_id == "i3"


def test_bm25_ties_keep_profile_order_and_tokenises_words():
    assert words("Bridge. bridge, BRIDGE!") == ["bridge"] * 3
    ranked = retrieve(PROFILE, "no overlap whatsoever", k=4)
    assert [p.item_id for p in ranked] == ["i0", "i1", "i2", "i3"]


def test_fewer_items_than_k_gives_all_of_them():
    for method in ("bm25", "random", "recency"):
        got = retrieve(PROFILE[:2], "budget", k=8, method=method)
        assert sorted(p.item_id for p in got) == ["i0", "i1"]
        assert retrieve(PROFILE, "budget", k=0, method=method) == []


def test_random_retrieval_is_seeded_and_query_specific():
    many = [_item(i, f"item number {i} text") for i in range(30)]
    a = [p.item_id for p in retrieve(many, "q1", k=5, method="random", seed=0)]
    assert a == [p.item_id for p in retrieve(many, "q1", k=5, method="random", seed=0)]
    assert a != [p.item_id for p in retrieve(many, "q1", k=5, method="random", seed=1)]
    assert a != [p.item_id for p in retrieve(many, "q2", k=5, method="random", seed=0)]
    assert len(set(a)) == 5


def test_recency_newest_first_undated_last():
    prof = [
        _item(0, "a text", date="2024-03-01"),
        _item(1, "b text"),
        _item(2, "c text", date="2024-05-01"),
        _item(3, "d text", date="2023-12-31"),
    ]
    assert [p.item_id for p in retrieve(prof, "x", k=4, method="recency")] == ["i2", "i0", "i3", "i1"]
    undated = [_item(i, "t") for i in range(3)]
    assert [p.item_id for p in retrieve(undated, "x", k=2, method="recency")] == ["i2", "i1"]  # later = newer


def test_chat_turns_rendering(tok):
    ex = [_item(0, "council budget", out="Budget passes"), _item(1, "storm floods", out="Floods hit")]
    msgs = icl_messages("news_headline", "new bridge opens", ex, "chat_turns")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user"]
    assert msgs[0]["content"] == zero_shot_prompt("news_headline", "council budget")
    assert msgs[1]["content"] == "Budget passes" and msgs[3]["content"] == "Floods hit"
    assert msgs[-1]["content"] == zero_shot_prompt("news_headline", "new bridge opens")
    user_task = UserTask("u", ex, "new bridge opens", "Bridge opens")
    p = build_icl_prompt(tok, "news_headline", user_task, ICLConfig(k=2, retriever="recency"))
    assert p.text == render_prompt(tok, p.messages) and p.n_tokens == len(encode_prompt(tok, p.messages))
    assert p.example_ids == ["i1", "i0"] and p.item_budget is None
    assert p.text.endswith("<|im_start|>assistant\n")


def test_lamp_rendering_and_auto_without_chat_template():
    ex = [_item(0, "council budget", out="Budget passes"), _item(1, "storm floods", out="Floods hit")]
    msgs = icl_messages("news_headline", "new bridge opens", ex, "lamp")
    assert msgs == [
        {
            "role": "user",
            "content": '"Budget passes" is the headline for "council budget", and "Floods hit" is the headline '
            'for "storm floods".\n\n' + zero_shot_prompt("news_headline", "new bridge opens"),
        }
    ]
    plain = build_tiny_tokenizer(chat_template=False)
    assert ICLConfig().resolved(plain).rendering == "lamp"
    assert ICLConfig().resolved(build_tiny_tokenizer()).rendering == "chat_turns"


def test_token_budget_fits_and_truncates_each_example(tok):
    long = " ".join(["the council debated the new budget for schools and roads"] * 12)
    prof = [_item(i, f"{long} number {i}", out=f"Headline {i}") for i in range(4)]
    task = UserTask("u", prof, "the council voted on the budget today", "x")
    full = build_icl_prompt(tok, "news_headline", task, ICLConfig(k=4, max_prompt_tokens=100_000))
    assert full.item_budget is None and all(p.input in full.text for p in prof)
    cap = full.n_tokens // 2
    cut = build_icl_prompt(tok, "news_headline", task, ICLConfig(k=4, max_prompt_tokens=cap))
    assert cut.n_tokens <= cap and len(cut.example_ids) == 4
    assert cut.item_budget is not None and cut.item_budget < len(tok(prof[0].input).input_ids)
    assert all(f"Headline {i}" in cut.text for i in range(4))  # outputs are kept whole
    assert zero_shot_prompt("news_headline", task.test_input) in cut.text  # the new input is not cut
    assert not cut.input_truncated


def test_examples_dropped_when_budget_too_small_and_error_when_nothing_fits(tok):
    prof = [_item(i, "the council debated the budget " * 20, out=f"H{i}") for i in range(4)]
    task = UserTask("u", prof, "budget vote", "x")
    base_len = len(encode_prompt(tok, zero_shot_prompt("news_headline", "budget vote")))
    empty = [SimpleNamespace(input="", output="H0")]
    frame = len(encode_prompt(tok, icl_messages("news_headline", "budget vote", empty, "chat_turns")))
    per_example = frame - base_len  # template + instruction + output of one example, empty input
    cap = base_len + 2 * per_example + 40  # room for 2 examples of 20 input tokens, not for 3 of >= 8
    tight = build_icl_prompt(tok, "news_headline", task, ICLConfig(k=4, max_prompt_tokens=cap))
    assert tight.n_tokens <= cap
    assert tight.example_ids == ["i0", "i1"]  # equal BM25 scores: profile order; the last ones dropped
    assert 15 <= tight.item_budget <= 20
    with pytest.raises(DataError, match="max_prompt_tokens"):
        build_icl_prompt(tok, "news_headline", task, ICLConfig(k=4, max_prompt_tokens=20))
    with pytest.raises(DataError, match="retriever"):
        ICLConfig(retriever="bm42")


@pytest.mark.embedded
def test_icl_k4_beats_base_on_planted_styles(smollm2, tmp_path):
    """Known answer (issue 6): 4 examples of a planted headline style raise the oracle style score."""
    from analysis.data.synthetic import make_synthetic_users, oracle_reward
    from analysis.generation.runner import run_generations

    model, tok = smollm2
    data = make_synthetic_users(n_users=6, n_test=1, seed=0)
    rows = run_generations(
        model, tok, data.tasks, ["base", "icl:k=4"], tmp_path / "gen.jsonl", max_new_tokens=16, progress=False
    )
    score = {
        m: np.array([oracle_reward(data.styles[r["user_id"]], r["text"]) for r in rows if r["method"] == m])
        for m in ("base", "icl")
    }
    print({m: np.round(s, 2).tolist() for m, s in score.items()})
    assert len(score["icl"]) == len(score["base"]) == 6
    assert score["icl"].mean() > score["base"].mean() + 0.3
    assert (score["icl"] > score["base"]).sum() >= 4


def test_overlong_new_input_is_cut_to_fit(tok):
    task = UserTask("u", PROFILE, "the council debated the budget " * 40, "x")
    p = build_icl_prompt(tok, "news_headline", task, ICLConfig(k=2, max_prompt_tokens=150))
    assert p.input_truncated and p.n_tokens <= 150 and p.example_ids == []
    assert p.text.startswith(
        render_prompt(tok, zero_shot_prompt("news_headline", "the council debated"))[:60]
    )
