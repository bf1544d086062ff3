"""ROUGE-1 / ROUGE-L of generations against the users' real completions (rouge-score)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analysis.errors import lookup
from analysis.metrics.intervals import N_BOOT, per_user_means, summarize_by_user

# --------------------------------------------------------------------------- ROUGE
# ROUGE-1 / ROUGE-L F-measure of each generation against the user's real completion
# (rouge_score's tokeniser: lower-case, [a-z0-9]+ tokens; Porter stemming when use_stemmer).
# LaMP's own evaluation ran without stemming; design section 2 defaults to stemming: report which.

ROUGE_TYPES = ("rouge1", "rougeL")
_ROUGE_SCORERS: dict = {}  # use_stemmer -> RougeScorer (building one loads the stemmer)


def _rouge_scorer(use_stemmer: bool):
    from rouge_score import rouge_scorer, tokenizers

    key = bool(use_stemmer)
    if key not in _ROUGE_SCORERS:  # the default tokenizer, passed explicitly (no log line)
        tokenizer = tokenizers.DefaultTokenizer(use_stemmer=key)
        _ROUGE_SCORERS[key] = rouge_scorer.RougeScorer(
            list(ROUGE_TYPES), use_stemmer=key, tokenizer=tokenizer
        )
    return _ROUGE_SCORERS[key]


def rouge_scores(
    predictions: Sequence, references: Sequence, *, use_stemmer: bool = True
) -> dict[str, np.ndarray]:
    """Per-generation F-measure: ``{"rouge1": (N,), "rougeL": (N,)}``.

    A missing reference (None) gives NaN (dropped by every summary); an empty prediction
    against a real reference scores 0.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    scorer = _rouge_scorer(use_stemmer)
    out = {t: np.full(len(predictions), np.nan) for t in ROUGE_TYPES}
    for i, (pred, ref) in enumerate(zip(predictions, references, strict=True)):
        if ref is None:
            continue
        scores = scorer.score(str(ref), "" if pred is None else str(pred))  # (target, prediction)
        for t in ROUGE_TYPES:
            out[t][i] = scores[t].fmeasure
    return out


def rouge_summary(
    user_ids: Sequence,
    predictions: Sequence,
    references: Sequence,
    *,
    use_stemmer: bool = True,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict:
    """ROUGE per user, then over users with a 95% two-level bootstrap interval (users, then items).

    Returns ``{"rouge1": summarize_by_user(...), "rougeL": ..., "stemming": use_stemmer}``.
    """
    scores = rouge_scores(predictions, references, use_stemmer=use_stemmer)
    out: dict = {t: summarize_by_user(user_ids, scores[t], n_boot=n_boot, seed=seed) for t in ROUGE_TYPES}
    out["stemming"] = bool(use_stemmer)
    return out


def rouge_by_user(
    user_ids: Sequence,
    predictions: Sequence,
    references: Sequence,
    *,
    rouge_type: str = "rouge1",
    use_stemmer: bool = True,
) -> dict:
    """``{user_id: mean ROUGE of that user's generations}`` (the unit of every comparison)."""
    lookup(ROUGE_TYPES, rouge_type, "ROUGE type", ValueError)
    scores = rouge_scores(predictions, references, use_stemmer=use_stemmer)[rouge_type]
    return per_user_means(user_ids, scores)
