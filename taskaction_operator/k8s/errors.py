"""The API server's refusals as our own exceptions, so that nothing above ``k8s/`` compares the
official client's raw status codes. ``KubeOps`` raises these; ``translate`` makes them."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException


class KubeError(Exception):
    """The API server refused a call: its HTTP status, reason and the Status object's message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message or f"{status} {reason}"


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class Conflict(KubeError):
    """409: already exists, or a resourceVersion precondition failed."""


class Gone(KubeError):
    """410: a watch's or list's resourceVersion is too old; relist."""


class Invalid(KubeError):
    """422: the object or patch was refused (validation, a failed JSON patch ``test``)."""


_BY_STATUS: dict[int, type[KubeError]] = {404: NotFound, 409: Conflict, 410: Gone, 422: Invalid}


def translate(exc: ApiException) -> KubeError:
    """The KubeError an ApiException stands for, with the Status message from its body if any."""
    status = int(exc.status or 0)
    message = ""
    try:
        message = str(json.loads(exc.body or "{}").get("message") or "")
    except (TypeError, ValueError, AttributeError):
        message = ""
    return _BY_STATUS.get(status, KubeError)(status, str(exc.reason or ""), message)
