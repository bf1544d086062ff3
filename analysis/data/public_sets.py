"""Three public personalized preference sets as per-user :class:`PreferencePair` s (study 1, paper preset).

One entry point, :func:`load_public_preferences(name, params) <load_public_preferences>`, returns
``(pairs, card)`` with train / val / test splits assigned *by prompt across users* (no prompt of
a validation or test pair appears in any training pair of any user). Each set is read from a
local file or folder with the hub's columns (``params["path"]``: JSON, JSONL or parquet; the
hub's parquet files work as downloaded) or, without a path, from the Hugging Face hub through
``datasets.load_dataset`` (the optional ``hub`` extra). Schemas, as published:

- ``personal_llm``: ``namkoong-lab/PersonalLLM`` (train 9,402 / test 1,000 rows, CC BY 4.0):
  ``prompt``, ``prompt_id``, ``subset``, ``response_1..8``, ``response_k_model`` and a float
  score ``response_k_<rm>`` for each of the 10 reward models in :data:`PERSONAL_LLM_RMS`. There
  is no user column: a user is a Dirichlet(``alpha``) weight vector over the 10 RMs, the user's
  reward of a response is the weighted sum of its z-scored scores (each RM z-scored over the
  whole source split), and a pair is two of the 8 responses, ``chosen`` = higher user reward.
- ``psoups``: P-SOUPS (Jang et al. 2023), mirror ``RiverDong/psoups``, configs ``default`` /
  ``ood`` (train + test) and ``new-user`` (test only, adds ``preference_key``): ``prompt``,
  ``chosen``, ``rejected``, ``uid`` (int, 6 users with conflicting preferences on expertise,
  informativeness and style).
- ``tldr``: Reddit TL;DR comparisons by labeller, ``openai/summarize_from_feedback`` config
  ``comparisons``: ``info{id, post, title, subreddit, ...}``, ``summaries[{text, policy, note}]``
  (two), ``choice`` (index of the preferred summary), ``worker``. The repository is script-only
  (refused by ``datasets`` >= 4), so the hub path reads its ``refs/convert/parquet`` revision.
  Users are the workers with at least ``min_comparisons`` comparisons; rows without a Reddit
  ``post`` (the CNN/DM articles) are skipped.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable

import numpy as np

from analysis.data.hub import assign_prompt_splits, iter_rows, note_prompt
from analysis.data.preferences import preference_card
from analysis.data.readers import get_field
from analysis.data.records import DataError, DatasetCard, PreferencePair
from analysis.data.splits import split_counts
from analysis.errors import lookup

PERSONAL_LLM_RMS = (
    "gemma_2b",
    "gemma_7b",
    "mistral_raft",
    "llama3_sfairx",
    "oasst_deberta_v3",
    "beaver_7b",
    "oasst_pythia_7b",
    "oasst_pythia_1b",
    "mistral_ray",
    "mistral_weqweasdas",
)
N_RESPONSES = 8

_COMMON = {
    "path": "",
    "seed": 0,
    "val_frac": 0.15,
    "test_frac": 0.2,
    "n_prompts": 0,
    "hub_id": "",
    "hub_config": "",
    "hub_revision": "",
}
SETTINGS: dict[str, dict] = {
    "personal_llm": {"n_users": 50, "alpha": 0.1, "pairs_per_user": 40, "n_prompts": 1000},
    "psoups": {"hub_config": "default", "n_users": 6, "max_pairs_per_user": 500, "n_prompts": 2000},
    "tldr": {
        "hub_config": "comparisons",
        "hub_revision": "refs/convert/parquet",
        "n_users": 50,
        "min_comparisons": 100,
        "max_pairs_per_user": 200,
    },
}
HUB = {
    "personal_llm": ("namkoong-lab/PersonalLLM", "CC BY 4.0"),
    "psoups": (
        "RiverDong/psoups",
        "none stated on the mirror's card; see the P-SOUPS release (Jang et al. 2023)",
    ),
    "tldr": (
        "openai/summarize_from_feedback",
        "none stated on the hub card; see OpenAI's summarize-from-feedback release",
    ),
}
PUBLIC_SETS = tuple(SETTINGS)


def settings(name: str, params: dict | None = None) -> dict:
    """Defaults of ``name`` overridden by ``params``; an unknown key is one :class:`DataError` line."""
    s = {**_COMMON, **lookup(SETTINGS, name, "public preference set", DataError)}
    for k, v in (params or {}).items():
        lookup(sorted(s), k, f"setting for {name}", DataError)
        s[k] = v
    for k, low in (
        ("n_users", 1),
        ("pairs_per_user", 1),
        ("min_comparisons", 1),
        ("n_prompts", 0),
        ("max_pairs_per_user", 0),
    ):
        if k in s and not (isinstance(s[k], int) and not isinstance(s[k], bool) and s[k] >= low):
            raise DataError(f"setting '{k}' of {name} must be an integer >= {low}, got {s[k]!r}")
    if "alpha" in s and not (isinstance(s["alpha"], int | float) and s["alpha"] > 0):
        raise DataError(f"setting 'alpha' of {name} must be > 0, got {s['alpha']!r}")
    s["hub_id"] = s["hub_id"] or HUB[name][0]
    return s


def load_public_preferences(
    name: str, params: dict | None = None
) -> tuple[list[PreferencePair], DatasetCard]:
    """``(pairs, card)`` of public set ``name`` (``personal_llm`` / ``psoups`` / ``tldr``).

    ``params`` overrides :data:`SETTINGS` (plus ``path``, ``seed``, ``val_frac``, ``test_frac``,
    ``n_prompts`` (0 = all) and the hub coordinates). Deterministic for a given ``seed``.
    """
    s = settings(name, params)
    hint = f"; or set data_paths.{name} to a local copy (parquet/JSONL with the hub's columns)"
    rows = iter_rows(
        s["path"], s["hub_id"], s["hub_config"] or None, revision=s["hub_revision"] or None, hint=hint
    )
    return _LOADERS[name](rows, s, name)


# ----------------------------------------------------------------------------- PersonalLLM
def personal_llm_weights(n_users: int, alpha: float, seed: int) -> np.ndarray:
    """(n_users, 10) user weights over :data:`PERSONAL_LLM_RMS`, each row ~ Dirichlet(alpha)."""
    return np.random.default_rng([seed, 7]).dirichlet([float(alpha)] * len(PERSONAL_LLM_RMS), size=n_users)


def _personal_llm(rows, s: dict, name: str) -> tuple[list[PreferencePair], DatasetCard]:
    prompts, texts, scores, src = [], [], [], []
    n_empty = 0
    for split, loc, rec in rows:
        p = get_field(rec, "prompt", allow_empty=True, **loc)
        n_empty += not p.strip()
        texts.append(
            [get_field(rec, f"response_{k}", allow_empty=True, **loc) for k in range(1, N_RESPONSES + 1)]
        )
        row = []
        for k in range(1, N_RESPONSES + 1):
            for rm in PERSONAL_LLM_RMS:
                v = get_field(rec, f"response_{k}_{rm}", kind=(int, float), **loc)
                if not math.isfinite(v):
                    raise DataError(f"score is {v}", field=f"response_{k}_{rm}", **loc)
                row.append(float(v))
        prompts.append(p)
        scores.append(row)
        src.append(split)
    if not prompts:
        raise DataError("no rows", path=str(s["path"] or s["hub_id"]))
    z = np.asarray(scores).reshape(len(prompts), N_RESPONSES, len(PERSONAL_LLM_RMS))  # (N, 8, 10)
    for split in set(src):  # z-score each RM over the whole source split
        idx = [i for i, x in enumerate(src) if x == split]
        block = z[idx]
        sd = block.std(axis=(0, 1))
        z[idx] = (block - block.mean(axis=(0, 1))) / np.where(sd > 0, sd, 1.0)
    seen: dict[str, str | None] = {}
    for p, split in zip(prompts, src, strict=True):
        if p.strip():  # rows with an empty prompt give no pairs
            note_prompt(seen, p, split)
    psplit = assign_prompt_splits(
        seen,
        val_frac=s["val_frac"],
        test_frac=s["test_frac"],
        seed=s["seed"],
        n_prompts=s["n_prompts"] or None,
    )
    weights = personal_llm_weights(s["n_users"], s["alpha"], s["seed"])
    # (N, 8, 8): True where two responses are equal or one is empty (no pair)
    same = np.array(
        [[a.strip() == b.strip() or not (a.strip() and b.strip()) for a in t for b in t] for t in texts]
    )
    same = same.reshape(-1, N_RESPONSES, N_RESPONSES)
    iu, ju = np.triu_indices(N_RESPONSES, k=1)  # the 28 response pairs
    per_split = dict(
        zip(
            ("train", "val", "test"),
            split_counts(s["pairs_per_user"], s["val_frac"], s["test_frac"]),
            strict=True,
        )
    )
    rows_of = {
        sp: np.array([i for i, p in enumerate(prompts) if psplit.get(p) == sp], dtype=int) for sp in per_split
    }
    width = len(str(s["n_users"] - 1))
    pairs: list[PreferencePair] = []
    for u, w in enumerate(weights):
        user = f"u{u:0{width}d}"
        rng = np.random.default_rng([s["seed"], 1, u])
        reward = z @ w  # (N, 8)
        k = 0
        for sp, want in per_split.items():
            idx = rows_of[sp]
            if want == 0 or len(idx) == 0:
                continue
            diff = reward[idx][:, iu] - reward[idx][:, ju]  # (n, 28)
            ok = (np.abs(diff) > 1e-9) & ~same[idx][:, iu, ju]
            cand = np.flatnonzero(ok)
            for c in rng.choice(cand, size=min(want, len(cand)), replace=False):
                r, j = idx[c // len(iu)], c % len(iu)
                a, b = (iu[j], ju[j]) if diff.flat[c] > 0 else (ju[j], iu[j])
                pairs.append(PreferencePair(user, prompts[r], texts[r][a], texts[r][b], f"{user}/{k}", sp))
                k += 1
    notes = (
        f"{len(prompts)} rows ({n_empty} with an empty prompt); {len(psplit)} prompts used; users = Dirichlet({s['alpha']}) weights over "
        f"{len(PERSONAL_LLM_RMS)} reward models (seed {s['seed']}); {s['pairs_per_user']} pairs per user"
    )
    return pairs, _card(
        pairs, name, s, "another of the 8 responses, ranked by the user's weighted z-scored RM scores", notes
    )


# ----------------------------------------------------------------------------- P-SOUPS and TL;DR
def _psoups_row(loc: dict, rec: dict) -> tuple[str, str, str, str] | None:
    uid = get_field(rec, "uid", kind=(int, str), **loc)
    prompt, chosen, rejected = (
        get_field(rec, k, allow_empty=True, **loc) for k in ("prompt", "chosen", "rejected")
    )
    return str(uid), prompt, chosen, rejected


def _tldr_row(loc: dict, rec: dict) -> tuple[str, str, str, str] | None:
    info = get_field(rec, "info", kind=dict, **loc)
    summaries = get_field(rec, "summaries", kind=list, **loc)
    choice = get_field(rec, "choice", kind=int, **loc)
    if len(summaries) != 2 or choice not in (0, 1):
        raise DataError(
            f"expected 2 summaries and choice 0 or 1, got {len(summaries)} and {choice}",
            field="choice",
            **loc,
        )
    worker = str(get_field(rec, "worker", kind=(str, int), **loc))
    texts = [
        get_field(x if isinstance(x, dict) else {}, "text", allow_empty=True, **loc).strip()
        for x in summaries
    ]
    if not info.get("post"):
        return None  # a CNN/DM article, not a Reddit post
    sub = info.get("subreddit") or ""
    prompt = f"SUBREDDIT: r/{sub}\nTITLE: {info.get('title') or ''}\nPOST: {info['post']}\nTL;DR:"
    return worker, prompt, texts[choice], texts[1 - choice]


def _from_comparisons(row_fn: Callable, negatives: str) -> Callable:
    def load(rows, s: dict, name: str) -> tuple[list[PreferencePair], DatasetCard]:
        raw: list[tuple[str, str, str, str, str | None]] = []
        n_rows = n_skipped = n_same = 0
        keys: dict[str, str] = {}
        for split, loc, rec in rows:
            n_rows += 1
            got = row_fn(loc, rec)
            if got is None:
                n_skipped += 1
            elif not all(t.strip() for t in got[1:]) or got[2].strip() == got[3].strip():
                n_same += 1
            else:
                raw.append((*got, split))
                if rec.get("preference_key"):
                    keys.setdefault(got[0], str(rec["preference_key"]))
        counts = Counter(r[0] for r in raw)
        floor = s.get("min_comparisons", 1)
        users = sorted((u for u in counts if counts[u] >= floor), key=lambda u: (-counts[u], u))[
            : s["n_users"]
        ]
        if not users:
            most = max(counts.values(), default=0)
            raise DataError(
                f"no user has >= {floor} comparisons (the most is {most})", path=str(s["path"] or s["hub_id"])
            )
        keep = set(users)
        raw = [r for r in raw if r[0] in keep]
        seen: dict[str, str | None] = {}
        for r in raw:
            note_prompt(seen, r[1], r[4])
        psplit = assign_prompt_splits(
            seen,
            val_frac=s["val_frac"],
            test_frac=s["test_frac"],
            seed=s["seed"],
            n_prompts=s["n_prompts"] or None,
        )
        by_user: dict[str, list] = {}
        for r in raw:
            if r[1] in psplit:
                by_user.setdefault(r[0], []).append(r)
        cap = s.get("max_pairs_per_user") or 0
        pairs: list[PreferencePair] = []
        for user in sorted(by_user):
            mine = by_user[user]
            if cap and len(mine) > cap:
                idx = sorted(random.Random(f"{s['seed']}-{user}").sample(range(len(mine)), cap))
                mine = [mine[i] for i in idx]
            pairs += [
                PreferencePair(u, p, c, r, f"{u}/{k}", psplit[p]) for k, (u, p, c, r, _) in enumerate(mine)
            ]
        notes = f"{n_rows} rows; {n_skipped} skipped; {n_same} with an empty text or chosen == rejected dropped; {len(users)} users kept"
        if keys:
            notes += "; preference keys: " + ", ".join(f"{u}={k}" for u, k in sorted(keys.items()))
        return pairs, _card(pairs, name, s, negatives, notes)

    return load


def _card(pairs: list[PreferencePair], name: str, s: dict, negatives: str, notes: str) -> DatasetCard:
    if not pairs:
        raise DataError("no preference pairs after filtering", path=str(s["path"] or s["hub_id"]))
    where = s["path"] or f"hub:{s['hub_id']}" + (f" ({s['hub_config']})" if s["hub_config"] else "")
    return preference_card(
        pairs, name=name, source=str(where), negatives=negatives, notes=f"{notes}; licence: {HUB[name][1]}"
    )


_LOADERS: dict[str, Callable] = {
    "personal_llm": _personal_llm,
    "psoups": _from_comparisons(
        _psoups_row, "the source's rejected response (P-SOUPS GPT-4 labels per preference)"
    ),
    "tldr": _from_comparisons(_tldr_row, "the other summary of the labeller's comparison"),
}
