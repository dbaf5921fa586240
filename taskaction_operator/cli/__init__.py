"""``taskaction-operator``: the command line for people and scripts (kubectl conventions).

``main`` is the console-script entry point (``pyproject.toml``) and ``python -m taskaction_operator``.
"""

from taskaction_operator.cli.app import main

__all__ = ["main"]
