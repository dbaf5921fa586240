"""JSON patch (RFC 6902) operations on a TaskAction's finalizers that test only the entries they depend
on, never the resourceVersion: other writers' status and label writes cannot make them fail, and
another writer's finalizer is never lost or removed. Shared by ``KubeOps.add_finalizer`` /
``remove_finalizer`` and the operator's own patch plans (``controller/recording/patch_plan.py``)."""

from __future__ import annotations

from typing import Any


def finalizers_as_read(finalizers: list[str] | None) -> dict[str, Any]:
    """A JSON patch test that the finalizer list is exactly as read (``null``: still absent)."""
    return {
        "op": "test",
        "path": "/metadata/finalizers",
        "value": None if finalizers is None else list(finalizers),
    }


def finalizer_removal_ops(finalizers: list[str], finalizer: str) -> list[dict[str, Any]]:
    """JSON patch ops taking ``finalizer`` (present in ``finalizers``, the list as read) off: a test
    of its entry at its index, then that index removed; another writer's entry is never removed."""
    path = f"/metadata/finalizers/{finalizers.index(finalizer)}"
    return [{"op": "test", "path": path, "value": finalizer}, {"op": "remove", "path": path}]


def finalizer_addition_ops(finalizers: list[str] | None, finalizer: str) -> list[dict[str, Any]]:
    """JSON patch ops putting ``finalizer`` at the end of ``finalizers`` (the list as read, None when
    absent): a test of the list it extends, so an entry written meanwhile is never lost."""
    if finalizers is None:
        return [finalizers_as_read(None), {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}]
    return [
        finalizers_as_read(finalizers),
        {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
    ]
