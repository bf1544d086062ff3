"""In-context learning: retrieve a user's past examples and render them before a new input.

Design section 3.3. Three retrievers pick up to ``k`` :class:`ProfileItem` s for a query:

- ``bm25`` (default): Okapi BM25 (``rank_bm25``, k1 = 1.5, b = 0.75) over the profile texts
  ``input + " " + output`` (LaMP-4 uses title + text), query = the new input. Texts are
  lower-cased and split into ``\\w+`` words (LaMP splits on whitespace, which keeps punctuation
  glued to words: "bridge." would not match "bridge"). Ties keep profile order.
- ``random``: a seeded sample; the seed is combined with the query so each new input gets its
  own (reproducible) draw.
- ``recency``: newest first by ``date`` (ISO strings sort by time); undated items count as
  oldest, and among equal dates the later profile position is taken as newer.

A user with fewer than ``k`` items gets all of them. Two renderings:

- ``chat_turns`` (default for chat models): every example is a user turn (the zero-shot prompt
  of its input) and an assistant turn (the user's real output); the new input is the last user
  turn.
- ``lamp`` (the LaMP paper's): one message ``"<out1>" is the <label> for "<in1>", and ... .``
  followed by the zero-shot prompt.
- ``auto``: ``chat_turns`` when the tokenizer has a chat template, else ``lamp``.

Token budget: the rendered prompt (chat template included) has at most ``max_prompt_tokens``
tokens. The new input is cut only if the zero-shot prompt alone is too long. The remaining
budget is shared by the examples' *inputs* (outputs are kept whole) by water-filling: every
input gets ``min(its length, b)`` tokens with the largest ``b`` that fits. If even
``min_item_tokens`` per input does not fit, the least relevant example is dropped.

Example
-------
>>> from analysis.data.records import ProfileItem
>>> prof = [ProfileItem("storm floods the river town", "river floods", "a"),
...         ProfileItem("council votes on budget", "budget vote", "b"),
...         ProfileItem("new stadium opens downtown", "stadium opens", "c")]
>>> [p.item_id for p in retrieve(prof, "a new budget vote at the council", k=1)]
['b']
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from analysis.data.records import DataError, ProfileItem, UserTask
from analysis.data.tasks import get_task, zero_shot_prompt
from analysis.errors import lookup, unknown_message
from analysis.models.tokens import encode_prompt, has_chat_template, render_prompt

RETRIEVERS = ("bm25", "random", "recency")
RENDERINGS = ("chat_turns", "lamp", "auto")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class ICLConfig:
    """How examples are chosen and shown.

    k: number of examples (design: 1, 2, 4, 8); a smaller profile gives all its items.
    retriever: ``bm25`` | ``random`` | ``recency``.
    rendering: ``chat_turns`` | ``lamp`` | ``auto`` (chat_turns when the model has a chat template).
    max_prompt_tokens: cap on the whole rendered prompt, chat template included.
    min_item_tokens: an example input shorter than this after truncation drops the example instead.
    seed: for the ``random`` retriever.
    """

    k: int = 4
    retriever: str = "bm25"
    rendering: str = "auto"
    max_prompt_tokens: int = 1024
    min_item_tokens: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 0:
            raise DataError(f"k must be a non-negative integer, got {self.k!r}", field="k")
        lookup(RETRIEVERS, self.retriever, "retriever", DataError, field="retriever")
        lookup(RENDERINGS, self.rendering, "rendering", DataError, field="rendering")
        if self.max_prompt_tokens < 16:
            raise DataError(
                f"max_prompt_tokens must be >= 16, got {self.max_prompt_tokens}", field="max_prompt_tokens"
            )

    def resolved(self, tok) -> ICLConfig:
        """A copy with ``rendering="auto"`` replaced by what ``tok`` gets."""
        if self.rendering != "auto":
            return self
        return ICLConfig(**{**asdict(self), "rendering": "chat_turns" if has_chat_template(tok) else "lamp"})


@dataclass
class ICLPrompt:
    """A rendered ICL prompt and how it was built (stored with each generation).

    messages: the chat messages given to :func:`analysis.models.tokens.render_prompt`.
    text: the exact text the model sees; n_tokens: its length in tokens.
    example_ids: retrieved item ids actually shown, in prompt order.
    item_budget: tokens allowed per example input (None when nothing was cut).
    input_truncated: whether the new input itself had to be cut.
    """

    messages: list[dict]
    text: str
    n_tokens: int
    example_ids: list[str] = field(default_factory=list)
    item_budget: int | None = None
    input_truncated: bool = False


# --------------------------------------------------------------------------- retrieval


def words(text: str) -> list[str]:
    """Lower-cased ``\\w+`` words: the BM25 tokenisation of profiles and queries."""
    return _WORD.findall(text.lower())


def profile_text(item: ProfileItem) -> str:
    """The text indexed for an item: its input and the user's output."""
    return f"{item.input} {item.output}"


def bm25_scores(profile: Sequence[ProfileItem], query: str) -> list[float]:
    """BM25 score of every profile item for ``query`` (rank_bm25.BM25Okapi, default k1, b).

    Okapi's idf ``log((N - n + 0.5) / (n + 0.5))`` is 0 for a word found in one of two items, so a
    two-item profile scores all zeros and keeps profile order.
    """
    from rank_bm25 import BM25Okapi

    corpus = [words(profile_text(p)) for p in profile]
    if not any(corpus):
        return [0.0] * len(profile)
    return [float(s) for s in BM25Okapi(corpus).get_scores(words(query))]


def retrieve(
    profile: Sequence[ProfileItem], query: str, k: int, method: str = "bm25", seed: int = 0
) -> list[ProfileItem]:
    """Top-``k`` profile items for ``query`` (most relevant / newest first); all items if fewer."""
    lookup(RETRIEVERS, method, "retriever", DataError, field="retriever")
    items = list(profile)
    k = min(k, len(items))
    if k <= 0:
        return []
    if method == "bm25":
        scores = bm25_scores(items, query)
        order = sorted(range(len(items)), key=lambda i: (-scores[i], i))
    elif method == "random":
        digest = hashlib.sha256(f"{seed}\x00{query}".encode()).hexdigest()
        order = random.Random(digest).sample(range(len(items)), len(items))
    else:  # recency
        order = sorted(
            range(len(items)), key=lambda i: (items[i].date is not None, items[i].date or "", i), reverse=True
        )
    return [items[i] for i in order[:k]]


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Shown:
    """An example as shown in the prompt (input possibly truncated)."""

    input: str
    output: str


def icl_messages(task: str, test_input: str, examples: Sequence, rendering: str) -> list[dict]:
    """Chat messages for ``examples`` (objects with ``.input`` / ``.output``, e.g. ProfileItem)
    followed by the new input, in ``rendering`` ``chat_turns`` or ``lamp``."""
    query = zero_shot_prompt(task, test_input)
    if not examples:
        return [{"role": "user", "content": query}]
    if rendering == "chat_turns":
        msgs: list[dict] = []
        for ex in examples:
            msgs.append({"role": "user", "content": zero_shot_prompt(task, ex.input)})
            msgs.append({"role": "assistant", "content": ex.output})
        return [*msgs, {"role": "user", "content": query}]
    if rendering == "lamp":
        label = get_task(task).output_label.lower()
        shown = ", and ".join(f'"{ex.output}" is the {label} for "{ex.input.strip()}"' for ex in examples)
        return [{"role": "user", "content": f"{shown}.\n\n{query}"}]
    raise DataError(unknown_message("rendering", rendering, RENDERINGS), field="rendering")


def _token_len(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False).input_ids)


def truncate_tokens(tok, text: str, n: int) -> str:
    """The first ``n`` tokens of ``text`` (decoded); ``text`` itself when it is short enough."""
    ids = tok(text, add_special_tokens=False).input_ids
    if len(ids) <= n:
        return text
    return tok.decode(ids[: max(n, 0)], skip_special_tokens=True).strip()


def _water_fill(lengths: list[int], budget: int) -> int:
    """Largest b with sum(min(l, b)) <= budget (b = max(lengths) when everything fits)."""
    if sum(lengths) <= budget:
        return max(lengths, default=0)
    lo, hi = 0, max(lengths)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _n_tokens(tok, messages: list[dict]) -> int:
    return len(encode_prompt(tok, messages))


def build_icl_prompt(tok, task: str, user_task: UserTask, cfg: ICLConfig) -> ICLPrompt:
    """Retrieve, truncate and render the ICL prompt for one :class:`UserTask` (see module doc)."""
    cfg = cfg.resolved(tok)
    test_input, input_truncated = user_task.test_input, False
    base = icl_messages(task, test_input, [], cfg.rendering)
    over = _n_tokens(tok, base) - cfg.max_prompt_tokens
    if over > 0:  # the new input alone does not fit: cut it (the only case it is cut)
        keep = _token_len(tok, test_input) - over - 2
        if keep < cfg.min_item_tokens:
            raise DataError(
                f"max_prompt_tokens={cfg.max_prompt_tokens} leaves no room for the input (the instruction and "
                f"template alone take about {_n_tokens(tok, base) - _token_len(tok, test_input)} tokens)",
                record=user_task.test_id or user_task.user_id,
                field="max_prompt_tokens",
            )
        while True:  # re-tokenisation at the cut can differ by a token or two
            cut = truncate_tokens(tok, test_input, keep)
            base = icl_messages(task, cut, [], cfg.rendering)
            if _n_tokens(tok, base) <= cfg.max_prompt_tokens or keep <= 1:
                break
            keep -= 1
        test_input, input_truncated = cut, True
    examples = retrieve(user_task.profile, user_task.test_input, cfg.k, cfg.retriever, cfg.seed)
    budget_per_item: int | None = None
    while examples:
        # tokens used by everything except the example inputs
        frame = [_Shown("", e.output) for e in examples]
        free = cfg.max_prompt_tokens - _n_tokens(tok, icl_messages(task, test_input, frame, cfg.rendering))
        lengths = [_token_len(tok, e.input) for e in examples]
        b = _water_fill(lengths, free)
        for _ in range(20):  # re-tokenisation at joins can add a few tokens: shrink until it fits
            if b < min(cfg.min_item_tokens, max(lengths)):
                break
            shown = [_Shown(truncate_tokens(tok, e.input, b), e.output) for e in examples]
            msgs = icl_messages(task, test_input, shown, cfg.rendering)
            n = _n_tokens(tok, msgs)
            if n <= cfg.max_prompt_tokens:
                budget_per_item = b if b < max(lengths) else None
                text = render_prompt(tok, msgs)
                return ICLPrompt(
                    msgs, text, n, [e.item_id for e in examples], budget_per_item, input_truncated
                )
            b -= max(1, (n - cfg.max_prompt_tokens + len(examples) - 1) // len(examples))
        examples = examples[:-1]  # drop the least relevant example and retry
    msgs = base
    return ICLPrompt(msgs, render_prompt(tok, msgs), _n_tokens(tok, msgs), [], None, input_truncated)
