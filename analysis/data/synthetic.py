"""Synthetic users with planted headline styles: the embedded default data (design section 4.3).

A seeded generator writes a shared pool of short news items (facts: topic, actor, event,
number, place, quote, date) with a readable 3-sentence ``input`` blurb. Each synthetic user has
one planted headline *style*; their profile and held-out test items are drawn from the shared
pool and their real completions are :func:`render_headline` in their style, so two users'
completions for the same item always differ. :func:`oracle_reward` scores how well any text
(including a partial prefix) matches a style: the planted reward used by the ``oracle`` RM.

All text comes from our own word lists (:mod:`analysis.data.synthetic_words`). The same seed gives
byte-identical output (only ``random.Random(seed)`` is used, never global state).

Example
-------
>>> data = make_synthetic_users(n_users=6, seed=0)
>>> t = data.tasks[0]
>>> oracle_reward(data.styles[t.user_id], t.test_output) > 0.8
True
"""

from __future__ import annotations

import datetime as _dt
import random
import re
from dataclasses import asdict, dataclass, field

from analysis.data import synthetic_words as W
from analysis.data.records import DatasetCard, PreferencePair, ProfileItem, UserTask
from analysis.data.splits import split_items_across_users
from analysis.data.tasks import zero_shot_prompt
from analysis.errors import ConfigError, unknown_message

STYLES = ("terse", "question", "listicle", "kicker", "quote", "descriptive", "exclaim")
STYLE_DESCRIPTIONS = {
    "terse": "all-lowercase keywords, no punctuation, <= 7 words",
    "question": "opens with an interrogative ('Why did', 'How did'), ends with '?'",
    "listicle": "'N things to know about ...' with a leading number",
    "kicker": "'TOPIC: event' - an all-caps topic word and a colon, sentence case after",
    "quote": "a quotation from the article, opened by '\"', then who said it",
    "descriptive": "long Title Case sentence (>= 14 words) with place, actor, event and numbers",
    "exclaim": "opens with an interjection and '!' ('Wow! ...')",
}


@dataclass(frozen=True)
class NewsItem:
    """One synthetic news item: the facts every style renders its headline from."""

    item_id: str
    topic: str
    actor: str
    actor_short: str
    verb_base: str
    verb_past: str
    verb_present: str
    obj: str
    obj_short: str
    number: int
    unit: str
    place: str
    weekday: str
    quote: str
    date: str
    variant: int  # picks the question / exclaim opener, so headlines vary across items

    @property
    def input(self) -> str:
        """Article blurb (3 sentences) used as the task input."""
        return (
            f"{_cap(self.actor)} {self.verb_past} {self.obj} in {self.place} on {self.weekday}. "
            f"The change is expected to affect about {self.number} {self.unit}, local officials said. "
            f'"{self.quote}," one of the organisers told reporters.'
        )


@dataclass
class SyntheticData:
    """Output of :func:`make_synthetic_users`.

    ``tasks``: one :class:`UserTask` per held-out test item (a user with ``n_test`` test items
    appears in ``n_test`` tasks sharing user_id and profile); ``styles``: user_id -> style name;
    ``items``: the shared pool (item_id -> :class:`NewsItem`); ``card``: the dataset card.
    """

    tasks: list[UserTask]
    styles: dict[str, str]
    items: dict[str, NewsItem]
    card: DatasetCard
    seed: int = 0
    user_items: dict[str, list[str]] = field(default_factory=dict)  # user -> profile item ids

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "styles": dict(self.styles),
            "items": {k: asdict(v) | {"input": v.input} for k, v in self.items.items()},
            "tasks": [t.to_dict() for t in self.tasks],
            "card": self.card.to_dict(),
        }


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _title(s: str) -> str:
    return " ".join(_cap(w) for w in s.split())


def render_headline(style: str, item: NewsItem) -> str:
    """The headline a user of ``style`` writes for ``item`` (deterministic in the item's facts)."""
    if style == "terse":
        words = f"{item.place} {item.actor_short} {item.verb_present} {item.obj_short}".lower()
        return re.sub(r"[^a-z0-9 ]", "", words)
    if style == "question":
        opener = W.QUESTION_OPENERS[item.variant % len(W.QUESTION_OPENERS)]
        return f"{opener} {item.actor} {item.verb_base} {item.obj} in {item.place}?"
    if style == "listicle":
        k = 3 + item.number % 7
        noun = W.LIST_NOUNS[item.variant % 2]  # "things" / "facts"
        return f"{k} {noun} to know about the {item.obj_short} in {item.place}"
    if style == "kicker":
        return (
            f"{item.topic.upper()}: {_cap(item.actor_short)} {item.verb_present} {item.obj} in {item.place}"
        )
    if style == "quote":
        return f'"{item.quote}," says {item.actor}'
    if style == "descriptive":
        return _title(
            f"in {item.place}, {item.actor} {item.verb_present} {item.obj} after months of work, "
            f"with about {item.number} {item.unit} involved"
        )
    if style == "exclaim":
        opener = W.EXCLAIM_OPENERS[item.variant % len(W.EXCLAIM_OPENERS)]
        return f"{opener}! {_cap(item.actor_short)} {item.verb_present} {item.obj_short}"
    raise ConfigError(unknown_message("style", style, STYLES))


# ----------------------------------------------------------------------------- oracle
def _bare(word: str) -> str:
    """Lower-cased word without trailing punctuation (a leading quote mark is kept)."""
    return word.rstrip(",.!?:;").lower()


def _is_title(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return (
        bool(letters)
        and letters[0].isupper()
        and not (len(letters) > 1 and all(c.isupper() for c in letters))
    )


def oracle_reward(style: str, response: str) -> float:
    """Style-conformity score of ``response`` (whole headline or any prefix) for ``style``.

    ``r = marker + length_term`` with ``marker`` in [0, 1] built from signals that show on the
    first word(s), so a prefix is scored meaningfully as soon as its first word is complete:

    - terse: 0.6 if the first character is lower case + 0.4 * fraction of all-lowercase,
      punctuation-free words; length term ``-0.1 * max(0, n_words - 7)``.
    - question: 0.7 if the first word is an interrogative (why, how, will, ...) + 0.3 if the
      text ends with '?' (absent on prefixes, so a prefix peaks at 0.7); ``-0.05 * max(0, n - 18)``.
    - listicle: 0.7 if the first word is a number + 0.3 if the second is things/facts/reasons/ways;
      ``-0.05 * max(0, n - 12)``.
    - kicker: 0.8 if the first word is ALL-CAPS with a colon (0.4 for an all-caps prefix whose colon
      has not arrived yet) + 0.2 * fraction of later words in lower case (sentence case).
    - quote: 0.7 if the text opens with a quote mark + 0.3 once the quote is closed;
      ``-0.05 * max(0, n - 18)``.
    - descriptive: 0.3 if the first word is Title Case and not an interrogative / interjection
      + 0.4 * fraction of Title Case words + a *positive* length term ``0.3 * min(n, 14) / 14``,
      so longer prefixes score higher (the only style rewarded for growing).
    - exclaim: 0.6 if the first word is an interjection (wow, huge, ...) + 0.4 if '!' appears
      within the first two words.

    The empty string scores 0 for every style. A prefix cut inside the first word scores only
    what that fragment already shows (a lower-case letter for terse, a digit for listicle,
    capitals for kicker, a quote mark for quote); other markers need the whole first word.
    For every item the user's own style scores highest on its own full headline (tested).
    """
    text = response.strip()
    words = text.split()
    n = len(words)
    if n == 0:
        return 0.0
    first, rest = words[0], words[1:]
    if style == "terse":
        clean = sum(bool(re.fullmatch(r"[a-z0-9]+", w)) for w in words) / n
        return 0.6 * text[0].islower() + 0.4 * clean - 0.1 * max(0, n - 7)
    if style == "question":
        return 0.7 * (_bare(first) in W.INTERROGATIVES) + 0.3 * text.endswith("?") - 0.05 * max(0, n - 18)
    if style == "listicle":
        noun = bool(rest) and _bare(rest[0]) in W.LIST_NOUNS
        return 0.7 * first.isdigit() + 0.3 * noun - 0.05 * max(0, n - 12)
    if style == "kicker":
        if re.fullmatch(r"[A-Z]{2,}:", first):
            marker = 0.8
        elif re.fullmatch(r"[A-Z]{2,}", first):
            marker = 0.4
        else:
            marker = 0.0
        lower = sum(w[:1].islower() for w in rest) / len(rest) if rest else 0.0
        return marker + 0.2 * lower
    if style == "quote":
        opened = text[0] in '"\u201c'
        closed = opened and (text.count('"') + text.count("\u201d")) >= 2
        return 0.7 * opened + 0.3 * closed - 0.05 * max(0, n - 18)
    if style == "descriptive":
        b = _bare(first)
        marker = _is_title(first) and b not in W.INTERROGATIVES and b not in W.INTERJECTIONS
        titled = sum(_is_title(w) for w in words) / n
        return 0.3 * marker + 0.4 * titled + 0.3 * min(n, 14) / 14
    if style == "exclaim":
        bang = any("!" in w for w in words[:2])
        return 0.6 * (_bare(first) in W.INTERJECTIONS) + 0.4 * bang
    raise ConfigError(unknown_message("style", style, STYLES))


# ----------------------------------------------------------------------------- generator
def make_items(n_items: int, seed: int = 0) -> dict[str, NewsItem]:
    """The shared pool: ``n_items`` distinct news items with distinct dates (seeded)."""
    rng = random.Random(seed)
    topics = sorted(W.TOPICS)
    max_distinct = sum(len(W.TOPICS[t]["actors"]) * len(W.TOPICS[t]["events"]) for t in topics) * len(
        W.PLACES
    )
    if n_items > min(max_distinct, 3650):
        raise ConfigError(f"n_items={n_items} is more than the word lists can make distinct")
    start = _dt.date(2024, 1, 1)
    days = sorted(rng.sample(range(3650), n_items))
    seen: set[tuple] = set()
    items: dict[str, NewsItem] = {}
    for i in range(n_items):
        while True:
            topic = rng.choice(topics)
            spec = W.TOPICS[topic]
            actor, actor_short = rng.choice(spec["actors"])
            base, past, present, obj, obj_short = rng.choice(spec["events"])
            place = rng.choice(W.PLACES)
            if (actor, obj, place) not in seen:
                seen.add((actor, obj, place))
                break
        item_id = f"item{i:04d}"
        items[item_id] = NewsItem(
            item_id=item_id,
            topic=topic,
            actor=actor,
            actor_short=actor_short,
            verb_base=base,
            verb_past=past,
            verb_present=present,
            obj=obj,
            obj_short=obj_short,
            number=rng.randint(12, 950),
            unit=spec["unit"],
            place=place,
            weekday=rng.choice(W.WEEKDAYS),
            quote=rng.choice(spec["quotes"]),
            date=(start + _dt.timedelta(days=days[i])).isoformat(),
            variant=rng.randrange(12),
        )
    return items


def make_synthetic_users(
    n_users: int = 6,
    n_profile: tuple[int, int] = (12, 20),
    n_test: int = 4,
    seed: int = 0,
    n_pool: int | None = None,
) -> SyntheticData:
    """Synthetic users with planted styles (user ``i`` gets ``STYLES[i]``).

    Each user draws ``randint(*n_profile) + n_test`` items from the shared pool (size ``n_pool``,
    default ``max(60, n_profile[1] + n_test + 10)``); the ``n_test`` newest become held-out test
    items (one :class:`UserTask` each, ``test_id = "<user>/<item_id>"``), the rest the profile.
    At most ``len(STYLES)`` users, because users must have distinct styles so their real
    completions for the same item differ.
    """
    if not 1 <= n_users <= len(STYLES):
        raise ConfigError(f"n_users must be in 1..{len(STYLES)} (one distinct style each), got {n_users}")
    lo, hi = n_profile
    if not (1 <= lo <= hi) or n_test < 1:
        raise ConfigError(
            f"need 1 <= n_profile[0] <= n_profile[1] and n_test >= 1, got {n_profile}, {n_test}"
        )
    n_pool = n_pool or max(60, hi + n_test + 10)
    if n_pool < hi + n_test:
        raise ConfigError(f"n_pool={n_pool} is smaller than n_profile[1] + n_test = {hi + n_test}")
    items = make_items(n_pool, seed=seed)
    rng = random.Random(f"users-{seed}")
    ids = list(items)
    tasks: list[UserTask] = []
    styles: dict[str, str] = {}
    user_items: dict[str, list[str]] = {}
    per_user: dict[str, int] = {}
    for u in range(n_users):
        user_id, style = f"user{u:02d}", STYLES[u]
        styles[user_id] = style
        chosen = sorted(rng.sample(ids, rng.randint(lo, hi) + n_test), key=lambda i: (items[i].date, i))
        prof_ids, test_ids = chosen[:-n_test], chosen[-n_test:]
        user_items[user_id] = prof_ids
        per_user[user_id] = len(prof_ids)
        profile = [
            ProfileItem(
                input=items[i].input, output=render_headline(style, items[i]), item_id=i, date=items[i].date
            )
            for i in prof_ids
        ]
        for i in test_ids:
            tasks.append(
                UserTask(
                    user_id=user_id,
                    profile=profile,
                    test_input=items[i].input,
                    test_output=render_headline(style, items[i]),
                    test_id=f"{user_id}/{i}",
                    test_date=items[i].date,
                )
            )
    card = DatasetCard(
        name=f"synthetic-users-seed{seed}",
        source="synthetic",
        task="news_headline",
        n_users=n_users,
        n_items=len(tasks),
        synthetic=True,
        notes=(
            "SYNTHETIC data generated by analysis.data.synthetic from the project's own word lists; "
            f"seed={seed}, pool={n_pool} items, styles: "
            + "; ".join(f"{u}={s}" for u, s in styles.items())
            + ". n_items counts held-out test items; per_user counts profile items."
        ),
        per_user=per_user,
    )
    return SyntheticData(tasks=tasks, styles=styles, items=items, card=card, seed=seed, user_items=user_items)


def style_swap_pairs(
    data: SyntheticData, seed: int = 0, *, val_frac: float = 0.15, test_frac: float = 0.2
) -> list[PreferencePair]:
    """Per-user pairs on profile items: chosen = the user's headline, rejected = the headline of
    another user's style for the same item (drawn with ``seed``).

    The prompt is ``zero_shot_prompt("news_headline", item.input)``. The split is by ITEM ACROSS
    USERS (:func:`analysis.data.splits.split_items_across_users`: each pool item gets one split
    for every user, each user's newest items going to test / val up to their quota). Since a pair's texts are headlines of its item, no text of a val / test pair appears in
    any training pair of any user (per-user splits leaked: one user's test chosen headline was
    another user's training rejected headline). Two items can render the same headline; the few
    held-out pairs whose text also occurs in a training pair are dropped. ``pair_id = "<user>/<item_id>"``.
    """
    rng = random.Random(f"swap-{seed}")
    users = list(data.styles)
    if len(users) < 2:
        raise ConfigError("style_swap_pairs needs at least 2 users")
    pairs: list[PreferencePair] = []
    split = split_items_across_users(
        {u: data.user_items[u] for u in users},
        {i: it.date for i, it in data.items.items()},
        val_frac=val_frac,
        test_frac=test_frac,
    )
    for user_id in users:
        ids = data.user_items[user_id]
        others = [data.styles[o] for o in users if o != user_id]
        for i in ids:
            item = data.items[i]
            pairs.append(
                PreferencePair(
                    user_id=user_id,
                    prompt=zero_shot_prompt("news_headline", item.input),
                    chosen=render_headline(data.styles[user_id], item),
                    rejected=render_headline(rng.choice(others), item),
                    pair_id=f"{user_id}/{i}",
                    split=split[i],
                )
            )
    # different items can render the same headline (same actor and quote): drop the few held-out
    # pairs whose text a training pair already contains, so no held-out text is ever trained on
    seen = {t for p in pairs if p.split == "train" for t in (p.chosen, p.rejected)}
    return [p for p in pairs if p.split == "train" or not ({p.chosen, p.rejected} & seen)]


def __getattr__(name: str):
    # attribute-preference users live in their own module; re-exported here for one import path
    if name in (
        "attribute_preference_pairs",
        "attribute_reward",
        "attribute_features",
        "AttributePairs",
        "ATTRIBUTES",
    ):
        from analysis.data import attributes

        return getattr(attributes, name)
    raise AttributeError(name)
