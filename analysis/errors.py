"""One error family for user mistakes (bad settings, bad input data, a model that cannot be loaded).

Every error a user can fix by changing a command line, a config file, an input file or a model
name derives from :class:`UserError` (a ``ValueError``, so ``except ValueError`` still works).
The CLI prints any ``UserError`` as one line ``error: <message>`` with exit status 2 and no
traceback (``-v`` shows it). Anything else is a bug and keeps its traceback.

The subclasses stay importable where they were first defined: ``analysis.config.ConfigError``,
``analysis.data.records.DataError``, ``analysis.models.ModelError`` are these classes.

>>> issubclass(ConfigError, UserError) and issubclass(UserError, ValueError)
True
>>> str(ConfigError("config key 'k': must be >= 1, got 0"))
"config key 'k': must be >= 1, got 0"
"""

from __future__ import annotations


class UserError(ValueError):
    """A mistake the user can fix (printed by the CLI as one ``error:`` line, exit status 2)."""


class ConfigError(UserError):
    """A bad configuration value or key (names the key)."""


class ModelError(UserError):
    """A model could not be found or loaded (names the model)."""


__all__ = ["ConfigError", "ModelError", "UserError"]
