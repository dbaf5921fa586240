"""Domain types with no I/O: phases and other stored enums, identifiers, CR naming.

The names are loaded on first use (PEP 562): the phases are flyteidl2's enums and import protobuf,
which ``model.identifiers`` and ``model.times`` (and so a command line's usage error) never need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskaction_operator.model.identifiers import ROOT_ACTION_NAME, ActionId, RunId, cr_name
    from taskaction_operator.model.phases import ActionPhase, ActionType, CatalogCacheStatus, RunSource

_HOMES = {
    "ROOT_ACTION_NAME": "identifiers",
    "ActionId": "identifiers",
    "RunId": "identifiers",
    "cr_name": "identifiers",
    "ActionPhase": "phases",
    "ActionType": "phases",
    "CatalogCacheStatus": "phases",
    "RunSource": "phases",
}

__all__ = [
    "ROOT_ACTION_NAME",
    "ActionId",
    "ActionPhase",
    "ActionType",
    "CatalogCacheStatus",
    "RunId",
    "RunSource",
    "cr_name",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
