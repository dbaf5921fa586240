"""Logging for the command line: ``-v`` is what this program does, ``-vv`` everything, tracebacks too.

At ``-v`` the libraries' chatter stays out: Alembic's migration plugin lines (``Context impl
PostgresqlImpl``, ``Will assume transactional DDL``) and kopf's per-handler noise are WARNING-only.
"""

from __future__ import annotations

import logging
import sys
import warnings

#: Libraries whose INFO lines are their own business, not the user's: shown from -vv.
CHATTY = ("alembic", "kopf", "aiohttp", "urllib3", "kubernetes", "hypercorn.access")


def configure(verbose: int) -> None:
    """ERROR only; ``-v`` INFO (this program's), ``-vv`` DEBUG (everything)."""
    level = logging.ERROR if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING if verbose < 2 else logging.DEBUG)
    if verbose <= 0:
        # The local cluster's kubeconfig skips TLS verification; urllib3 would warn on every request.
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
