"""A loopback TCP proxy in front of PostgreSQL, to cut connections as a server restart does.

``cut()`` closes every connection (what clients see when the server restarts), ``down()``
also refuses new ones for the duration of a ``with`` block (a server that is not back yet), and
``drop_reply_to(marker)`` forwards the next client message containing ``marker`` to the server,
then closes that client's connection before the answer arrives: the request ran, the client
cannot know.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

UPSTREAM = ("127.0.0.1", 5432)


class TcpProxy:
    def __init__(self, upstream: tuple[str, int] = UPSTREAM) -> None:
        self.upstream = upstream
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._drop_marker: bytes | None = None
        self.dropped = 0

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        await self._stop_listening()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    @contextlib.asynccontextmanager
    async def down(self) -> AsyncIterator[None]:
        await self._stop_listening()
        self.cut()
        try:
            yield
        finally:
            await self.start()

    def drop_reply_to(self, marker: bytes) -> None:
        self._drop_marker = marker

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        dropped = asyncio.Event()

        async def to_server() -> None:
            while chunk := await reader.read(65536):
                if self._drop_marker is not None and self._drop_marker in chunk:
                    self._drop_marker = None
                    self.dropped += 1
                    dropped.set()
                    writer.transport.abort()
                    up_writer.write(chunk)
                    await up_writer.drain()
                    return
                up_writer.write(chunk)
                await up_writer.drain()

        async def to_client() -> None:
            while chunk := await up_reader.read(65536):
                if dropped.is_set():
                    return  # the server answered a request whose client is gone: it ran
                writer.write(chunk)
                await writer.drain()

        try:
            pumps = [asyncio.ensure_future(to_server()), asyncio.ensure_future(to_client())]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            if dropped.is_set():
                await asyncio.wait([pumps[1]], timeout=5)  # until the server has answered
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for end in (writer, up_writer):
                self._writers.discard(end)
                end.transport.abort()
            self._tasks.discard(task)
