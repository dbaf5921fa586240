"""What a Connect call answers when it fails, for the suites that call the server."""

from __future__ import annotations

from collections.abc import Awaitable

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

__all__ = ["refused"]


async def refused(call: Awaitable[object], code: Code) -> str:
    """The message of the Connect error ``call`` fails with, which must have ``code``."""
    with pytest.raises(ConnectError) as info:
        await call
    assert info.value.code is code, info.value.message
    return info.value.message
