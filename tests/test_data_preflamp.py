"""Pref-LaMP builder: base negatives (cached by model + prompt), other-user negatives, splits."""

from __future__ import annotations

import json

import pytest

from analysis.data.preflamp import build_pref_lamp
from analysis.data.records import ProfileItem, UserTask
from analysis.data.synthetic import make_synthetic_users
from analysis.data.tasks import zero_shot_prompt
from analysis.decoding.base import GenerationConfig


def _task(user, items, dated=True):
    profile = [
        ProfileItem(
            input=inp, output=out, item_id=f"{user}-{i}", date=f"2022-01-{i + 1:02d}" if dated else None
        )
        for i, (inp, out) in enumerate(items)
    ]
    return UserTask(
        user, profile, test_input="held out article", test_output="held out headline", test_id=f"{user}-t"
    )


class FakeBase:
    """A generate_fn that records its calls and returns a fixed text per prompt."""

    def __init__(self, text="generic headline"):
        self.calls: list[list[str]] = []
        self.text = text

    def __call__(self, prompts):
        self.calls.append(list(prompts))
        return [self.text for _ in prompts]


def test_base_negatives_are_cached_by_model_and_prompt(tmp_path):
    data = make_synthetic_users(seed=0)
    cache = tmp_path / "gens.jsonl"
    gen = FakeBase()
    pairs, card = build_pref_lamp(
        data.tasks, generate_fn=gen, cache_path=cache, model_id="m1", source_card=data.card
    )
    n_profile = sum(data.card.per_user.values())
    assert len(pairs) == card.n_pairs == n_profile and card.synthetic
    prompts = {p.prompt for p in pairs}
    assert sorted(x for c in gen.calls for x in c) == sorted(prompts)  # each distinct prompt generated once
    assert all(p.rejected == "generic headline" for p in pairs)
    for p in pairs:
        item = data.items[p.pair_id.split("/")[1]]
        assert p.prompt == zero_shot_prompt("news_headline", item.input) and p.chosen != p.rejected
    rows = [json.loads(x) for x in cache.read_text().splitlines()]
    assert {r["model_id"] for r in rows} == {"m1"} and len(rows) == len(prompts)

    # second build: everything from the cache, generate_fn never called
    def boom(_):
        raise AssertionError("should not generate")

    again, _ = build_pref_lamp(data.tasks, generate_fn=boom, cache_path=cache, model_id="m1")
    assert again == pairs
    # a different model id is a cache miss
    gen2 = FakeBase("other model headline")
    pairs2, _ = build_pref_lamp(data.tasks, generate_fn=gen2, cache_path=cache, model_id="m2")
    assert gen2.calls and all(p.rejected == "other model headline" for p in pairs2)
    with pytest.raises(ValueError, match="no cached base generation"):
        build_pref_lamp(data.tasks, cache_path=cache, model_id="m3")


def test_base_negative_equal_to_chosen_or_empty_is_dropped():
    t = _task("u", [("a b c", "Same"), ("d e f", "Other"), ("g h i", "Third")])
    by_prompt = {
        zero_shot_prompt("news_headline", "a b c"): "Same",  # equal to chosen -> dropped
        zero_shot_prompt("news_headline", "d e f"): "  ",  # empty -> dropped
        zero_shot_prompt("news_headline", "g h i"): "fine",
    }

    def gen(prompts):
        return [by_prompt[p] for p in prompts]

    pairs, card = build_pref_lamp([t], generate_fn=gen)
    assert [p.chosen for p in pairs] == ["Third"] and "2 pairs dropped" in card.notes


def test_other_user_negative_is_the_most_similar_input_of_another_user():
    a = _task("alice", [("volcano erupts on island", "A volcano"), ("stock market falls", "A stocks")])
    b = _task("bob", [("island volcano erupts again today", "B volcano"), ("new bakery opens", "B bakery")])
    c = _task("carol", [("market stocks fall sharply", "C stocks"), ("bakery opens downtown", "C bakery")])
    pairs, card = build_pref_lamp([a, b, c], negatives="other_user")
    neg = {(p.user_id, p.chosen): p.rejected for p in pairs}
    assert neg[("alice", "A volcano")] == "B volcano"
    assert neg[("alice", "A stocks")] == "C stocks"
    assert neg[("bob", "B bakery")] == "C bakery"
    assert neg[("carol", "C bakery")] == "B bakery"
    assert all(p.rejected != p.chosen for p in pairs) and "BM25" in card.negatives
    with pytest.raises(ValueError, match="at least 2 users"):
        build_pref_lamp([a], negatives="other_user")


def test_split_is_per_user_by_date_and_seeded_without_dates():
    items = [(f"article {i}", f"headline {i}") for i in range(10)]
    pairs, _ = build_pref_lamp([_task("u", items)], generate_fn=FakeBase())
    assert [p.split for p in pairs] == ["train"] * 6 + ["val"] * 2 + ["test"] * 2  # chronological
    undated = [_task("u", items, dated=False)]
    s0 = [p.split for p in build_pref_lamp(undated, generate_fn=FakeBase(), seed=0)[0]]
    assert s0 == [p.split for p in build_pref_lamp(undated, generate_fn=FakeBase(), seed=0)[0]]
    assert sorted(s0) == sorted(["train"] * 6 + ["val"] * 2 + ["test"] * 2)
    assert any(
        s0 != [p.split for p in build_pref_lamp(undated, generate_fn=FakeBase(), seed=s)[0]]
        for s in (1, 2, 3)
    )


def test_argument_errors():
    t = _task("u", [("a", "b")])
    with pytest.raises(ValueError, match="unknown negatives 'random'"):
        build_pref_lamp([t], negatives="random")
    with pytest.raises(ValueError, match="unknown task"):
        build_pref_lamp([t], task="poems", generate_fn=FakeBase())
    with pytest.raises(ValueError, match="returned 0 items for 1 prompts"):
        build_pref_lamp([t], generate_fn=lambda ps: [])


def test_base_negatives_with_a_real_tiny_policy(tiny_lm):
    """End to end with the project's greedy decoder on a tiny random model (no network)."""
    from analysis.decoding.base import generate_greedy

    model, tok = tiny_lm
    data = make_synthetic_users(n_users=2, n_profile=(3, 3), n_test=1, seed=0)
    pairs, card = build_pref_lamp(
        data.tasks,
        generate_fn=lambda ps: generate_greedy(model, tok, ps, GenerationConfig(max_new_tokens=4)),
        model_id="tiny",
    )
    assert 0 < card.n_pairs == len(pairs) <= 6 and card.negatives.startswith("base policy generation (tiny)")
    assert all(p.rejected.strip() and p.rejected != p.chosen for p in pairs)


# --------------------------------------------------------------------------- two processes, one cache


def _recording_fn(calls, delay=0.0):
    import time

    def fn(prompts):
        calls.append(list(prompts))
        time.sleep(delay)
        return [f"gen:{p}" for p in prompts]

    return fn


def test_chunks_are_fixed_slices_whatever_is_cached(tmp_path):
    """A second call over a list whose middle is cached generates the rest in the same chunks a
    fresh call would cut (fixed slices of the distinct prompts), only the missing prompts of each."""
    from analysis.data.preflamp import base_generations

    prompts = [f"p{i}" for i in range(10)]
    cache = tmp_path / "gen.jsonl"
    base_generations(prompts[4:6], _recording_fn([]), cache_path=cache, model_id="m", chunk_size=4)
    calls = []
    got = base_generations(
        prompts + prompts[:2], _recording_fn(calls), cache_path=cache, model_id="m", chunk_size=4
    )
    assert calls == [["p0", "p1", "p2", "p3"], ["p6", "p7"], ["p8", "p9"]]
    assert got == {p: f"gen:{p}" for p in prompts}
    from filelock import FileLock

    for lock in (tmp_path / "gen.jsonl.locks").glob("*"):  # every chunk's lock released
        FileLock(str(lock)).acquire(timeout=0).lock.release()


def test_two_processes_split_the_chunks_and_each_prompt_is_generated_once(tmp_path):
    """Two callers at once on one cache (two notebooks of a report): every chunk is generated by
    exactly one of them, and both return every generation."""
    import threading

    from analysis.data.preflamp import base_generations

    prompts = [f"prompt {i}" for i in range(12)]
    cache = tmp_path / "gen.jsonl"
    calls_a, calls_b, out = [], [], {}

    def worker(name, calls):
        out[name] = base_generations(
            prompts,
            _recording_fn(calls, delay=0.2),
            cache_path=cache,
            model_id="m",
            chunk_size=2,
            poll_seconds=0.01,
        )

    threads = [threading.Thread(target=worker, args=args) for args in (("a", calls_a), ("b", calls_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    generated = [p for c in calls_a + calls_b for p in c]
    assert sorted(generated) == sorted(prompts)  # each prompt once, by one of the two
    assert calls_a and calls_b  # both did a share
    assert out["a"] == out["b"] == {p: f"gen:{p}" for p in prompts}


def test_a_chunk_claimed_by_another_is_read_from_the_cache_or_taken_over_when_its_claimant_is_gone(
    tmp_path,
):
    import subprocess
    import sys
    import threading
    import time

    from filelock import FileLock

    from analysis.data.preflamp import GenerationCache, base_generations

    prompts = [f"q{i}" for i in range(4)]
    path = tmp_path / "gen.jsonl"
    claim = GenerationCache(path).lock_path("m", prompts[:2])
    calls, out = [], {}
    with FileLock(str(claim), timeout=0):  # "another process" holds chunk 0
        t = threading.Thread(
            target=lambda: out.update(
                base_generations(
                    prompts,
                    _recording_fn(calls),
                    cache_path=path,
                    model_id="m",
                    chunk_size=2,
                    poll_seconds=0.01,
                )
            )
        )
        t.start()
        deadline = time.time() + 30
        while not calls and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert calls == [["q2", "q3"]] and t.is_alive()  # chunk 1 done, waiting for chunk 0
        GenerationCache(path).put_many("m", prompts[:2], ["theirs 0", "theirs 1"])
    t.join(30)
    assert calls == [["q2", "q3"]] and out["q0"] == "theirs 0"  # read, not generated again

    # a process killed while it held a chunk (before it wrote anything): the chunk is taken over
    other = [f"r{i}" for i in range(2)]
    stale = GenerationCache(path).lock_path("m", other)
    code = f"import os; from filelock import FileLock; FileLock({str(stale)!r}).acquire(); os._exit(9)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    calls.clear()
    got = base_generations(other, _recording_fn(calls), cache_path=path, model_id="m", chunk_size=2)
    assert calls == [other] and got == {p: f"gen:{p}" for p in other}
