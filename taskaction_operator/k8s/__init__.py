"""Kubernetes API calls made outside kopf's own patching, via the official client: the only importer
of ``kubernetes``.

The official client is synchronous; every call runs in a worker thread so the event loop never
blocks.
"""

from taskaction_operator.k8s.ops import KubeOps, bearer_token, load_api_client

__all__ = ["KubeOps", "bearer_token", "load_api_client"]
