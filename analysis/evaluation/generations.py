"""Evaluate a generations file: ROUGE per generation, per method table, paired comparisons.

Input: the JSONL written by :func:`analysis.generation.runner.run_generations` (``generate``, the
studies), schema :data:`analysis.generation.runner.ROW_FIELDS`; fields used: ``user_id, test_id,
method, params, text, reference`` (rows without a reference score NaN and are left out). A *method* in the tables is a method name with
its parameters (``icl {"k": 4, ...}``), so two settings of one method are two rows.

Numbers come from :mod:`analysis.metrics.intervals` (ROUGE F-measure averaged per user, then over users,
95% bootstrap interval over users; paired bootstrap + Wilcoxon for comparisons). Every table
records the stemming setting (design section 9).

Example
-------
>>> rows = [{"user_id": "u1", "method": "base", "params": {}, "text": "a b", "reference": "a b"}]
>>> method_table(rows, n_boot=10)[["method", "rouge1", "users"]].to_dict("records")
[{'method': 'base', 'rouge1': 1.0, 'users': 1}]
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.data.records import DataError
from analysis.errors import lookup
from analysis.metrics.intervals import N_BOOT, paired_comparison, per_user_items, summarize_by_user
from analysis.metrics.rouge import ROUGE_TYPES, rouge_scores

REQUIRED = ("user_id", "method", "text", "reference")  # fields of analysis.generation.runner.ROW_FIELDS
PARAM_FIELDS = ("system", "w", "k", "n", "mode", "icl_k", "temperature")  # rows of other tools, no "params"
TABLE_COLUMNS = [
    "method", "params", "rouge1", "rouge1_ci_low", "rouge1_ci_high",
    "rougeL", "rougeL_ci_low", "rougeL_ci_high", "users", "n", "stemming",
]  # fmt: skip


def params_label(params: dict | None) -> str:
    """Compact, stable text of a params dict (sorted keys), used as the table's ``params``."""
    return json.dumps(params or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load_generations(path: str | os.PathLike) -> list[dict]:
    """Rows of a generations JSONL file (a torn last line is ignored); checks required fields."""
    from analysis.generation.runner import read_rows

    if not os.path.exists(path):
        raise DataError("generations file not found", path=str(path))
    rows = read_rows(path)
    if not rows:
        raise DataError("generations file has no rows", path=str(path))
    for i, row in enumerate(rows):
        for name in REQUIRED:
            if name not in row:
                raise DataError("missing field", path=str(path), record=f"line {i + 1}", field=name)
    if all(r["reference"] is None for r in rows):
        raise DataError(
            "no row has a reference to score against (give `generate --input` rows a 'reference')",
            path=str(path),
            field="reference",
        )
    return rows


def row_params(row: dict) -> dict:
    """A row's ``params``; rows written by other tools without one use their top-level
    :data:`PARAM_FIELDS` (e.g. the ARGS weight ``w``) so that settings stay apart."""
    if isinstance(row.get("params"), dict):
        return row["params"]
    out = {}
    for name in PARAM_FIELDS:
        value = row.get(name)
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            out[name] = value
    return out


def score_generations(rows: Sequence[dict], *, use_stemmer: bool = True) -> pd.DataFrame:
    """One row per generation: user_id, test_id, method, params, rouge1, rougeL (NaN if no reference)."""
    df = pd.DataFrame(
        {
            "user_id": [r["user_id"] for r in rows],
            "test_id": [r.get("test_id") for r in rows],
            "method": [r["method"] for r in rows],
            "params": [params_label(row_params(r)) for r in rows],
        }
    )
    scores = rouge_scores([r["text"] for r in rows], [r["reference"] for r in rows], use_stemmer=use_stemmer)
    for t in ROUGE_TYPES:
        df[t] = scores[t]
    return df


def method_table(
    rows: Sequence[dict] | pd.DataFrame, *, use_stemmer: bool = True, n_boot: int = N_BOOT, seed: int = 0
) -> pd.DataFrame:
    """Per-method table (:data:`TABLE_COLUMNS`): mean over users of per-user mean ROUGE, 95% CI.

    Methods keep their first-seen order. ``n`` counts scored generations (with a reference).
    """
    df = rows if isinstance(rows, pd.DataFrame) else score_generations(rows, use_stemmer=use_stemmer)
    out = []
    for (method, params), g in df.groupby(["method", "params"], sort=False):
        rec: dict = {"method": method, "params": params}
        for t in ROUGE_TYPES:
            s = summarize_by_user(g["user_id"].tolist(), g[t].to_numpy(), n_boot=n_boot, seed=seed)
            rec.update({t: s["mean"], f"{t}_ci_low": s["ci_low"], f"{t}_ci_high": s["ci_high"]})
            rec["users"], rec["n"] = s["n_users"], s["n"]
        rec["stemming"] = bool(use_stemmer)
        out.append(rec)
    return pd.DataFrame(out, columns=TABLE_COLUMNS)


def _select(df: pd.DataFrame, which: str | tuple[str, str]) -> pd.DataFrame:
    """Rows of one method: ``"name"`` (must be unambiguous), ``"name params-json"`` or (name, params)."""
    if isinstance(which, tuple):
        name, params = which
    else:
        name, _, params = str(which).partition(" ")
    sel = df[df["method"] == name]
    if params:
        try:
            want = params_label(json.loads(params))
        except json.JSONDecodeError:
            raise DataError(f"method parameters {params!r} are not JSON") from None
        sel = sel[sel["params"] == want]
    settings = sel["params"].unique()
    if len(settings) == 0:
        known = sorted({f"{m} {p}" for m, p in zip(df["method"], df["params"], strict=True)})
        raise DataError(f"no generations for method {which!r}; have: {known}")
    if len(settings) > 1:
        raise DataError(
            f"method {name!r} has {len(settings)} settings; name one: {[f'{name} {p}' for p in settings]}"
        )
    return sel


def compare_methods(
    df: pd.DataFrame,
    a: str | tuple,
    b: str | tuple,
    *,
    metric: str = "rouge1",
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict:
    """Paired comparison A - B over the users both have (paired bootstrap CI, Wilcoxon p)."""
    lookup(ROUGE_TYPES, metric, "metric", DataError)
    sa, sb = _select(df, a), _select(df, b)
    res = paired_comparison(
        per_user_items(sa["user_id"].tolist(), sa["test_id"].tolist(), sa[metric].to_numpy()),
        per_user_items(sb["user_id"].tolist(), sb["test_id"].tolist(), sb[metric].to_numpy()),
        n_boot=n_boot,
        seed=seed,
    )
    return {"a": str(a), "b": str(b), "metric": metric, **res}


def format_table(table: pd.DataFrame, digits: int = 4) -> str:
    """Plain-text table: method, params, ROUGE-1, CI, ROUGE-L, CI, users (+ the stemming note)."""
    if table.empty:
        return "(no generations)"

    def ci(lo, hi) -> str:
        return "nan" if np.isnan(lo) else f"[{lo:.{digits}f}, {hi:.{digits}f}]"

    show = pd.DataFrame(
        {
            "method": table["method"],
            "params": table["params"],
            "ROUGE-1": table["rouge1"].map(lambda v: f"{v:.{digits}f}"),
            "CI (R-1)": [
                ci(lo, hi) for lo, hi in zip(table["rouge1_ci_low"], table["rouge1_ci_high"], strict=True)
            ],
            "ROUGE-L": table["rougeL"].map(lambda v: f"{v:.{digits}f}"),
            "CI (R-L)": [
                ci(lo, hi) for lo, hi in zip(table["rougeL_ci_low"], table["rougeL_ci_high"], strict=True)
            ],
            "users": table["users"],
        }
    )
    stem = "on" if bool(table["stemming"].iloc[0]) else "off"
    return (
        show.to_string(index=False)
        + f"\n(ROUGE F-measure, mean over users; 95% two-level bootstrap CI, users then items; stemming {stem})"
    )
