"""Persistence of Flyte v2 TaskAction records in PostgreSQL, with Flyte's exact schema.

What the rest of the operator uses: :class:`ActionRepo` (upstream's ActionRepo in asyncio Python,
plus the batched :meth:`ActionRepo.record_batch` and working LISTEN/NOTIFY watches), the records it
reads and writes (:class:`Action`, :class:`ActionEvent`, :class:`PhaseUpdate`), the error hierarchy
with :func:`classify_db_error`, and :func:`upgrade` to migrate the schema at start-up.
This package knows nothing of Kubernetes or kopf.
"""

from taskaction_operator.repo.action_repo import ActionRepo
from taskaction_operator.repo.errors import (
    AlreadyFinishedError,
    InvalidArgumentError,
    NotFoundError,
    PermanentRepoError,
    RepoError,
    TemporaryRepoError,
    classify_db_error,
)
from taskaction_operator.repo.listing import (
    KEYSET_SORT,
    ActionPage,
    Filter,
    FilterOp,
    ListActionsRequest,
    SortBy,
    TaskScope,
    TriggerScope,
)
from taskaction_operator.repo.migrate import Upgraded, head_revision, upgrade, upgrade_async
from taskaction_operator.repo.models import Action, ActionEvent, PhaseUpdate
from taskaction_operator.repo.notify import Subscription, Watch
from taskaction_operator.repo.retention import PruneResult
from taskaction_operator.repo.writer import RepoStats

__all__ = [
    "KEYSET_SORT",
    "Action",
    "ActionEvent",
    "ActionPage",
    "ActionRepo",
    "AlreadyFinishedError",
    "Filter",
    "FilterOp",
    "InvalidArgumentError",
    "ListActionsRequest",
    "NotFoundError",
    "PermanentRepoError",
    "PhaseUpdate",
    "PruneResult",
    "RepoError",
    "RepoStats",
    "SortBy",
    "Subscription",
    "TaskScope",
    "TemporaryRepoError",
    "TriggerScope",
    "Upgraded",
    "Watch",
    "classify_db_error",
    "head_revision",
    "upgrade",
    "upgrade_async",
]
