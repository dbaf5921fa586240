"""Domain types with no I/O: phases and other stored enums, identifiers, CR naming."""

from taskaction_operator.model.identifiers import (
    ROOT_ACTION_NAME,
    ActionId,
    RunId,
    cr_name,
)
from taskaction_operator.model.phases import (
    ActionPhase,
    ActionType,
    CatalogCacheStatus,
    RunSource,
)

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
