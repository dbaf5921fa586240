"""kopf registration: importing this package registers every handler. No SQL here."""

from taskaction_operator.handlers import lifecycle, taskactions

__all__ = ["lifecycle", "taskactions"]
