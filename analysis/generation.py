"""The generation runner: user tasks x methods -> a JSONL file of generations (design 3.3, 7).

The one way the project generates: the studies' systems, ``python -m analysis generate`` and
the rows ``evaluate`` reads all go through :func:`run_generations`. One row per (method
setting, task); the fields (:data:`ROW_FIELDS`)::

    key        cache key (hex): sha256 of model, method, system, params, user_id, test_id, prompt
    user_id    the user
    test_id    the task's test_id, else "<user_id>:<i>" (the i-th task of that user; :func:`test_ids`)
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
rendering, max_prompt_tokens, seed: :mod:`analysis.icl`); reward-guided decoders (ARGS,
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

import difflib
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from analysis.data.records import DataError, UserTask
from analysis.data.tasks import get_task, zero_shot_prompt
from analysis.io import write_text
from analysis.models import model_id, render_prompt

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
DEFAULT_MAX_NEW_TOKENS = 32  # when neither the method, the runner nor a task sets a budget

GenerateFn = Callable[..., list]  # fn(model, tok, tasks: list[UserTask], params: dict) -> list[str | dict]
PromptFn = Callable[..., "PromptInfo"]  # fn(tok, task_name, user_task, params) -> PromptInfo


@dataclass(frozen=True)
class PromptTask:
    """A task given as a prompt (no profile), e.g. one line of ``generate --input``: the runner
    takes it like a :class:`~analysis.data.records.UserTask` with ``task=None``."""

    user_id: str
    test_input: str
    test_output: str | None = None
    test_id: str | None = None
    profile: tuple = ()


@dataclass
class PromptInfo:
    """What a method shows the model for one task: the rendered ``text`` plus ``info`` for the row."""

    text: str
    messages: list[dict] | str
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationMethod:
    """A registered method: ``fn`` generates, ``prompt`` renders (for the row and the cache key).

    defaults: the accepted parameters and their defaults (None = accept any keys).
    """

    name: str
    fn: GenerateFn
    prompt: PromptFn
    defaults: dict | None = None
    description: str = ""


METHODS: dict[str, GenerationMethod] = {}


def base_prompt(task: str | None, user_task: UserTask) -> str:
    """The base prompt x: :func:`analysis.data.tasks.zero_shot_prompt`, or the input as-is when
    ``task`` is None (prompts given directly, e.g. ``generate --input``)."""
    return user_task.test_input if task is None else zero_shot_prompt(task, user_task.test_input)


def zero_shot_prompt_info(tok, task: str | None, user_task: UserTask, params: dict) -> PromptInfo:
    """The base prompt x (:func:`base_prompt`), chat-rendered: what base and RGD methods see."""
    x = base_prompt(task, user_task)
    return PromptInfo(render_prompt(tok, x), x)


def register_method(
    name: str,
    fn: GenerateFn,
    *,
    defaults: dict | None = None,
    prompt: PromptFn | None = None,
    description: str = "",
    replace: bool = False,
) -> GenerationMethod:
    """Add a method to :data:`METHODS`; ``prompt`` defaults to the zero-shot prompt (what RGD sees)."""
    if name in METHODS and not replace:
        raise ValueError(f"generation method {name!r} is already registered (pass replace=True)")
    method = GenerationMethod(name, fn, prompt or zero_shot_prompt_info, defaults, description)
    METHODS[name] = method
    return method


def get_method(name: str) -> GenerationMethod:
    if name not in METHODS:
        close = difflib.get_close_matches(name, METHODS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"unknown generation method {name!r}{hint} (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]


@dataclass(frozen=True)
class MethodSpec:
    """A method name plus its parameters, e.g. ``MethodSpec("icl", {"k": 4})``; ``system`` labels
    the setting in the rows (default: the method name)."""

    name: str
    params: dict = field(default_factory=dict)
    system: str | None = None

    @classmethod
    def parse(cls, text: str) -> MethodSpec:
        """``"icl:k=4,retriever=bm25"`` -> MethodSpec("icl", {"k": 4, "retriever": "bm25"}) (JSON values)."""
        name, _, rest = text.partition(":")
        params = {}
        for part in filter(None, rest.split(",")):
            key, eq, value = part.partition("=")
            if not eq:
                raise DataError(f"method parameter {part!r} is not KEY=VALUE", record=text)
            try:
                params[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                params[key.strip()] = value.strip()
        return cls(name.strip(), params)


def resolve_params(spec: MethodSpec, tok, task: str | None, max_new_tokens: int | None) -> dict:
    """Defaults + given params (unknown keys rejected), with ``max_new_tokens`` always set
    (given explicitly, else the runner's ``max_new_tokens``, else the task's budget)."""
    method = get_method(spec.name)
    given = dict(spec.params)
    if method.defaults is not None:
        allowed = set(method.defaults) | {"max_new_tokens"}
        for key in given:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise DataError(
                    f"method {spec.name!r} has no parameter {key!r}{hint} (accepts {sorted(allowed)})"
                )
        given = {**method.defaults, **given}
    if "max_new_tokens" not in spec.params:  # explicit > the runner's value > the task's budget
        budget = get_task(task).max_new_tokens if task is not None else DEFAULT_MAX_NEW_TOKENS
        given["max_new_tokens"] = max_new_tokens or budget
    if spec.name == "icl":  # record the rendering actually used, not "auto"
        from analysis.icl import ICLConfig

        given["rendering"] = ICLConfig(**_icl_fields(given)).resolved(tok).rendering
    try:
        json.dumps(given, sort_keys=True)
    except TypeError as exc:
        raise DataError(f"parameters of method {spec.name!r} must be JSON-serialisable: {exc}") from None
    return dict(sorted(given.items()))


# --------------------------------------------------------------------------- built-in methods


def _base_generate(model, tok, tasks, params):
    from analysis.decoding.base import generate_greedy

    prompts = [base_prompt(params["task"], t) for t in tasks]
    return generate_greedy(
        model, tok, prompts, max_new_tokens=params["max_new_tokens"], batch_size=params["batch_size"]
    )


def _icl_fields(params: dict) -> dict:
    from analysis.icl import ICLConfig

    return {k: v for k, v in params.items() if k in ICLConfig.__dataclass_fields__}


def _icl_prompt(tok, task, user_task, params) -> PromptInfo:
    from analysis.icl import ICLConfig, build_icl_prompt

    if task is None:
        raise DataError("method 'icl' needs a task (its instructions and profile rendering)")
    p = build_icl_prompt(tok, task, user_task, ICLConfig(**_icl_fields(params)))
    info = {"example_ids": p.example_ids, "n_prompt_tokens": p.n_tokens, "item_budget": p.item_budget}
    if p.input_truncated:
        info["input_truncated"] = True
    return PromptInfo(p.text, p.messages, info)


def _icl_generate(model, tok, tasks, params):
    from analysis.decoding.base import generate_greedy

    msgs = [_icl_prompt(tok, params["task"], t, params).messages for t in tasks]
    batch = max(1, params["batch_size"] // 2)  # ICL prompts are several times longer
    return generate_greedy(model, tok, msgs, max_new_tokens=params["max_new_tokens"], batch_size=batch)


def _icl_defaults() -> dict:
    from analysis.icl import ICLConfig

    return asdict(ICLConfig())


register_method(
    "base", _base_generate, defaults={}, description="zero-shot greedy decoding of the base policy"
)
register_method(
    "icl",
    _icl_generate,
    defaults=_icl_defaults(),
    prompt=_icl_prompt,
    description="k retrieved profile examples + greedy",
)


# --------------------------------------------------------------------------- RGD hook

RGD_DECODERS = ("args", "best_of_n")


def rgd_method(rm, decoder: str = "args") -> GenerateFn:
    """A method function running reward-guided decoding with ``rm`` on the zero-shot prompts.

    ``decoder`` ``args`` calls :func:`analysis.decoding.args.args_generate` (params w, k, mode,
    temperature, seed, max_new_tokens; at most 8 prompts per batch), ``best_of_n``
    :func:`analysis.decoding.best_of_n.best_of_n` (n, temperature, top_p, seed, max_new_tokens).
    Rows get ``reward``.
    """
    if decoder not in RGD_DECODERS:
        raise DataError(f"unknown RGD decoder {decoder!r}; choose one of {RGD_DECODERS}")

    def generate(model, tok, tasks, params):
        prompts = [base_prompt(params["task"], t) for t in tasks]
        users = [t.user_id for t in tasks]
        if decoder == "args":
            from analysis.decoding.args import ArgsConfig, args_generate

            kw = {k: params[k] for k in ArgsConfig.__dataclass_fields__ if k in params and k != "batch_size"}
            outs = args_generate(
                model, tok, rm, prompts, users, batch_size=min(8, params["batch_size"]), **kw
            )
        else:
            from analysis.decoding.best_of_n import BestOfNConfig, best_of_n

            kw = {
                k: params[k] for k in BestOfNConfig.__dataclass_fields__ if k in params and k != "batch_size"
            }
            outs = best_of_n(model, tok, rm, prompts, users, batch_size=params["batch_size"], **kw)
        return [{"text": o.text, "reward": float(o.reward)} for o in outs]

    return generate


def register_rgd_method(
    name: str, rm, *, rm_id: str, decoder: str = "args", replace: bool = False, **defaults
) -> GenerationMethod:
    """Register ``name`` as RGD with ``rm``; ``rm_id`` (e.g. the RM folder) enters the cache key.

    Accepted params are the decoder's config fields (batch size excluded: the runner batches;
    ``max_new_tokens`` comes from the runner like for every method), with ``defaults``
    overriding the config defaults, plus ``rm``.
    """
    if decoder == "args":
        from analysis.decoding.args import ArgsConfig as cfg_cls
    else:
        from analysis.decoding.best_of_n import BestOfNConfig as cfg_cls
    base = {k: v for k, v in asdict(cfg_cls()).items() if k not in ("batch_size", "max_new_tokens")}
    unknown = set(defaults) - set(base)
    if unknown:
        raise DataError(f"{decoder} has no parameter(s) {sorted(unknown)} (accepts {sorted(base)})")
    params = {**base, **defaults, "rm": str(rm_id)}
    return register_method(
        name,
        rgd_method(rm, decoder),
        defaults=params,
        description=f"{decoder} with RM {rm_id}",
        replace=replace,
    )


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


def test_ids(tasks: Sequence[UserTask]) -> list[str]:
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
    model_name: the ``model`` field and cache-key part (default :func:`analysis.models.model_id`).
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
    ids = test_ids(tasks)

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
        pending = [j for j in jobs if j[3]["key"] not in cached]
        bar = tqdm(total=len(pending), desc=f"generate ({name})", unit="gen", disable=not progress)
        for group in _batches(pending, chunk_size or batch_size):
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
