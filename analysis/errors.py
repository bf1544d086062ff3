"""One error family for user mistakes (bad settings, bad input data, a model that cannot be loaded).

Every error a user can fix by changing a command line, a config file, an input file or a model
name derives from :class:`UserError` (a ``ValueError``, so ``except ValueError`` still works).
The CLI prints any ``UserError`` as one line ``error: <message>`` with exit status 2 and no
traceback (``-v`` shows it). Anything else is a bug and keeps its traceback.

The subclasses stay importable where they were first defined: ``analysis.config.parse.ConfigError``,
``analysis.data.records.DataError``, ``analysis.models.loading.ModelError`` are these classes.

>>> issubclass(ConfigError, UserError) and issubclass(UserError, ValueError)
True
>>> str(ConfigError("config key 'k': must be >= 1, got 0"))
"config key 'k': must be >= 1, got 0"

Every registry and choice check looks names up with :func:`lookup`, so a typo always reads the same
way, ``unknown <what> 'x'; did you mean 'y'? (choices: ...)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from typing import Any


class UserError(ValueError):
    """A mistake the user can fix (printed by the CLI as one ``error:`` line, exit status 2)."""


class ConfigError(UserError):
    """A bad configuration value or key (names the key)."""


class ModelError(UserError):
    """A model could not be found or loaded (names the model)."""


MAX_SHOWN = 20  # choices listed in a message (a config has ~90 keys)


def unknown_message(what: str, name: Any, choices: Collection) -> str:
    """``unknown <what> 'name'; did you mean 'y'? (choices: a, b)`` (the hint only when one is close).

    >>> unknown_message("reward method", "lor", ["lore", "pal"])
    "unknown reward method 'lor'; did you mean 'lore'? (choices: lore, pal)"
    >>> unknown_message("task", "haiku", ["news_headline"])
    "unknown task 'haiku' (choices: news_headline)"
    """
    options = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name), options, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    shown = ", ".join(options[:MAX_SHOWN]) + (
        f", ... ({len(options)} in all)" if len(options) > MAX_SHOWN else ""
    )
    return f"unknown {what} '{name}'{hint} (choices: {shown})"


def lookup(
    registry: Mapping | Collection, name: Any, what: str, error: type[Exception] = ConfigError, **error_kw
) -> Any:
    """``registry[name]`` for a mapping (``name`` itself for a collection of choices); else raise.

    ``error`` is the exception class raised (a :class:`UserError` subclass such as
    :class:`ConfigError` or ``DataError``), called with :func:`unknown_message` and ``error_kw``
    (e.g. ``record=``, ``field=`` of a ``DataError``); ``prefix`` (in ``error_kw``) goes in front
    of the message, e.g. ``"config key 'task': "``.

    >>> lookup({"lore": 1, "pal": 2}, "pal", "reward method")
    2
    >>> lookup(("greedy", "sample"), "sampel", "mode")
    Traceback (most recent call last):
    ...
    analysis.errors.ConfigError: unknown mode 'sampel'; did you mean 'sample'? (choices: greedy, sample)
    """
    try:
        found = name in registry
    except TypeError:  # an unhashable name (a list where a name belongs) is unknown too
        found = False
    if found:
        return registry[name] if isinstance(registry, Mapping) else name
    prefix = error_kw.pop("prefix", "")
    raise error(prefix + unknown_message(what, name, list(registry)), **error_kw)


__all__ = ["ConfigError", "ModelError", "UserError", "lookup", "unknown_message"]
