"""``--auth kubernetes``'s decisions, over a fake of the two reviews that counts what it is asked."""

from __future__ import annotations

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo
from connectrpc.request import Headers, RequestContext
from flyteidl2.workflow import run_service_pb2 as rs

from taskaction_operator.k8s.reviews import Identity
from taskaction_operator.server.auth import KubernetesAuth, required_access

RUNS = "flyteidl2.workflow.RunService"
ALICE = Identity("alice", groups=("team",))


class FakeReviews:
    """Knows one token, ``t-alice``, whose user may ``get`` and ``list`` (only in ``flyte``)."""

    def __init__(self) -> None:
        self.token_reviews = 0
        self.access_reviews: list[tuple[str, str, str]] = []

    async def identity(self, token: str) -> Identity | None:
        self.token_reviews += 1
        return ALICE if token == "t-alice" else None

    async def allowed(
        self, who: Identity, *, verb: str, namespace: str, subresource: str = ""
    ) -> tuple[bool, str]:
        self.access_reviews.append((verb, namespace, subresource))
        return (who == ALICE and namespace == "flyte" and verb in ("get", "list")), "RBAC: no rule"


def ctx(method: str, authorization: str | None, service: str = RUNS) -> RequestContext[object, object]:
    info = MethodInfo(
        name=method,
        service_name=service,
        input=rs.ListRunsRequest,
        output=rs.ListRunsResponse,
        idempotency_level=IdempotencyLevel.UNKNOWN,
    )
    headers = Headers({"authorization": authorization} if authorization else {})
    return RequestContext(method=info, http_method="POST", request_headers=headers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("service", "method", "access"),
    [
        (RUNS, "GetRunDetails", ("get", "")),
        (RUNS, "ListActions", ("list", "")),
        (RUNS, "WatchActions", ("list", "")),
        (RUNS, "AbortRun", ("delete", "")),
        (RUNS, "CreateRun", ("create", "")),
        (RUNS, "SignalEvent", ("update", "status")),
        ("flyteidl2.workflow.EventsProxyService", "Record", ("update", "status")),
        ("flyteidl2.actions.ActionsService", "Enqueue", ("create", "")),
        ("flyteidl2.actions.ActionsService", "Abort", ("delete", "")),
        ("flyteidl2.actions.ActionsService", "WatchForUpdates", ("list", "")),
        ("flyteidl2.actions.ActionsService", "Update", ("update", "status")),
    ],
)
def test_each_method_needs_the_verb_of_the_table(service: str, method: str, access: tuple[str, str]) -> None:
    assert required_access(service, method) == access


async def test_a_token_and_a_decision_are_reviewed_once_while_cached() -> None:
    reviews = FakeReviews()
    auth = KubernetesAuth(reviews, "flyte")
    for _ in range(3):
        await auth.on_start(ctx("ListRuns", "Bearer t-alice"))
    await auth.on_start(ctx("GetRunDetails", "bearer t-alice"))
    assert reviews.token_reviews == 1
    assert reviews.access_reviews == [("list", "flyte", ""), ("get", "flyte", "")]


async def test_refusals_name_the_user_the_verb_and_the_namespace() -> None:
    auth = KubernetesAuth(FakeReviews(), "flyte")
    with pytest.raises(ConnectError) as info:
        await auth.on_start(ctx("AbortRun", "Bearer t-alice"))
    assert info.value.code is Code.PERMISSION_DENIED
    assert (
        info.value.message == "alice may not delete taskactions.flyte.org in namespace flyte (RBAC: no rule)"
    )
    for header in (None, "Basic dXNlcg==", "Bearer ", "Bearer t-mallory"):
        with pytest.raises(ConnectError) as info:
            await auth.on_start(ctx("ListRuns", header))
        assert info.value.code is Code.UNAUTHENTICATED, header


async def test_a_review_that_fails_answers_unavailable() -> None:
    class Down(FakeReviews):
        async def identity(self, token: str) -> Identity | None:
            raise OSError("connection refused")

    with pytest.raises(ConnectError) as info:
        await KubernetesAuth(Down(), "flyte").on_start(ctx("ListRuns", "Bearer t-alice"))
    assert info.value.code is Code.UNAVAILABLE and "connection refused" in info.value.message
