"""Pref-LaMP: per-user preference pairs from :class:`UserTask` s (design section 4.4).

For every user and every *profile* item ``(x_i, y_i)``::

    prompt   = zero_shot_prompt(task, x_i)
    chosen   = y_i                           # what the user really wrote
    rejected = base(prompt)                  # negatives="base": the base policy's greedy generation
             | y_j of another user, j = argmax_j BM25(x_i, x_j)   # negatives="other_user"
             | a base sample at T = 1, top_p = 1, seeded per prompt  # negatives="base_sample"
             | base(ICL prompt with 2 examples of another author)    # negatives="icl_other"

What each negative tests: ``base`` is the policy model's own most likely text, so the base
likelihood in an RGD score always favours it (policy accuracy sits on a floor); ``base_sample``
is still the model's own text but a typical draw rather than its mode; ``icl_other`` is a
plausible headline in another author's style (the model imitating k = 2 of that author's
BM25-retrieved profile items, :data:`ICL_OTHER_K`), scored under the zero-shot pair prompt;
``other_user`` is another author's real headline for a similar article.

Pairs whose rejected text is empty or equal to the chosen one are dropped (counted in the card).
Each user's items are split train / val / test by item, chronologically when every item has a
date (:func:`analysis.data.splits.split_items`). When users share items (the synthetic pool),
the split is by item ACROSS users (each item gets one split for everyone), so no text of a test
pair appears in a training pair of another user; held-out pairs whose text still occurs in a
training pair as a user's text (e.g. through an "other_user" negative) are dropped. The held-out test input of each UserTask stays
the generation target scored by ROUGE; it never appears in a pair.

The pair prompt is always the zero-shot prompt and ``chosen`` the author's text. Base generations
(all three generated kinds) are cached on disk as JSON lines ``{"model_id", "prompt", "response"}`` keyed
by ``(model_id, prompt)``, where the model id of a kind other than ``base`` names the kind and its
settings (:func:`negatives_model_id`), so kinds never share rows; the cache is rewritten atomically after each chunk, so an interrupted
build resumes where it stopped, and two processes building the same pairs split the chunks
between them through per-chunk file locks (:func:`base_generations`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from analysis.data.preferences import preference_card
from analysis.data.readers import get_field, iter_jsonl
from analysis.data.records import DataError, DatasetCard, PreferencePair, ProfileItem, UserTask
from analysis.data.splits import split_items, split_items_across_users
from analysis.data.tasks import get_task, zero_shot_prompt
from analysis.errors import ConfigError, lookup
from analysis.io import write_jsonl

NEGATIVES = ("base", "other_user", "base_sample", "icl_other")
GenerateFn = Callable[[list[str]], list[str]]
# base_sample: ``sample_fn(prompts, seeds) -> texts``, one sample per prompt, prompt i seeded by seeds[i]
SampleFn = Callable[[list[str], list[int]], list[str]]
# icl_other: ``icl_prompt_fn(task) -> chat messages``: the ICL prompt of ``task.test_input`` with
# ICL_OTHER_K examples retrieved from ``task.profile`` (the other author's items)
IclPromptFn = Callable[[UserTask], list[dict]]
ICL_OTHER_K = 2  # examples from the other author's profile in an icl_other prompt
SAMPLE_TEMPERATURE, SAMPLE_TOP_P = 1.0, 1.0  # base_sample: plain ancestral sampling


def user_profiles(tasks: list[UserTask]) -> dict[str, list[ProfileItem]]:
    """Each user's profile items (union over their UserTasks, first occurrence of an item_id wins)."""
    out: dict[str, dict[str, ProfileItem]] = {}
    for t in tasks:
        items = out.setdefault(t.user_id, {})
        for it in t.profile:
            items.setdefault(it.item_id, it)
    return {u: list(items.values()) for u, items in out.items()}


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class GenerationCache:
    """Base-policy generations on disk, keyed by ``(model_id, prompt)`` (JSON lines)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.rows: dict[tuple[str, str], str] = {}
        self._read()

    def _read(self) -> None:
        if self.path and self.path.exists():
            for line, rec in iter_jsonl(self.path):
                loc = {"path": self.path, "line": line}
                key = (get_field(rec, "model_id", allow_empty=True, **loc), get_field(rec, "prompt", **loc))
                self.rows[key] = get_field(rec, "response", allow_empty=True, **loc)

    def get(self, model_id: str, prompt: str) -> str | None:
        return self.rows.get((model_id, prompt))

    def refresh(self) -> None:
        """Read rows another process has written since (the file is replaced atomically)."""
        self._read()

    def lock_path(self, model_id: str, prompts: list[str]) -> Path:
        """The lock file of generating ``prompts`` for ``model_id`` (:func:`base_generations`)."""
        import hashlib
        import json

        digest = hashlib.sha256(json.dumps([model_id, prompts]).encode()).hexdigest()[:20]
        folder = self.path.parent / f"{self.path.name}.locks"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{digest}.lock"

    def put_many(self, model_id: str, prompts: list[str], responses: list[str]) -> None:
        new = dict(zip(((model_id, p) for p in prompts), responses, strict=True))
        self.rows.update(new)
        if self.path:
            from filelock import FileLock

            # one file for all models: concurrent writers (sweep tasks of other models) re-read and
            # merge under a lock, so no writer drops another's rows
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.path) + ".lock"):
                self._read()
                self.rows.update(new)
                write_jsonl(
                    self.path,
                    ({"model_id": m, "prompt": p, "response": r} for (m, p), r in sorted(self.rows.items())),
                )


def base_generations(
    prompts: list[str],
    generate_fn: GenerateFn | None,
    *,
    cache_path: str | os.PathLike | None = None,
    model_id: str = "",
    chunk_size: int = 96,
    poll_seconds: float = 0.5,
) -> dict[str, str]:
    """``{prompt: generation}``: from the cache where present, else ``generate_fn`` in chunks of
    ``chunk_size`` prompts (each chunk is cached when it finishes: a killed run resumes there; large
    enough for full decode batches, which ``generate_fn`` buckets by length).

    Chunks are fixed slices of the distinct prompts in order, so every caller of the same list
    cuts the same chunks (and batches), whatever is cached already. With a ``cache_path``, two
    processes building the same pairs at once (two notebooks of a report) share the work: a chunk
    is generated under its own file lock (:meth:`GenerationCache.lock_path`), taken without
    waiting on a first pass (a chunk the other process holds is skipped), waited for on a second
    one, then read from the cache. The operating system releases the lock of a process that dies,
    so nothing waits on a lost chunk. Only the missing prompts of a partly cached chunk are generated.
    """
    from filelock import FileLock, Timeout

    cache = GenerationCache(cache_path)
    unique = list(dict.fromkeys(prompts))
    chunks = [unique[s : s + chunk_size] for s in range(0, len(unique), chunk_size)]

    def missing(chunk: list[str]) -> list[str]:
        return [p for p in chunk if cache.get(model_id, p) is None]

    todo = [c for c in chunks if missing(c)]
    if todo and generate_fn is None:
        where = f" in cache {cache.path}" if cache.path else ""
        raise ConfigError(
            f"{sum(len(missing(c)) for c in todo)} prompts have no cached base generation{where} for "
            f"model_id={model_id!r} and no generate_fn was given"
        )

    def run(chunk: list[str], wait: bool) -> bool:
        """Generate what ``chunk`` lacks under its lock; False if another process holds it and
        ``wait`` is off."""
        if cache.path is None:
            _generate_into(cache, model_id, missing(chunk), generate_fn)
            return True
        lock = FileLock(str(cache.lock_path(model_id, chunk)), poll_interval=poll_seconds)
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            return False
        try:
            cache.refresh()  # the other process may have written it meanwhile
            _generate_into(cache, model_id, missing(chunk), generate_fn)
        finally:
            lock.release()
        return True

    bar = tqdm(total=len(todo), desc="base generations", unit="chunk", disable=not todo)
    held = []
    for chunk in todo:
        if run(chunk, wait=False):
            bar.update()
        else:
            held.append(chunk)
    for chunk in held:  # chunks the other process was generating: wait for it, then read them
        run(chunk, wait=True)
        bar.update()
    bar.close()
    return {p: cache.get(model_id, p) for p in prompts}


def _generate_into(cache: GenerationCache, model_id: str, prompts: list[str], generate_fn) -> None:
    if not prompts:
        return
    out = list(generate_fn(prompts))
    if len(out) != len(prompts) or not all(isinstance(o, str) for o in out):
        raise ConfigError(
            f"generate_fn returned {len(out)} items for {len(prompts)} prompts (need one string each)"
        )
    cache.put_many(model_id, prompts, out)


def other_user_negatives(profiles: dict[str, list[ProfileItem]]) -> dict[tuple[str, str], str]:
    """``{(user, item_id): output}`` of the most BM25-similar input written by *another* user.

    Candidates with the same output text as the query item are skipped; ties go to the first
    candidate in (user, item) order. Cost: one BM25 scoring pass over all items per item.
    """
    from rank_bm25 import BM25Okapi

    flat = [(u, it) for u in sorted(profiles) for it in profiles[u]]
    if len({u for u, _ in flat}) < 2:
        raise ConfigError("negatives='other_user' needs at least 2 users")
    bm25 = BM25Okapi([_tokens(it.input) or ["<empty>"] for _, it in flat])
    out: dict[tuple[str, str], str] = {}
    for u, it in tqdm(flat, desc="other-user negatives", disable=len(flat) < 2000):
        scores = bm25.get_scores(_tokens(it.input))
        best, best_score = None, float("-inf")
        for j, (v, other) in enumerate(flat):
            if v != u and other.output.strip() != it.output.strip() and scores[j] > best_score:
                best, best_score = other.output, scores[j]
        if best is not None:
            out[(u, it.item_id)] = best
    return out


def negatives_model_id(model_id: str, negatives: str, seed: int = 0) -> str:
    """The cache model id of ``negatives``'s generations: ``model_id`` itself for ``base`` (so its
    existing rows stay valid), else ``model_id`` with the kind and its settings appended."""
    if negatives == "base":
        return model_id
    if negatives == "base_sample":
        return f"{model_id}|negatives=base_sample|temperature={SAMPLE_TEMPERATURE:g}|top_p={SAMPLE_TOP_P:g}|seed={seed}"
    if negatives == "icl_other":
        return f"{model_id}|negatives=icl_other|k={ICL_OTHER_K}|retriever=bm25|greedy|seed={seed}"
    raise ConfigError(f"negatives {negatives!r} are not generated")


def prompt_seed(seed: int, prompt: str) -> int:
    """A 63-bit sampling seed from the run ``seed`` and the prompt text: a prompt's sample does not
    depend on which other prompts are generated with it (or are cached already)."""
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def other_author(user: str, item_id: str, users: list[str], seed: int) -> str:
    """The author whose profile an ``icl_other`` prompt shows for ``(user, item_id)``: drawn
    uniformly among the other ``users`` by a generator seeded from ``(seed, user, item_id)``."""
    others = sorted(u for u in users if u != user)
    if not others:
        raise ConfigError("negatives='icl_other' needs at least 2 users")
    digest = hashlib.sha256(f"{seed}\x00{user}\x00{item_id}".encode()).hexdigest()
    return random.Random(digest).choice(others)


def icl_other_prompts(
    profiles: dict[str, list[ProfileItem]], icl_prompt_fn: IclPromptFn, seed: int
) -> dict[tuple[str, str], list[dict]]:
    """``{(user, item_id): ICL messages}``: the item's input with examples of another author only
    (:func:`other_author`; ``icl_prompt_fn`` sees a task whose profile is that author's items)."""
    users = sorted(u for u, items in profiles.items() if items)
    out = {}
    for u in sorted(profiles):
        for it in profiles[u]:
            v = other_author(u, it.item_id, users, seed)
            out[(u, it.item_id)] = icl_prompt_fn(UserTask(v, list(profiles[v]), it.input, None, it.item_id))
    return out


def build_pref_lamp(
    tasks: list[UserTask],
    task: str = "news_headline",
    negatives: str = "base",
    generate_fn: GenerateFn | None = None,
    cache_path: str | os.PathLike | None = None,
    model_id: str = "",
    seed: int = 0,
    val_frac: float = 0.15,
    test_frac: float = 0.2,
    source_card: DatasetCard | None = None,
    sample_fn: SampleFn | None = None,
    icl_prompt_fn: IclPromptFn | None = None,
) -> tuple[list[PreferencePair], DatasetCard]:
    """Build Pref-LaMP pairs (see module docstring). ``pair_id = "<user>/<item_id>"``.

    Parameters
    ----------
    negatives: ``"base"`` (``generate_fn(prompts) -> texts``, greedy, cached at ``cache_path``
        under ``model_id``), ``"other_user"`` (most similar input of another user, BM25),
        ``"base_sample"`` (``sample_fn(prompts, seeds)``, one sample per prompt at
        ``SAMPLE_TEMPERATURE`` / ``SAMPLE_TOP_P`` seeded by :func:`prompt_seed`) or ``"icl_other"``
        (``generate_fn`` on the messages of ``icl_prompt_fn``, :func:`icl_other_prompts`); the
        generated kinds are cached under :func:`negatives_model_id`.
    seed: seeds the per-user shuffle used when items have no dates, the samples of
        ``base_sample`` and the other author of ``icl_other``.
    source_card: the card of ``tasks`` (names the result and carries ``synthetic``).
    """
    get_task(task)
    lookup(NEGATIVES, negatives, "negatives")
    if not tasks:
        raise DataError("no user tasks to build pairs from")
    profiles = user_profiles(tasks)
    prompts = {
        (u, it.item_id): zero_shot_prompt(task, it.input) for u, items in profiles.items() for it in items
    }
    if negatives == "other_user":
        rejected = other_user_negatives(profiles)
        neg_desc = "another user's real output for the most similar input (BM25) [negatives=other_user]"
    else:  # a generated kind: one cached generation per key (the prompt, or the ICL messages)
        keys, fn, gen_id = prompts, generate_fn, negatives_model_id(model_id, negatives, seed)
        if negatives == "base":
            neg_desc = f"base policy generation ({model_id or 'unnamed model'}), greedy, zero-shot prompt [negatives=base]"
        elif negatives == "base_sample":
            fn = None
            if sample_fn is not None:

                def fn(ps: list[str]) -> list[str]:
                    return sample_fn(ps, [prompt_seed(seed, p) for p in ps])

            neg_desc = (
                f"one base policy sample ({model_id or 'unnamed model'}) at temperature {SAMPLE_TEMPERATURE:g}, "
                f"top_p {SAMPLE_TOP_P:g}, seeded per prompt (seed {seed}), zero-shot prompt [negatives=base_sample]"
            )
        else:  # icl_other
            if icl_prompt_fn is None:
                raise ConfigError("negatives='icl_other' needs icl_prompt_fn (the ICL prompt builder)")
            messages = icl_other_prompts(profiles, icl_prompt_fn, seed)
            keys = {k: json.dumps(m, sort_keys=True) for k, m in messages.items()}  # the exact messages
            fn = None
            if generate_fn is not None:

                def fn(ks: list[str]) -> list[str]:
                    return generate_fn([json.loads(k) for k in ks])

            neg_desc = (
                f"base policy greedy generation ({model_id or 'unnamed model'}) with {ICL_OTHER_K} BM25-retrieved "
                f"examples of another author (seeded per item, seed {seed}); pair prompt zero-shot [negatives=icl_other]"
            )
        gens = base_generations(
            list(dict.fromkeys(keys.values())), fn, cache_path=cache_path, model_id=gen_id
        )
        rejected = {k: gens[key] for k, key in keys.items()}
    pairs: list[PreferencePair] = []
    n_dropped = 0
    owners = Counter(
        it.item_id for items in profiles.values() for it in {i.item_id: i for i in items}.values()
    )
    shared = {}
    if any(
        n > 1 for n in owners.values()
    ):  # items shared by users (synthetic pool): split by item across users
        shared = split_items_across_users(
            {u: [it.item_id for it in items] for u, items in profiles.items()},
            {it.item_id: it.date for items in profiles.values() for it in items},
            val_frac=val_frac,
            test_frac=test_frac,
            seed=seed,
        )
    for u, items in profiles.items():
        split = shared or split_items(
            [it.item_id for it in items],
            [it.date for it in items],
            val_frac=val_frac,
            test_frac=test_frac,
            seed=f"{seed}-{u}",
        )
        for it in items:
            neg = (rejected.get((u, it.item_id)) or "").strip()
            if not neg or neg == it.output.strip():
                n_dropped += 1
                continue
            pairs.append(
                PreferencePair(
                    u, prompts[(u, it.item_id)], it.output, neg, f"{u}/{it.item_id}", split[it.item_id]
                )
            )
    # shared items: "other_user" negatives are other users' outputs for the same pool items: drop
    # held-out pairs whose user text (chosen) a training pair contains, or whose negative is a
    # training pair's chosen text (real LaMP data, with per-user items, is left as it was)
    seen = {t for p in pairs if p.split == "train" for t in (p.chosen, p.rejected)}
    seen_chosen = {p.chosen for p in pairs if p.split == "train"}

    def leaks(p: PreferencePair) -> bool:  # only where users share items (synthetic pool)
        return bool(shared) and p.split != "train" and (p.chosen in seen or p.rejected in seen_chosen)

    n_leak = sum(map(leaks, pairs))
    pairs = [p for p in pairs if not leaks(p)]
    card = preference_card(
        pairs,
        name=f"pref-lamp:{source_card.name}" if source_card else "pref-lamp",
        source="pref_lamp",
        task=task,
        negatives=neg_desc,
        notes=f"{len(profiles)} users, {len(prompts)} profile items; {n_dropped} pairs dropped (empty negative or negative == chosen), {n_leak} held-out pairs dropped (text also in a training pair)",
    )
    card.n_items = len(prompts)
    card.synthetic = bool(source_card and source_card.synthetic)
    return pairs, card
