"""The generation runner: user tasks x methods -> a JSONL file of generations (design 3.3, 7).

The one way the project generates: the studies' systems, ``python -m analysis generate`` and
the rows ``evaluate`` reads all go through :func:`run_generations`. One row per (method
setting, task); the fields (:data:`ROW_FIELDS`)::

    key        cache key (hex): sha256 of model, method, system, params, user_id, test_id, prompt
    user_id    the user
    test_id    the task's test_id, else "<user_id>:<i>" (the i-th task of that user; :func:`assign_test_ids`)
    task       the task name (instructions), or null when prompts were given as-is
    input      the task input (article, question, or the raw prompt)
    prompt     the exact rendered text the model saw (chat template included)
    reference  the user's real completion when known (else null)
    system     a label of the method setting (default: the method name; studies: "icl_k4", ...)
    method     the registered method name
    params     the method's parameters (JSON; defaults filled in, max_new_tokens always set)
    model      the model name
    text       the generated text
    reward     r_u(x, y) of the text for reward-guided methods (null elsewhere or when undefined)
    info       method extras (ICL: retrieved item ids, truncation; RGD: whatever else it returns)

``seconds`` (wall time of the batch that produced the row, divided by its size) comes with the
rows :func:`run_generations` returns; it is kept in the side file ``<out>.seconds.jsonl`` so
that the generations file itself depends on the inputs only.

Cache and resume. The output file is also the cache: rows are appended one chunk at a time
(flush + fsync), a rerun skips every key already in the file, and a torn last line (a kill
mid-write) is cut off before appending. At the end the file is rewritten atomically in
canonical order (the requested jobs in order, then any other cached rows), so a
killed-and-resumed run produces byte-for-byte the file of an uninterrupted run. A file lock
keeps two runners off one file.

Methods live in a registry. Built in: ``base`` (zero-shot greedy) and ``icl`` (k, retriever,
rendering, max_prompt_tokens, seed: :mod:`analysis.generation.icl`); reward-guided decoders (ARGS,
best-of-n) are registered with an RM by :func:`register_rgd_method`. Any function plugs in
with :func:`register_method`::

    def my_args(model, tok, tasks, params):          # tasks: a batch of UserTask
        ...                                           # params: JSON-able, + "task", "batch_size"
        return [{"text": t, "reward": r} for ...]     # or a list of str

    register_method("args_lore", my_args, defaults={"w": 1.0, "k": 10, "rm": "runs/lore"})

Objects (an RM) are bound in a closure; ``params`` must stay JSON-serialisable because they
are part of the cache key (put an identifier of the bound object in them). ``params`` also
carry ``task`` and ``batch_size`` (the decoding batch; not part of the key).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

from analysis.data.records import DataError, UserTask
from analysis.data.tasks import get_task
from analysis.generation.methods import (
    MethodSpec,
    get_method,
    resolve_params,
)
from analysis.io import write_text
from analysis.models.loading import model_id

ROW_FIELDS: dict[str, str] = {
    "key": "cache key (hex): sha256 of model, method, system, params, user_id, test_id, prompt",
    "user_id": "the user",
    "test_id": "the task's test_id, else '<user_id>:<i>' (i-th task of that user)",
    "task": "task name (instructions), or null when prompts were given as-is",
    "input": "the task input (article, question, or the raw prompt)",
    "prompt": "the exact rendered text the model saw (chat template included)",
    "reference": "the user's real completion when known (else null)",
    "system": "label of the method setting (default: the method name)",
    "method": "the registered method name",
    "params": "the method's parameters (JSON; defaults filled in, max_new_tokens always set)",
    "model": "the model name",
    "text": "the generated text",
    "reward": "r_u(x, y) of the text for reward-guided methods (null elsewhere or when undefined)",
    "info": "method extras (ICL: retrieved item ids, truncation; RGD: other outputs)",
}
RUN_FIELDS = {"seconds": "wall time of the row's batch / its size (returned rows; <out>.seconds.jsonl)"}

# --------------------------------------------------------------------------- cache file


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def row_key(
    model: str, method: str, params: dict, user_id: str, test_id: str, prompt: str, system: str | None = None
) -> str:
    """Cache key of one generation (hex, 24 chars)."""
    parts = [model, method, params, user_id, test_id, _sha(prompt)]
    if system is not None and system != method:
        parts.append(system)
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return _sha(blob)[:24]


def seconds_path(out_path: str | os.PathLike) -> Path:
    """The side file of per-row generation times (``<out>.seconds.jsonl``)."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".seconds.jsonl")


def _read_seconds(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    if not path.exists():
        return out
    for line in path.read_bytes().split(b"\n"):
        try:
            rec = json.loads(line)
            out[rec["key"]] = float(rec["seconds"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn or foreign line: its timing is unknown
    return out


def read_rows(path: str | os.PathLike, *, repair: bool = False) -> list[dict]:
    """Rows of a generations JSONL file, ignoring a torn tail, each with its ``seconds`` (from
    :func:`seconds_path`; None when unknown). See :func:`read_file_rows` for ``repair``."""
    seconds = _read_seconds(seconds_path(path))
    return [{**r, "seconds": seconds.get(r.get("key"))} for r in read_file_rows(path, repair=repair)]


def read_file_rows(path: str | os.PathLike, *, repair: bool = False) -> list[dict]:
    """The rows stored in a generations JSONL file, ignoring a torn tail.

    The tail is whatever follows the last newline (a kill mid-write), plus the last complete
    line if it is not a JSON object. ``repair=True`` cuts the torn tail off the file so that
    appending continues cleanly. A bad line anywhere else raises :class:`DataError`.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1  # bytes after the last newline are torn
    lines = data[:good_end].split(b"\n")[:-1]
    rows: list[dict] = []
    offset = 0
    for i, line in enumerate(lines):
        try:
            row = json.loads(line) if line.strip() else None
            if row is not None and not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError:
            if i == len(lines) - 1:
                good_end = offset  # a corrupt last line is a torn tail too
                break
            raise DataError(
                "not a JSON object (corrupt generations file)", path=str(path), record=f"line {i + 1}"
            ) from None
        if row is not None:
            rows.append(row)
        offset += len(line) + 1
    if repair and good_end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())
    return rows


def _dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, default=str) + "\n"


def _append(path: Path, rows: list[dict]) -> None:
    blob = "".join(_dumps(r) for r in rows).encode("utf-8")
    with open(path, "ab") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())


# --------------------------------------------------------------------------- runner


def assign_test_ids(tasks: Sequence[UserTask]) -> list[str]:
    """``task.test_id`` or ``"<user_id>:<i>"`` (i-th task of that user) when it has none."""
    seen: dict[str, int] = {}
    out = []
    for t in tasks:
        i = seen.get(t.user_id, 0)
        seen[t.user_id] = i + 1
        out.append(t.test_id or f"{t.user_id}:{i}")
    if len(set(zip([t.user_id for t in tasks], out, strict=True))) != len(out):
        raise DataError("duplicate (user_id, test_id) among the tasks")
    return out


def run_generations(
    model,
    tok,
    tasks: Sequence[UserTask],
    methods: Sequence[MethodSpec | str],
    out_path: str | os.PathLike,
    *,
    task: str | None = "news_headline",
    batch_size: int = 16,
    chunk_size: int | None = None,
    max_new_tokens: int | None = None,
    model_name: str | None = None,
    progress: bool = True,
) -> list[dict]:
    """Generate every (method, task) not yet in ``out_path``; return the rows in job order.

    Parameters
    ----------
    tasks: the users' held-out inputs; ``methods``: MethodSpec or ``"name:k=v,..."`` strings.
    task: task name for instructions (:data:`analysis.data.tasks.TASKS`); None: each task's
        ``test_input`` is the prompt as-is.
    batch_size: the decoding batch handed to methods (prompts are length-sorted inside it).
    chunk_size: tasks per method call and per append to the file (default ``batch_size``;
        ``len(tasks)`` makes each method see all tasks at once, e.g. for sampling seeds by index).
    max_new_tokens: default for methods that do not set it (else the task's budget).
    model_name: the ``model`` field and cache-key part (default :func:`analysis.models.loading.model_id`).
    """
    from filelock import FileLock
    from tqdm.auto import tqdm

    if task is not None:
        get_task(task)
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    name = model_name or model_id(model)
    specs = [MethodSpec.parse(m) if isinstance(m, str) else m for m in methods]
    ids = assign_test_ids(tasks)

    jobs: list[tuple[str, dict, int, dict]] = []  # (method, params, task index, row without text)
    for spec in specs:
        params = resolve_params(spec, tok, task, max_new_tokens)
        method = get_method(spec.name)
        system = spec.system or spec.name
        for i, t in enumerate(tasks):
            p = method.prompt(tok, task, t, params)
            row = {
                "key": row_key(name, spec.name, params, t.user_id, ids[i], p.text, system),
                "user_id": t.user_id,
                "test_id": ids[i],
                "task": task,
                "input": t.test_input,
                "prompt": p.text,
                "reference": t.test_output,
                "system": system,
                "method": spec.name,
                "params": params,
                "model": name,
                "text": None,
                "reward": None,
                "info": p.info,
            }
            jobs.append((spec.name, params, i, row))

    timing = seconds_path(out_path)
    with FileLock(str(out_path) + ".lock"):
        cached = {}
        for r in read_file_rows(out_path, repair=True):
            cached.setdefault(r.get("key"), r)
        seconds = _read_seconds(timing)
        chunk = chunk_size or batch_size
        pending = _length_buckets([j for j in jobs if j[3]["key"] not in cached], chunk)
        bar = tqdm(total=len(pending), desc=f"generate ({name})", unit="gen", disable=not progress)
        for group in _batches(pending, chunk):
            method_name, params = group[0][0], group[0][1]
            batch_tasks = [tasks[j[2]] for j in group]
            t0 = time.perf_counter()
            call = {**params, "task": task, "batch_size": batch_size}
            outs = get_method(method_name).fn(model, tok, batch_tasks, call)
            per_row = (time.perf_counter() - t0) / len(group)
            if len(outs) != len(group):
                raise RuntimeError(
                    f"method {method_name!r} returned {len(outs)} outputs for {len(group)} tasks"
                )
            rows = [_fill(j[3], o, method_name) for j, o in zip(group, outs, strict=True)]
            _append(out_path, rows)
            _append(timing, [{"key": r["key"], "seconds": round(per_row, 6)} for r in rows])
            cached.update({r["key"]: r for r in rows})
            seconds.update({r["key"]: round(per_row, 6) for r in rows})
            bar.update(len(rows))
        bar.close()
        job_keys = [j[3]["key"] for j in jobs]
        wanted = set(job_keys)
        final = [cached[k] for k in dict.fromkeys(job_keys)]
        final += [r for k, r in cached.items() if k not in wanted]
        canonical = "".join(_dumps(r) for r in final)
        current = out_path.read_bytes() if out_path.exists() else b""
        if current != canonical.encode("utf-8"):  # resumed or foreign rows: reorder
            write_text(out_path, canonical)
    return [{**cached[k], "seconds": seconds.get(k)} for k in job_keys]


def _length_buckets(pending: list, chunk: int) -> list:
    """Length-bucketed chunks: the jobs of each method setting (in first-seen order), sorted by
    prompt length (stable) when they span several chunks, so that a chunk holds prompts of
    similar length and its batches need little padding. A setting that fits one chunk keeps its
    order (methods sort inside a call). The file is rewritten in job order at the end."""
    groups: dict[str, list] = {}
    for j in pending:
        groups.setdefault(json.dumps([j[0], j[1]], sort_keys=True), []).append(j)
    out = []
    for g in groups.values():
        out += sorted(g, key=lambda j: len(j[3]["prompt"])) if len(g) > chunk else g
    return out


def _batches(pending: list, batch_size: int):
    """Consecutive runs of at most ``batch_size`` jobs of the same method and params."""
    start = 0
    while start < len(pending):
        end = start + 1
        while end < len(pending) and end - start < batch_size and pending[end][:2] == pending[start][:2]:
            end += 1
        yield pending[start:end]
        start = end


def _reward(value):
    """A scalar reward as a JSON number, NaN / None as null; anything else is not a reward."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _fill(row: dict, out, method: str) -> dict:
    row = dict(row)
    if isinstance(out, str):
        row["text"] = out
        return row
    if not isinstance(out, dict) or not isinstance(out.get("text"), str):
        raise RuntimeError(
            f"method {method!r} must return str or a dict with a 'text' string, got {type(out).__name__}"
        )
    row["text"] = out["text"]
    extra = {k: v for k, v in out.items() if k != "text"}
    if "prompt" in extra:  # the method rendered its own prompt: store what the model saw
        row["prompt"] = extra.pop("prompt")
    if isinstance(extra.get("reward"), (int, float)) or extra.get("reward") is None:
        row["reward"] = _reward(extra.pop("reward", None))
    row["info"] = {**row["info"], **json.loads(json.dumps(extra, default=_jsonable))}
    return row


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
