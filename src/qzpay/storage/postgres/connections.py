"""Where the PostgreSQL backend's connections come from, and which driver errors mean the
connection is gone (then a read is retried, and a write only where it cannot have committed)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from qzpay.errors import StorageError

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

# Errors after which the connection is gone; everything else from the driver is a StorageError.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, and TimeoutError (connect timeout)
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    # A connection the server terminated while it sat idle can surface as "cannot switch to
    # state ...; another operation is in progress" on its next use: it is lost all the same.
    asyncpg.InternalClientError,
)
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    asyncpg.PostgresError,
    asyncpg.InternalClientError,
)
RESEND_ERRORS: tuple[type[BaseException], ...] = (StorageError, *DRIVER_ERRORS)


def unavailable(exc: BaseException, doing: str = "reach PostgreSQL") -> StorageError:
    return StorageError(f"could not {doing}: {exc!r}", code="storage_unavailable")


def driver_error(exc: BaseException) -> StorageError:
    if isinstance(exc, CONNECTION_ERRORS):
        return unavailable(exc, "complete the operation, the connection was lost")
    return StorageError(f"PostgreSQL error: {exc!r}")


class OwnConnections:
    """The connections a storage opened itself: idle ones on a stack, at most ``max_size`` out.

    Measured: an asyncpg Pool acquire and release costs about 60 µs (a proxy object, a shielded
    task), as much as a whole primary-key read; this costs a few. A connection that saw
    anything but success or a server error is closed rather than reused.
    """

    def __init__(self, dsn: str, *, max_size: int, connect_timeout: float) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._idle: list[tuple[Connection, int]] = []
        self._out: dict[Connection, int] = {}
        self._slots = asyncio.Semaphore(max_size)
        self._generation = 0
        self._closed = False

    async def acquire(self) -> Connection:
        if self._closed:
            raise StorageError("storage is closed", code="storage_closed")
        await self._slots.acquire()
        try:
            while self._idle:
                connection, generation = self._idle.pop()
                if generation == self._generation and not connection.is_closed():
                    self._out[connection] = generation
                    return connection
                connection.terminate()
            connection = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
        except BaseException:
            self._slots.release()
            raise
        self._out[connection] = self._generation
        return connection

    async def release(self, connection: Connection, *, reuse: bool) -> None:
        generation = self._out.pop(connection, None)
        if (
            reuse
            and generation == self._generation
            and not self._closed
            and not connection.is_closed()
            and not connection.is_in_transaction()
        ):
            self._idle.append((connection, generation))
        else:
            connection.terminate()
        self._slots.release()

    async def expire(self) -> None:
        """Replace every connection (after one was lost, the server may have restarted)."""
        self._generation += 1
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.terminate()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(c.close(timeout=5) for c, _ in idle), return_exceptions=True)


class GivenPool:
    """A caller's asyncpg Pool, used as it is (its reset runs on every release)."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self.pool = pool

    async def acquire(self) -> Connection:
        return await self.pool.acquire()

    async def release(self, connection: Connection, *, reuse: bool) -> None:
        assert isinstance(connection, PoolConnectionProxy)
        if not reuse:
            connection.terminate()
        # A failed release means the pool dropped the connection, which is what we want.
        with contextlib.suppress(*DRIVER_ERRORS):
            await self.pool.release(connection)

    async def expire(self) -> None:
        await self.pool.expire_connections()

    async def close(self) -> None:
        return None  # the caller's pool stays open


Connections: TypeAlias = "OwnConnections | GivenPool"
