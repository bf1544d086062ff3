"""Pref-LaMP negatives kinds base_sample and icl_other: deterministic, other-author-only ICL, own cache rows."""

from __future__ import annotations

import json

import pytest

from analysis.data.preflamp import (
    ICL_OTHER_K,
    NEGATIVES,
    build_pref_lamp,
    negatives_model_id,
    other_author,
    prompt_seed,
)
from analysis.data.records import ProfileItem, UserTask
from analysis.data.tasks import zero_shot_prompt
from analysis.decoding.base import GenerationConfig, generate_greedy, generate_sample
from analysis.errors import ConfigError

# three hand-made authors; every word of an author's texts is marked with that author's letter, so
# a text of one author can be recognised inside a prompt
_AUTHORS = {
    "ua": [
        ("alpha storm floods aa river town", "Aa floods hit river town"),
        ("alpha council votes aa budget", "Aa council passes budget"),
        ("alpha stadium opens aa downtown", "Aa stadium opens"),
        ("alpha school reopens aa after repairs", "Aa school reopens"),
    ],
    "ub": [
        ("bravo storm floods bb river valley", "Bb valley flooded"),
        ("bravo council votes bb taxes", "Bb taxes voted"),
        ("bravo museum opens bb downtown", "Bb museum opens"),
    ],
    "uc": [
        ("charlie storm floods cc coast", "Cc coast flooded"),
        ("charlie mayor votes cc budget", "Cc mayor budget"),
        ("charlie park opens cc downtown", "Cc park opens"),
    ],
}


def _tasks() -> list[UserTask]:
    out = []
    for u, items in _AUTHORS.items():
        prof = [
            ProfileItem(inp, out_, f"{u}-{i}", date=f"2022-01-{i + 1:02d}")
            for i, (inp, out_) in enumerate(items)
        ]
        out.append(UserTask(u, prof, f"{u} held out article", f"{u} held out headline", f"{u}-t"))
    return out


def _texts(user: str) -> set[str]:
    return {t for inp, out in _AUTHORS[user] for t in (inp, out)}


@pytest.fixture(scope="module")
def icl_fn(tiny_lm):
    """The studies' icl_other prompt builder (the project's ICL builder) on the tiny tokenizer."""
    from analysis.config.parse import load_config
    from analysis.studies.datasets import icl_other_prompt_fn

    return icl_other_prompt_fn(load_config("embedded", {}), tiny_lm[1])


class Recorder:
    """A generate_fn recording the prompts it is given; the text names the other author shown."""

    def __init__(self):
        self.calls: list = []

    def __call__(self, prompts):
        self.calls.extend(prompts)
        return [f"headline {i}" for i, _ in enumerate(prompts)]


def test_icl_other_prompts_hold_only_another_authors_items(icl_fn, tmp_path):
    gen = Recorder()
    pairs, card = build_pref_lamp(
        _tasks(), negatives="icl_other", generate_fn=gen, icl_prompt_fn=icl_fn, model_id="m", seed=3
    )
    n_items = sum(map(len, _AUTHORS.values()))
    assert len(gen.calls) == len(pairs) == n_items and "[negatives=icl_other]" in card.negatives
    by_input = {inp: u for u, items in _AUTHORS.items() for inp, _ in items}
    for messages in gen.calls:
        assert isinstance(messages, list) and messages[-1]["role"] == "user"
        query = next(
            inp for inp in by_input if zero_shot_prompt("news_headline", inp) == messages[-1]["content"]
        )
        user = by_input[query]
        shown = " ".join(m["content"] for m in messages[:-1])
        assert shown, "the prompt shows examples"
        # none of the pair's own author's texts (the query article is only in the last turn)
        assert not any(t in shown for t in _texts(user)), (user, shown)
        # all examples from ONE other author, at most ICL_OTHER_K of them
        owners = {v for v in _AUTHORS for t in _texts(v) if t in shown}
        assert len(owners) == 1 and user not in owners
        assert sum(m["role"] == "assistant" for m in messages) == ICL_OTHER_K
    for p in pairs:  # the pair keeps the zero-shot prompt and the author's own headline
        u, item = p.pair_id.split("/")
        inp, out = _AUTHORS[u][int(item.split("-")[1])]
        assert p.prompt == zero_shot_prompt("news_headline", inp) and p.chosen == out


def test_other_author_is_seeded_per_item_and_never_the_user():
    users = ["ua", "ub", "uc", "ud"]
    picks = {(u, i): other_author(u, f"{u}-{i}", users, seed=0) for u in users for i in range(20)}
    assert all(v != u and v in users for (u, _), v in picks.items())
    assert picks == {(u, i): other_author(u, f"{u}-{i}", users, seed=0) for u in users for i in range(20)}
    assert len({v for (u, _), v in picks.items() if u == "ua"}) == 3  # spread over the other authors
    assert picks != {(u, i): other_author(u, f"{u}-{i}", users, seed=1) for u in users for i in range(20)}
    with pytest.raises(ConfigError, match="at least 2 users"):
        other_author("ua", "x", ["ua"], seed=0)


def test_icl_other_with_the_tiny_model_is_deterministic(tiny_lm, icl_fn, tmp_path):
    model, tok = tiny_lm

    def greedy(prompts):
        return generate_greedy(model, tok, prompts, GenerationConfig(max_new_tokens=5, batch_size=4))

    def build(seed, cache):
        return build_pref_lamp(
            _tasks(),
            negatives="icl_other",
            generate_fn=greedy,
            icl_prompt_fn=icl_fn,
            cache_path=tmp_path / cache,
            model_id="tiny",
            seed=seed,
        )[0]

    a, b = build(0, "a.jsonl"), build(0, "b.jsonl")
    assert a == b and all(p.rejected.strip() for p in a)
    # another seed picks other authors for some items: other prompts, so other cache rows
    rows = lambda f: {json.loads(x)["prompt"] for x in (tmp_path / f).read_text().splitlines()}  # noqa: E731
    build(1, "c.jsonl")
    assert rows("a.jsonl") != rows("c.jsonl")


def _sample_fn(model, tok):
    cfg = GenerationConfig(max_new_tokens=6, batch_size=3, temperature=1.0, top_p=1.0)

    def fn(prompts, seeds):
        return [s[0] for s in generate_sample(model, tok, prompts, cfg, seeds=seeds)]

    return fn


def test_base_sample_is_deterministic_per_prompt_and_seed(tiny_lm, tmp_path):
    model, tok = tiny_lm
    fn = _sample_fn(model, tok)

    def build(seed, cache):
        return build_pref_lamp(
            _tasks(),
            negatives="base_sample",
            sample_fn=fn,
            cache_path=tmp_path / cache,
            model_id="tiny",
            seed=seed,
        )

    (a, card), (b, _) = build(0, "a.jsonl"), build(0, "b.jsonl")
    assert a == b and "[negatives=base_sample]" in card.negatives and "temperature 1" in card.negatives
    other, _ = build(1, "c.jsonl")
    assert len(other) == len(a) and any(
        x.rejected != y.rejected for x, y in zip(a, other, strict=True)
    )  # another seed: some samples differ
    # a prompt's sample does not depend on the prompts generated with it (chunks, cache, order)
    prompts = [p.prompt for p in a]
    alone = fn(prompts[2:3], [prompt_seed(0, prompts[2])])
    assert alone[0] == a[2].rejected
    shuffled = list(reversed(prompts))
    assert fn(shuffled, [prompt_seed(0, p) for p in shuffled]) == [p.rejected for p in reversed(a)]


def test_generate_sample_with_per_prompt_seeds_checks_their_count(tiny_lm):
    model, tok = tiny_lm
    with pytest.raises(ValueError, match="seeds has 1 entries for 2 prompts"):
        generate_sample(model, tok, ["a", "b"], GenerationConfig(max_new_tokens=2), seeds=[0])


def test_kinds_never_share_cache_rows(icl_fn, tmp_path):
    cache = tmp_path / "gens.jsonl"
    tasks = _tasks()
    built = {}
    for kind in ("base", "base_sample", "icl_other"):
        text = f"{kind} text"
        built[kind], _ = build_pref_lamp(
            tasks,
            negatives=kind,
            generate_fn=lambda ps, text=text: [text] * len(ps),
            sample_fn=lambda ps, seeds, text=text: [text] * len(ps),
            icl_prompt_fn=icl_fn,
            cache_path=cache,
            model_id="m",
        )
    rows = [json.loads(x) for x in cache.read_text().splitlines()]
    ids = {negatives_model_id("m", k) for k in ("base", "base_sample", "icl_other")}
    assert {r["model_id"] for r in rows} == ids and len(ids) == 3
    n = sum(map(len, _AUTHORS.values()))
    assert len(rows) == 3 * n  # base and base_sample share prompts, yet each has its own rows
    text_of = {negatives_model_id("m", k): f"{k} text" for k in ("base", "base_sample", "icl_other")}
    assert all(r["response"] == text_of[r["model_id"]] for r in rows)

    def boom(*_):
        raise AssertionError("should read the cache")

    for kind, pairs in built.items():  # each kind rebuilt from the cache gets its own texts back
        again, _ = build_pref_lamp(
            tasks,
            negatives=kind,
            generate_fn=boom,
            sample_fn=boom,
            icl_prompt_fn=icl_fn,
            cache_path=cache,
            model_id="m",
        )
        assert again == pairs and {p.rejected for p in again} == {f"{kind} text"}
    assert negatives_model_id("m", "base_sample", seed=1) != negatives_model_id("m", "base_sample")


def test_negatives_typos_get_a_did_you_mean_error():
    from analysis.config.parse import load_config

    with pytest.raises(ConfigError, match="did you mean 'base_sample'"):
        build_pref_lamp(_tasks(), negatives="base_sampel")
    with pytest.raises(ConfigError, match="real_negatives.*did you mean 'icl_other'"):
        load_config("embedded", {"real_negatives": "icl_othr"})
    with pytest.raises(ConfigError, match="needs icl_prompt_fn"):
        build_pref_lamp(_tasks(), negatives="icl_other", generate_fn=Recorder())
    with pytest.raises(ConfigError, match="no cached base generation"):
        build_pref_lamp(_tasks(), negatives="base_sample")


def test_every_kind_is_named_on_the_card(icl_fn):
    for kind in NEGATIVES:
        _, card = build_pref_lamp(
            _tasks(),
            negatives=kind,
            generate_fn=lambda ps: ["x"] * len(ps),
            sample_fn=lambda ps, seeds: ["x"] * len(ps),
            icl_prompt_fn=icl_fn,
        )
        assert card.negatives.endswith(f"[negatives={kind}]")


def test_study_pairs_of_each_generated_kind_on_real_authors(tiny_lm, tmp_path):
    """preflamp_pairs with real_negatives = base / base_sample / icl_other (tiny model, 3 vendored
    authors): the same zero-shot prompts and chosen texts, each kind's rows under its own model id."""
    from analysis.config.parse import load_config
    from analysis.studies.cache import StudyCache
    from analysis.studies.datasets import preflamp_pairs, user_tasks

    model, tok = tiny_lm
    cache = StudyCache(str(tmp_path))
    got = {}
    for kind in ("base", "base_sample", "icl_other"):
        cfg = load_config("embedded", {"max_real_users": 3, "real_negatives": kind, "max_new_tokens": 4})
        got[kind] = preflamp_pairs(cfg, user_tasks(cfg), model, tok, cache, source="news_category")
    keys = {k: {(p.pair_id, p.prompt, p.chosen) for p in v} for k, v in got.items()}
    assert (
        len(keys["base"]) > 20 and keys["base_sample"] <= keys["base"] and keys["icl_other"] <= keys["base"]
    )
    assert all(p.prompt.startswith(zero_shot_prompt("news_headline", "")[:20]) for p in got["icl_other"])
    rows = [json.loads(x) for x in (cache.root / "base_generations.jsonl").read_text().splitlines()]
    ids = {r["model_id"] for r in rows}
    assert len(ids) == 3 and sum("negatives=base_sample" in i for i in ids) == 1
    assert sum("negatives=icl_other" in i for i in ids) == 1
    icl_prompts = [r["prompt"] for r in rows if "negatives=icl_other" in r["model_id"]]
    assert all(json.loads(p)[-2]["role"] == "assistant" for p in icl_prompts)  # ICL examples shown
    rej = {k: {p.pair_id: p.rejected for p in v} for k, v in got.items()}
    common = set(rej["base"]) & set(rej["base_sample"]) & set(rej["icl_other"])
    assert any(rej["base"][i] != rej["base_sample"][i] for i in common)
    assert any(rej["base"][i] != rej["icl_other"][i] for i in common)


def test_measure_negatives_chooses_the_largest_share_among_reliable_kinds():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "measure_negatives.py"
    spec = importlib.util.spec_from_file_location("measure_negatives", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    row = lambda k, share, rr, rp: {"kind": k, "pa_mid_share": share, "rel_rm": rr, "rel_policy": rp}  # noqa: E731
    rows = [
        row("base", 0.0, 0.9, 0.4),
        row("a", 0.9, 0.9, 0.6),
        row("b", 0.5, 0.8, 0.75),
        row("c", 0.4, 0.7, 0.7),
    ]
    assert mod.choose(rows) == "b"  # "a" has the largest share but rel_policy < 0.7
    assert mod.choose(rows[:2]) == "a"  # no kind reliable: the largest share
