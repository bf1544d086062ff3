"""Adapters from public personalized preference sets to :class:`PreferencePair` s.

Each adapter reads local files (JSON, JSONL or parquet; a folder means all such files in it,
sorted) or, for users with hub access, a Hugging Face dataset through ``datasets.load_dataset``
(imported lazily; never called in tests). Source schemas and how a *user* is defined:

- ``psoups`` (P-SOUPS, Jang et al. 2023): rows ``{user_input, completion_a, completion_b}`` in
  one file per preference profile (``P1A.json`` ...); ``completion_a`` is the preferred one (as
  in the authors' reward-model training). User = a ``user_id`` / ``preference`` / ``persona``
  field if present, else the file stem.
- ``personal_llm`` (PersonalLLM, namkoong-lab): rows ``{prompt, response_1..8, response_i_<rm>}``
  where ``response_i_<rm>`` is the score of response i by reward model ``<rm>``. User = a reward
  model (or a persona with weights over reward models, ``personas={...}``); per prompt and user
  the pair is (highest-scored, lowest-scored) response; ties give no pair.
- ``tldr`` (Reddit TL;DR comparisons, Stiennon et al. 2020): rows ``{info: {post, title,
  subreddit | article}, summaries: [{text}, {text}], choice, worker}``. User = ``worker``; the
  prompt is ``SUBREDDIT: r/.. TITLE: .. POST: .. TL;DR:``.
- ``vpl_hh`` (VPL relabelled HH-RLHF, Poddar et al. 2024): rows ``{chosen, rejected, objective}``
  with HH dialogues (``"\\n\\nHuman: ... \\n\\nAssistant: ..."``); user = ``objective``; the
  prompt is the shared text up to the last ``"\\n\\nAssistant:"`` (or a ``prompt`` field).

All adapters then split each user's pairs by prompt (:func:`analysis.data.preferences.assign_splits`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from analysis.data.preferences import assign_splits, preference_card
from analysis.data.readers import get_field, read_records
from analysis.data.records import DataError, DatasetCard, PreferencePair
from analysis.errors import ConfigError

Row = tuple[dict, dict]  # (location kwargs for DataError, record)
HUB_IDS = {
    "personal_llm": ("namkoong-lab/PersonalLLM", None),
    "tldr": ("openai/summarize_from_feedback", "comparisons"),
}
_FILE_EXT = (".json", ".jsonl", ".ndjson", ".parquet")


def iter_local_rows(path: str | os.PathLike) -> Iterator[tuple[str, Row]]:
    """``(file_stem, (location, record))`` for every record of a file or of a folder's files."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in _FILE_EXT)
        if not files:
            raise DataError(f"no {'/'.join(_FILE_EXT)} files in this folder", path=str(p))
    elif p.exists():
        files = [p]
    else:
        raise DataError("file not found", path=str(p))
    for f in files:
        for line, index, rec in read_records(f):
            yield f.stem, ({"path": f, "line": line, "record": index}, rec)


def iter_hub_rows(hub_id: str, config: str | None = None, split: str = "train") -> Iterator[tuple[str, Row]]:
    """Rows of a hub dataset via ``datasets.load_dataset`` (needs network access and ``datasets``)."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - optional dependency
        raise DataError(f"loading {hub_id} from the hub needs the 'datasets' package ({e})") from None
    ds = datasets.load_dataset(hub_id, config, split=split)  # pragma: no cover - network
    for i, rec in enumerate(ds):  # pragma: no cover
        yield split, ({"path": f"hub:{hub_id}", "record": i}, dict(rec))


# ----------------------------------------------------------------------------- per-source rows -> pairs
def _psoups(stem: str, loc: dict, rec: dict, **_) -> list[PreferencePair]:
    user = next((str(rec[k]) for k in ("user_id", "user", "preference", "persona") if rec.get(k)), stem)
    return [
        PreferencePair(
            user_id=user,
            prompt=get_field(rec, "user_input", **loc),
            chosen=get_field(rec, "completion_a", **loc),
            rejected=get_field(rec, "completion_b", **loc),
        )
    ]


_SCORE_COL = re.compile(r"^response_(\d+)_(.+)$")


def _personal_llm(stem: str, loc: dict, rec: dict, personas: dict | None = None, **_) -> list[PreferencePair]:
    prompt = get_field(rec, "prompt", **loc)
    scores: dict[str, dict[int, float]] = {}
    for col, val in rec.items():
        m = _SCORE_COL.match(col)
        if m and m.group(2) != "model" and isinstance(val, (int, float)) and not isinstance(val, bool):
            scores.setdefault(m.group(2), {})[int(m.group(1))] = float(val)
    if not scores:
        raise DataError("no reward columns 'response_<i>_<reward model>'", field="response_1_<rm>", **loc)
    if personas:
        unknown = {rm for w in personas.values() for rm in w} - set(scores)
        if unknown:
            raise DataError(f"persona weights name unknown reward models {sorted(unknown)}", **loc)
        scores = {
            u: {
                i: sum(w.get(rm, 0.0) * scores[rm].get(i, 0.0) for rm in w)
                for i in next(iter(scores.values()))
            }
            for u, w in personas.items()
        }
    pairs = []
    for user, by_resp in sorted(scores.items()):
        ranked = sorted(by_resp, key=lambda i: (-by_resp[i], i))
        best, worst = ranked[0], ranked[-1]
        if by_resp[best] == by_resp[worst]:
            continue
        chosen = get_field(rec, f"response_{best}", **loc)
        rejected = get_field(rec, f"response_{worst}", **loc)
        if chosen.strip() != rejected.strip():
            pairs.append(PreferencePair(user_id=user, prompt=prompt, chosen=chosen, rejected=rejected))
    return pairs


def _tldr(stem: str, loc: dict, rec: dict, **_) -> list[PreferencePair]:
    info = get_field(rec, "info", kind=dict, **loc)
    summaries = get_field(rec, "summaries", kind=list, **loc)
    choice = get_field(rec, "choice", kind=int, **loc)
    if len(summaries) != 2 or choice not in (0, 1):
        raise DataError(
            f"expected 2 summaries and choice 0/1, got {len(summaries)} and {choice}", field="choice", **loc
        )
    texts = [get_field(s if isinstance(s, dict) else {}, "text", **loc) for s in summaries]
    if info.get("post"):
        prompt = f"SUBREDDIT: r/{info.get('subreddit') or ''}\nTITLE: {info.get('title') or ''}\nPOST: {info['post']}\nTL;DR:"
    elif info.get("article"):
        prompt = f"ARTICLE: {info['article']}\nTL;DR:"
    else:
        raise DataError("info has neither 'post' nor 'article'", field="info", **loc)
    worker = str(get_field(rec, "worker", kind=(str, int), **loc))
    return [PreferencePair(worker, prompt, texts[choice].strip(), texts[1 - choice].strip())]


_ASSISTANT = "\n\nAssistant:"


def _vpl_hh(stem: str, loc: dict, rec: dict, **_) -> list[PreferencePair]:
    user = str(get_field(rec, "objective", kind=(str, int), **loc))
    chosen, rejected = get_field(rec, "chosen", **loc), get_field(rec, "rejected", **loc)
    if rec.get("prompt"):
        prompt = get_field(rec, "prompt", **loc)
        if chosen.startswith(prompt) and rejected.startswith(prompt):
            chosen, rejected = chosen[len(prompt) :], rejected[len(prompt) :]
    else:
        cut = chosen.rfind(_ASSISTANT)
        if cut < 0:
            raise DataError("no '\\n\\nAssistant:' turn in an HH dialogue", field="chosen", **loc)
        prompt = chosen[: cut + len(_ASSISTANT)]
        if not rejected.startswith(prompt):
            raise DataError("chosen and rejected do not share the dialogue prefix", field="rejected", **loc)
        chosen, rejected = chosen[len(prompt) :], rejected[len(prompt) :]
    return [PreferencePair(user, prompt, chosen.strip(), rejected.strip())]


ADAPTERS: dict[str, Callable[..., list[PreferencePair]]] = {
    "psoups": _psoups,
    "personal_llm": _personal_llm,
    "tldr": _tldr,
    "vpl_hh": _vpl_hh,
}


def load_preference_source(
    source: str,
    path: str | os.PathLike | None = None,
    *,
    hub_id: str | None = None,
    hub_config: str | None = None,
    hub_split: str = "train",
    personas: dict[str, dict[str, float]] | None = None,
    val_frac: float = 0.15,
    test_frac: float = 0.2,
    seed: int = 0,
) -> tuple[list[PreferencePair], DatasetCard]:
    """Load a public personalized preference set as per-user pairs (see module docstring).

    Give ``path`` (local file / folder) or ``hub_id`` (``"hub"`` uses the known default id of
    ``personal_llm`` / ``tldr``). Empty or malformed records raise :class:`DataError` naming file,
    line/record and field; records where chosen == rejected are dropped and counted.
    """
    if source not in ADAPTERS:
        raise ConfigError(f"unknown preference source {source!r}; known: {', '.join(ADAPTERS)}")
    if (path is None) == (hub_id is None):
        raise ConfigError("give exactly one of path= (local files) or hub_id= (Hugging Face hub)")
    if hub_id is not None:
        if hub_id == "hub":
            if source not in HUB_IDS:
                raise ConfigError(f"no default hub id for {source!r}; pass hub_id='owner/name'")
            hub_id, hub_config = HUB_IDS[source]
        rows = iter_hub_rows(hub_id, hub_config, hub_split)
    else:
        rows = iter_local_rows(path)
    fn = ADAPTERS[source]
    pairs: list[PreferencePair] = []
    n_records = n_same = 0
    for stem, (loc, rec) in rows:
        n_records += 1
        loc = {k: (str(v) if k == "path" else v) for k, v in loc.items()}
        try:
            for p in fn(stem, loc, rec, personas=personas):
                if p.chosen.strip() == p.rejected.strip():
                    n_same += 1
                    continue
                pairs.append(p)
        except DataError as e:
            raise e.located(path=loc["path"], line=loc.get("line"), record=loc.get("record")) from None
    if not pairs:
        raise DataError(f"no usable preference pairs in {n_records} records", path=str(path or hub_id))
    # stable pair ids: user / running index within that user
    counts: dict[str, int] = {}
    with_ids = []
    for p in pairs:
        k = counts[p.user_id] = counts.get(p.user_id, -1) + 1
        with_ids.append(
            PreferencePair(p.user_id, p.prompt, p.chosen, p.rejected, f"{p.user_id}/{k}", "train")
        )
    pairs = assign_splits(with_ids, val_frac=val_frac, test_frac=test_frac, seed=seed)
    card = preference_card(
        pairs,
        name=f"{source}:{Path(path).name if path else hub_id}",
        source=source,
        negatives="from the source's own comparisons",
        notes=f"{n_records} records; {n_same} pairs with chosen == rejected dropped",
    )
    return pairs, card
