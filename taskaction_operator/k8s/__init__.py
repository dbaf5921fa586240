"""Kubernetes API calls the services make outside kopf's own patching, via the official client.

The official client is synchronous; every call runs in a worker thread so the event loop never
blocks.
"""

from taskaction_operator.k8s.ops import GROUP, PLURAL, VERSION, KubeOps, load_api_client

__all__ = ["GROUP", "PLURAL", "VERSION", "KubeOps", "load_api_client"]
