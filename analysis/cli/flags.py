"""Command-line flags from config dataclasses: one ``--flag`` per field, its help written once.

Every command whose settings are a dataclass (``data summary``: :class:`analysis.cli.data.SummaryOptions`;
``generate``: :class:`analysis.decoding.args.ArgsConfig` and
:class:`analysis.decoding.best_of_n.BestOfNConfig`; ``policy-acc``:
:class:`analysis.evaluation.policy_accuracy.PolicyAccuracyConfig`) gets its flags here, so a help text lives in
the field's ``metadata["help"]`` only. ``metadata["choices"]`` becomes the flag's choices; a field
without a default is a required flag; ``bool`` fields are switches; ``tuple[float, ...]`` and
``tuple[str, ...]`` fields take comma-separated values.

>>> import argparse
>>> from analysis.evaluation.policy_accuracy import PolicyAccuracyConfig
>>> p = argparse.ArgumentParser()
>>> add_dataclass_flags(p, PolicyAccuracyConfig)
>>> cfg = config_from_flags(p.parse_args(["--ws", "0,2", "--n-boot", "50"]), PolicyAccuracyConfig)
>>> cfg.ws, cfg.n_boot, cfg.variants
((0.0, 2.0), 50, ('score', 'policy'))
"""

from __future__ import annotations

import argparse
import dataclasses
import typing


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _strings(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in str(text).split(",") if x.strip())


def _parser_type(tp):
    """The argparse ``type`` of a field annotation (``X | None`` as ``X``)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is tuple:
        return floats if args[0] is float else _strings
    if args and typing.get_origin(tp) is not tuple:  # a union such as str | None
        return _parser_type(args[0])
    return tp


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_dataclass_flags(p, cls, *, skip=(), title: str | None = None, unset: bool = False) -> None:
    """Add one ``--field-name`` flag per field of ``cls`` to ``p`` (in a group named ``title`` if given).

    ``unset``: flags default to None, so the command can tell "not given" from a value (see
    :func:`config_from_flags`); otherwise each flag defaults to its field's default.
    """
    g = p.add_argument_group(title) if title else p
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kw = {"dest": f.name, "help": f.metadata.get("help", "")}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        flag = "--" + f.name.replace("_", "-")
        if hints[f.name] is bool:
            g.add_argument(flag, action="store_true", **kw)
            continue
        kw["type"] = _parser_type(hints[f.name])
        if f.default is dataclasses.MISSING:
            g.add_argument(flag, required=True, **kw)
            continue
        if f.default is not None:
            kw["help"] += f" (default {_shown(f.default)})"
        g.add_argument(flag, default=None if unset else f.default, **kw)


def config_from_flags(args: argparse.Namespace, cls, **over):
    """``cls`` built from the parsed flags: given flags and non-None ``over`` values set fields,
    the rest keep the dataclass defaults (not validated: call ``.validate()`` where it has one)."""
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if getattr(args, f.name, None) is not None
    }
    given.update({k: v for k, v in over.items() if v is not None})
    return cls(**given)


__all__ = ["add_dataclass_flags", "config_from_flags", "floats"]
