"""``version``: this program's version, and with ``-o json|yaml|wide`` the versions it was built
against (flyteidl2, kopf, as installed) and the schema revision it expects in the database."""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

from taskaction_operator import __version__

if TYPE_CHECKING:
    from taskaction_operator.cli.context import Context

#: Installed distributions whose versions ``version -o json`` reports (the API and the framework).
DEPENDENCIES = ("flyteidl2", "kopf")


def versions() -> dict[str, Any]:
    """``version``, each of :data:`DEPENDENCIES`, and ``schemaRevision`` (the newest migration)."""
    from taskaction_operator.repo import head_revision  # alembic: only when asked

    out: dict[str, Any] = {"version": __version__}
    for name in DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["schemaRevision"] = head_revision()
    return out


def version(ctx: Context) -> int:
    fmt = ctx.args.output
    if fmt == "name":
        print(__version__)
    elif fmt == "table":
        print(f"taskaction-operator {__version__}")
    elif fmt == "wide":
        info = versions()
        print(f"taskaction-operator {info.pop('version')}")
        for key, value in info.items():
            print(f"{key} {value or '(not installed)'}")
    else:
        from taskaction_operator.cli.render import dump

        dump(versions(), fmt)
    return 0
