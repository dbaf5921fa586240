"""Who a bearer token is (TokenReview) and what it may do to TaskActions (SubjectAccessReview): the
two API calls behind ``serve --auth kubernetes``."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client

from taskaction_operator.crd.names import GROUP, PLURAL
from taskaction_operator.k8s.ops import KubeOps

__all__ = ["Identity", "Reviews"]


@dataclass(frozen=True, slots=True)
class Identity:
    """The user a TokenReview found behind a token, as a SubjectAccessReview wants it back."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


class Reviews:
    """TokenReview and SubjectAccessReview through the official client (each call bounded, in a
    worker thread, its failure a :class:`~taskaction_operator.k8s.errors.KubeError`)."""

    def __init__(self, kube: KubeOps) -> None:
        self._authn = client.AuthenticationV1Api(kube.api_client)
        self._authz = client.AuthorizationV1Api(kube.api_client)

    async def identity(self, token: str) -> Identity | None:
        """The token's user, or None when the API server does not authenticate it."""
        body = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
        review = await KubeOps._call(self._authn.create_token_review, body)
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            return None
        user = status.user
        extra = tuple(sorted((k, tuple(v)) for k, v in (user.extra or {}).items()))
        return Identity(user.username or "", user.uid or "", tuple(user.groups or ()), extra)

    async def allowed(
        self, who: Identity, *, verb: str, namespace: str, subresource: str = ""
    ) -> tuple[bool, str]:
        """Whether ``who`` may ``verb`` TaskActions (``subresource``) in ``namespace``, and the
        authorizer's reason."""
        attributes = client.V1ResourceAttributes(
            namespace=namespace, verb=verb, group=GROUP, resource=PLURAL, subresource=subresource or None
        )
        spec = client.V1SubjectAccessReviewSpec(
            user=who.username,
            uid=who.uid or None,
            groups=list(who.groups) or None,
            extra={k: list(v) for k, v in who.extra} or None,
            resource_attributes=attributes,
        )
        review = await KubeOps._call(
            self._authz.create_subject_access_review, client.V1SubjectAccessReview(spec=spec)
        )
        status = review.status
        return bool(status is not None and status.allowed), str((status and status.reason) or "")
