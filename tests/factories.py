"""TaskAction bodies for unit tests, built in one place: a watch event's body as the API server sends
it (metadata, spec, status), with the identity every test shares unless it says otherwise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def taskaction_body(
    action: str = "a1",
    parent: str | None = "a0",
    *,
    run: str = "r1",
    project: str = "p",
    domain: str = "d",
    namespace: str = "ns",
    conditions: Sequence[Mapping[str, Any]] = (),
    status: Mapping[str, Any] | None = None,
    spec: Mapping[str, Any] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """A TaskAction body named ``<run>-<action>``; ``parent=None`` leaves ``parentActionName`` out.

    ``status`` defaults to ``{"attempts": 1}`` beside the conditions; ``spec`` and ``metadata`` add to
    (or override) the identity fields."""
    body_spec: dict[str, Any] = {"project": project, "domain": domain, "runName": run, "actionName": action}
    if parent:
        body_spec["parentActionName"] = parent
    body_spec.update(spec or {})
    return {
        "metadata": {"name": f"{run}-{action}", "namespace": namespace, **metadata},
        "spec": body_spec,
        "status": {"conditions": list(conditions), **({"attempts": 1} if status is None else status)},
    }
