"""The two errors commands raise to choose their exit code (kept import-light for a fast ``--help``)."""


class UsageError(Exception):
    """Bad input on the command line or in a file: exit code 2, nothing changed."""


class CommandFailed(Exception):
    """The command could not do what was asked (not found, timed out, refused): exit code 1."""
