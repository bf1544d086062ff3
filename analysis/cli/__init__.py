"""Command line package: ``python -m analysis <command>`` / the ``analysis`` console script.

One module per command group, each with ``add_commands(subparsers)``:

- :mod:`analysis.cli.main`: the parser, ``main()``, shared ``--preset/--config/--set`` arguments
- :mod:`analysis.cli.info`: ``info``
- :mod:`analysis.cli.report`: ``report``
- :mod:`analysis.cli.data`: ``data summary``
- :mod:`analysis.cli.rm`: ``rm methods|train|eval``
- :mod:`analysis.cli.decode`: ``generate``, ``policy-acc``
- :mod:`analysis.cli.eval`: ``evaluate``
- :mod:`analysis.cli.sweep`: ``sweep`` (the task graph of :mod:`analysis.sweep`)
"""

from analysis.cli.main import add_config_arguments, build_parser, config_from_args, main

__all__ = ["add_config_arguments", "build_parser", "config_from_args", "main"]
