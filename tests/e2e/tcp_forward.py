"""A plain TCP forwarder, run as its own process: ``python -m tests.e2e.tcp_forward LISTEN_HOST
LISTEN_PORT TARGET_HOST TARGET_PORT``. It prints ``ready`` once listening. Used by
:mod:`tests.e2e.netpartition` on both sides of a veth pair, which is where the partition happens."""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, ConnectionError):
        writer.close()


async def main(listen_host: str, listen_port: int, target_host: str, target_port: int) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(serve, listen_host, listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    host, port, thost, tport = sys.argv[1:5]
    asyncio.run(main(host, int(port), thost, int(tport)))
