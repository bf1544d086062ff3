"""The method registry of the generation runner (:mod:`analysis.generation.runner`).

Built in: ``base`` (zero-shot greedy) and ``icl`` (k, retriever, rendering, max_prompt_tokens,
seed: :mod:`analysis.generation.icl`). Reward-guided decoders (ARGS, best-of-n) are registered with an RM
by :func:`register_rgd_method`; any function plugs in with :func:`register_method`. A method
function is ``fn(model, tok, tasks, params) -> list[str | dict]``: ``params`` are the resolved,
JSON-able parameters (part of the cache key) plus ``task`` and ``batch_size`` (the decoding
batch); a dict output has ``text`` and optionally ``reward``, ``prompt`` and other extras.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from analysis.data.records import DataError, UserTask
from analysis.data.tasks import get_task, zero_shot_prompt
from analysis.decoding.base import GenerationConfig
from analysis.errors import lookup
from analysis.models.tokens import render_prompt

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
    return lookup(METHODS, name, "generation method", DataError)


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
            lookup(sorted(allowed), key, "parameter", DataError, prefix=f"method '{spec.name}': ")
        given = {**method.defaults, **given}
    if "max_new_tokens" not in spec.params:  # explicit > the runner's value > the task's budget
        budget = get_task(task).max_new_tokens if task is not None else DEFAULT_MAX_NEW_TOKENS
        given["max_new_tokens"] = max_new_tokens or budget
    if spec.name == "icl":  # record the rendering actually used, not "auto"
        from analysis.generation.icl import ICLConfig

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
        model,
        tok,
        prompts,
        GenerationConfig(max_new_tokens=params["max_new_tokens"], batch_size=params["batch_size"]),
    )


def _icl_fields(params: dict) -> dict:
    from analysis.generation.icl import ICLConfig

    return {k: v for k, v in params.items() if k in ICLConfig.__dataclass_fields__}


def _icl_prompt(tok, task, user_task, params) -> PromptInfo:
    from analysis.generation.icl import ICLConfig, build_icl_prompt

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
    return generate_greedy(
        model, tok, msgs, GenerationConfig(max_new_tokens=params["max_new_tokens"], batch_size=batch)
    )


def _icl_defaults() -> dict:
    from analysis.generation.icl import ICLConfig

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
    temperature, seed, max_new_tokens; ``batch_size`` prompts per batch, i.e. ``k`` times as many
    candidate rows), ``best_of_n``
    :func:`analysis.decoding.best_of_n.best_of_n` (n, temperature, top_p, seed, max_new_tokens).
    Rows get ``reward``.
    """
    lookup(RGD_DECODERS, decoder, "RGD decoder", DataError)

    def generate(model, tok, tasks, params):
        prompts = [base_prompt(params["task"], t) for t in tasks]
        users = [t.user_id for t in tasks]
        if decoder == "args":
            from analysis.decoding.args import ArgsConfig, args_generate

            outs = args_generate(model, tok, rm, prompts, users, _config(ArgsConfig, params))
        else:
            from analysis.decoding.best_of_n import BestOfNConfig, best_of_n

            outs = best_of_n(model, tok, rm, prompts, users, _config(BestOfNConfig, params))
        return [{"text": o.text, "reward": float(o.reward)} for o in outs]

    return generate


def _config(cfg_cls, params: dict):
    """The decoder's config from a method's params (its fields among them; the rest, e.g. ``rm`` and
    ``task``, are the runner's)."""
    return cfg_cls(**{k: params[k] for k in cfg_cls.__dataclass_fields__ if k in params})


def register_rgd_method(
    name: str,
    rm,
    *,
    rm_id: str,
    decoder: str = "args",
    replace: bool = False,
    fn: GenerateFn | None = None,
    **defaults,
) -> GenerationMethod:
    """Register ``name`` as RGD with ``rm``; ``rm_id`` (e.g. the RM folder) enters the cache key.

    Accepted params are the decoder's config fields (batch size excluded: the runner batches;
    ``max_new_tokens`` comes from the runner like for every method), with ``defaults``
    overriding the config defaults, plus ``rm``. ``fn``: the method function when it is not
    :func:`rgd_method` (e.g. the studies' ARGS for several RMs in one pass, same params and rows).
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
        fn or rgd_method(rm, decoder),
        defaults=params,
        description=f"{decoder} with RM {rm_id}",
        replace=replace,
    )
