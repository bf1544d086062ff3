"""Synthetic users, oracle rewards, style-swap and attribute pairs, task prompts (issue 3 item 4)."""

from __future__ import annotations

import json

import pytest

from analysis.data.attributes import (
    ATTRIBUTES,
    attribute_features,
    attribute_preference_pairs,
    attribute_reward,
)
from analysis.data.synthetic import (
    STYLES,
    make_items,
    make_synthetic_users,
    oracle_reward,
    render_headline,
    style_swap_pairs,
)
from analysis.data.tasks import TASKS, get_task, strip_lamp_prefix, zero_shot_prompt


def test_zero_shot_prompt_known_text():
    assert zero_shot_prompt("news_headline", "  A bridge opened.  ") == (
        "Write a headline for the following news article. Reply with the headline only.\n\nArticle: A bridge opened."
    )
    assert set(TASKS) == {"news_headline", "scholarly_title", "tweet_paraphrase"}
    assert get_task("scholarly_title").lamp_id == "LaMP-5"
    with pytest.raises(
        ValueError, match="unknown task 'poetry' .choices: news_headline, scholarly_title, tweet_paraphrase"
    ):
        zero_shot_prompt("poetry", "x")
    assert (
        strip_lamp_prefix("news_headline", "Generate a headline for the following article: Body.") == "Body."
    )
    assert strip_lamp_prefix("news_headline", "No prefix here.") == "No prefix here."


def _dump(data) -> str:
    return json.dumps(data.to_dict(), sort_keys=True, ensure_ascii=False)


def test_same_seed_is_byte_identical_and_seed_matters():
    a, b = make_synthetic_users(seed=3), make_synthetic_users(seed=3)
    assert _dump(a) == _dump(b)
    assert _dump(a) != _dump(make_synthetic_users(seed=4))
    pa = [p.to_dict() for p in style_swap_pairs(a, seed=1)]
    pb = [p.to_dict() for p in style_swap_pairs(b, seed=1)]
    assert json.dumps(pa) == json.dumps(pb)


def test_users_tasks_and_card_shape():
    data = make_synthetic_users(n_users=6, n_profile=(12, 20), n_test=4, seed=0)
    assert len(data.styles) == 6 and len(set(data.styles.values())) == 6
    assert len(data.tasks) == 6 * 4
    assert len({t.test_id for t in data.tasks}) == len(data.tasks)
    assert data.card.synthetic and data.card.task == "news_headline" and "SYNTHETIC" in data.card.notes
    for user, style in data.styles.items():
        mine = [t for t in data.tasks if t.user_id == user]
        assert len(mine) == 4
        profile = mine[0].profile
        assert all(t.profile is profile for t in mine)  # same profile for every test item of a user
        assert 12 <= len(profile) <= 20 and data.card.per_user[user] == len(profile)
        prof_ids = {p.item_id for p in profile}
        test_ids = {t.test_id.split("/")[1] for t in mine}
        assert not prof_ids & test_ids
        assert max(p.date for p in profile) < min(t.test_date for t in mine)  # test items are the newest
        for p in profile:
            assert p.output == render_headline(style, data.items[p.item_id])
            assert p.input == data.items[p.item_id].input and len(p.input.split(". ")) >= 3


def test_items_are_readable_and_distinct():
    items = make_items(80, seed=1)
    inputs = [it.input for it in items.values()]
    assert len(set(inputs)) == 80
    assert len({it.date for it in items.values()}) == 80
    first = next(iter(items.values()))
    assert first.input[0].isupper() and first.input.endswith("told reporters.")


def test_real_completions_differ_across_users_for_the_same_item():
    data = make_synthetic_users(n_users=7, seed=0)
    by_item: dict[str, dict[str, str]] = {}
    for t in data.tasks:
        for p in t.profile:
            by_item.setdefault(p.item_id, {})[t.user_id] = p.output
    shared = [outs for outs in by_item.values() if len(outs) > 1]
    assert shared, "users must share items for the comparison to mean anything"
    for outs in shared:
        assert len(set(outs.values())) == len(outs)
    for item in data.items.values():
        assert len({render_headline(s, item) for s in STYLES}) == len(STYLES)


def test_oracle_ranks_own_style_above_every_other_style_for_every_item():
    items = make_items(120, seed=5)
    for item in items.values():
        heads = {s: render_headline(s, item) for s in STYLES}
        for s in STYLES:
            own = oracle_reward(s, heads[s])
            assert own > 0.8
            for o in STYLES:
                if o != s:
                    assert oracle_reward(s, heads[o]) < own, (s, o, heads[o])


def test_oracle_known_values_on_prefixes():
    assert all(oracle_reward(s, "") == 0.0 for s in STYLES)
    assert oracle_reward("listicle", "5") == pytest.approx(0.7)
    assert oracle_reward("listicle", "5 things") == pytest.approx(1.0)
    assert oracle_reward("kicker", "SPO") == pytest.approx(0.4)
    assert oracle_reward("kicker", "SPORTS:") == pytest.approx(0.8)
    assert oracle_reward("kicker", "SPORTS: club wins") == pytest.approx(1.0)
    assert oracle_reward("question", "Why did") == pytest.approx(0.7)
    assert oracle_reward("question", "Why did it rain?") == pytest.approx(1.0)
    assert oracle_reward("quote", '"We') == pytest.approx(0.7)
    assert oracle_reward("quote", '"We won," says') == pytest.approx(1.0)
    assert oracle_reward("terse", "riverton") == pytest.approx(1.0)
    assert oracle_reward("terse", "Riverton") == pytest.approx(0.0)
    assert oracle_reward("exclaim", "Wow!") == pytest.approx(1.0)
    # descriptive grows with length (the only style rewarded for growing)
    d = [
        oracle_reward("descriptive", " ".join(["In", "Riverton", "A", "Team", "Wins", "Big", "Prize"][:n]))
        for n in range(1, 8)
    ]
    assert d == sorted(d) and d[0] < d[-1]
    # terse is penalised for length past 7 words
    assert oracle_reward("terse", "a b c d e f g") > oracle_reward("terse", "a b c d e f g h i")
    with pytest.raises(ValueError, match="unknown style"):
        oracle_reward("haiku", "x")


def test_oracle_separates_styles_on_two_word_prefixes():
    for item in make_items(60, seed=2).values():
        prefixes = {s: " ".join(render_headline(s, item).split()[:2]) for s in STYLES}
        for s in STYLES:
            own = oracle_reward(s, prefixes[s])
            assert all(oracle_reward(s, prefixes[o]) < own for o in STYLES if o != s), (s, prefixes)


def test_style_swap_pairs_prefer_own_style_and_split_by_date():
    data = make_synthetic_users(seed=0)
    pairs = style_swap_pairs(data, seed=0)
    n = sum(data.card.per_user.values())  # held-out pairs repeating a training text are dropped
    assert 0.9 * n <= len(pairs) <= n
    for p in pairs:
        style = data.styles[p.user_id]
        item = data.items[p.pair_id.split("/")[1]]
        assert p.prompt == zero_shot_prompt("news_headline", item.input)
        assert p.chosen == render_headline(style, item) and p.rejected != p.chosen
        assert p.rejected in {render_headline(s, item) for s in data.styles.values() if s != style}
        assert oracle_reward(style, p.chosen) > oracle_reward(style, p.rejected)
    for user in data.styles:
        mine = [p for p in pairs if p.user_id == user]
        date = {p.pair_id: data.items[p.pair_id.split("/")[1]].date for p in mine}
        train = [date[p.pair_id] for p in mine if p.split == "train"]
        test = [date[p.pair_id] for p in mine if p.split == "test"]
        assert train and test  # every user keeps training and test pairs (split by item across users)
    assert {p.split for p in pairs} == {"train", "val", "test"}


def test_too_many_users_is_a_clear_error():
    with pytest.raises(ValueError, match="one distinct style each"):
        make_synthetic_users(n_users=len(STYLES) + 1)


def test_attribute_reward_known_answer_and_opposite_users():
    f = attribute_features("Is this 5 Big Wins?")
    assert f == {
        "length": 5 / 20,
        "question": 1.0,
        "numbers": 1.0,
        "exclamation": 0.0,
        "capitalised": 0.6,
        "colon": 0.0,
    }
    assert attribute_reward({"question": 2.0, "length": -1.0}, "Is this 5 Big Wins?") == pytest.approx(
        2.0 - 0.25
    )
    with pytest.raises(ValueError, match="unknown attributes"):
        attribute_reward({"sarcasm": 1.0}, "x")

    prompts = [f"prompt {i}" for i in range(30)]
    samples = {
        p: [f"Short {i}!", f"a much longer plain answer number {i} here today", f"What: {i}?"]
        for i, p in enumerate(prompts)
    }
    ap = attribute_preference_pairs(prompts, samples, n_users=4, seed=0)
    assert set(ap.weights) == {"user00", "user01", "user02", "user03"}
    assert ap.weights["user01"] == {a: -w for a, w in ap.weights["user00"].items()}
    assert set(ap.weights["user00"]) == set(ATTRIBUTES)
    for p in ap.pairs:
        assert ap.reward(p.user_id, p.chosen) > ap.reward(p.user_id, p.rejected)
    # the same prompt and sample pair is labelled oppositely by opposite users
    labels = {(p.user_id, p.prompt): (p.chosen, p.rejected) for p in ap.pairs}
    flipped = [
        labels[("user00", q)] == tuple(reversed(labels[("user01", q)]))
        for q in prompts
        if ("user00", q) in labels
        and ("user01", q) in labels
        and set(labels[("user00", q)]) == set(labels[("user01", q)])
    ]
    assert flipped and all(flipped)
    # split is by prompt, shared by users
    split_of = {}
    for p in ap.pairs:
        assert split_of.setdefault(p.prompt, p.split) == p.split
    again = attribute_preference_pairs(prompts, samples, n_users=4, seed=0)
    assert [p.to_dict() for p in again.pairs] == [p.to_dict() for p in ap.pairs]


def test_style_swap_split_is_by_item_across_users_no_test_text_in_any_training_pair():
    from analysis.data.synthetic import make_synthetic_users, style_swap_pairs

    data = make_synthetic_users(n_users=6, n_profile=(12, 20), n_test=2, seed=3)
    pairs = style_swap_pairs(data)
    train_texts = {t for p in pairs if p.split == "train" for t in (p.chosen, p.rejected)}
    held = [p for p in pairs if p.split != "train"]
    assert held and not any(t in train_texts for p in held for t in (p.chosen, p.rejected))
    by_item: dict = {}
    for p in pairs:
        by_item.setdefault(p.pair_id.split("/", 1)[1], set()).add(p.split)
    assert all(len(s) == 1 for s in by_item.values())  # one split per item for every user
    assert {p.split for p in pairs} == {"train", "val", "test"}


def test_preflamp_on_shared_synthetic_items_splits_by_item_across_users():
    from analysis.data.preflamp import build_pref_lamp
    from analysis.data.synthetic import make_synthetic_users

    data = make_synthetic_users(n_users=5, n_profile=(12, 16), n_test=1, seed=1)
    pairs, _ = build_pref_lamp(data.tasks, task="news_headline", negatives="other_user")
    train_texts = {t for p in pairs if p.split == "train" for t in (p.chosen, p.rejected)}
    train_chosen = {p.chosen for p in pairs if p.split == "train"}
    held = [p for p in pairs if p.split != "train"]
    assert held and not any(p.chosen in train_texts or p.rejected in train_chosen for p in held)
    by_item: dict = {}
    for p in pairs:
        by_item.setdefault(p.pair_id.split("/", 1)[1], set()).add(p.split)
    assert all(len(s) == 1 for s in by_item.values())  # one split per shared item
