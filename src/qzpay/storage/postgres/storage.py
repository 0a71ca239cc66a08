"""PostgresStorage: opening (and migrating) the database, and the reads outside a transaction.

Reads are retried once on a fresh connection when theirs was lost (a read is safe to repeat).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from qzpay.customers.models import Customer
from qzpay.errors import NotFoundError, StorageError
from qzpay.events import Event, decode_event
from qzpay.storage import migrations
from qzpay.storage.base import CustomerFilter, SyncTask
from qzpay.storage.layout import Page, known_total
from qzpay.storage.postgres import sql
from qzpay.storage.postgres.blocking import BlockingReader
from qzpay.storage.postgres.catalog import CATALOG
from qzpay.storage.postgres.connections import (
    CONNECTION_ERRORS,
    DRIVER_ERRORS,
    Connection,
    Connections,
    GivenPool,
    OwnConnections,
    driver_error,
    unavailable,
)
from qzpay.storage.postgres.recent import RECENT_VERSIONS, RecentVersions
from qzpay.storage.postgres.sql import customer_from_row, task_from_row
from qzpay.storage.postgres.subscriptions import STATEMENTS
from qzpay.storage.postgres.transaction import PostgresTransaction
from qzpay.storage.rows import Row
from qzpay.storage.sql_reads import CatalogReads, SubscriptionReads

T = TypeVar("T")


class PostgresStorage(CatalogReads, SubscriptionReads):
    """Storage in a PostgreSQL database (13 or newer), through asyncpg.

    ``dsn_or_pool`` is a ``postgresql://`` DSN, whose connections this storage opens (at most
    ``max_size``, ``min_size`` of them at open) and closes, or an ``asyncpg.Pool`` to use as it
    is and leave open on ``close()``. ``recent_versions``: how many customers this storage
    recently created or changed to remember with their row version, so updating or deleting one
    of them again is one round trip instead of two (0: none; see qzpay.storage.postgres.recent).
    """

    catalog = CATALOG
    subscription_statements = STATEMENTS

    def __init__(
        self,
        dsn_or_pool: str | asyncpg.Pool[asyncpg.Record],
        *,
        migrate: bool = True,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        recent_versions: int = RECENT_VERSIONS,
    ) -> None:
        if isinstance(dsn_or_pool, asyncpg.Pool):
            self.dsn: str | None = None
            self._given: GivenPool | None = GivenPool(dsn_or_pool)
        elif isinstance(dsn_or_pool, str):
            self.dsn = dsn_or_pool
            self._given = None
        else:
            raise TypeError("dsn_or_pool must be a postgresql:// DSN or an asyncpg.Pool")
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError("need 0 <= min_size <= max_size and max_size >= 1")
        self.migrate = migrate
        self.min_size = min_size
        self.max_size = max_size
        self.connect_timeout = connect_timeout
        self._connections: Connections | None = None
        self._blocking: BlockingReader | None = None
        self._open_lock = asyncio.Lock()
        self.recent_versions = recent_versions
        self._recent = RecentVersions(recent_versions)

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        if self._connections is None:
            await self._open(apply=self.migrate)

    async def _opened(self) -> Connections:
        if self._connections is not None:
            return self._connections
        return await self._open(apply=self.migrate)

    async def _open(self, *, apply: bool) -> Connections:
        async with self._open_lock:
            if self._connections is not None:
                if apply:
                    await self._migrate(self._connections, apply=True)
                return self._connections
            connections: Connections
            if self._given is not None:
                connections = self._given
            else:
                assert self.dsn is not None
                connections = OwnConnections(
                    self.dsn, max_size=self.max_size, connect_timeout=self.connect_timeout
                )
            try:
                await self._migrate(connections, apply=apply)
                await self._warm(connections)
            except BaseException:
                await connections.close()
                raise
            self._connections = connections
            return connections

    async def _warm(self, connections: Connections) -> None:
        """Open ``min_size`` connections now rather than on first need."""
        if self._given is not None or self.min_size < 2:
            return  # the migration check left one open
        opened: list[Connection] = []
        try:
            # Holding them all at once: the first is the one the migration check left idle.
            for _ in range(self.min_size):
                opened.append(await connections.acquire())
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, "connect to PostgreSQL") from exc
        finally:
            for connection in opened:
                await connections.release(connection, reuse=True)

    def blocking_reader(self) -> BlockingReader | None:
        """psycopg reads on the calling thread (SyncBilling); None for a caller's pool, or
        when psycopg is not installed (then SyncBilling reads through its loop thread)."""
        if self.dsn is None or self._connections is None:
            return None
        if self._blocking is None:
            try:
                import psycopg  # noqa: F401
            except ImportError:
                return None
            self._blocking = BlockingReader(self.dsn, connect_timeout=self.connect_timeout)
        return self._blocking

    async def close(self) -> None:
        if self._blocking is not None:
            blocking, self._blocking = self._blocking, None
            await asyncio.to_thread(blocking.close)
        connections, self._connections = self._connections, None
        if connections is not None:
            await connections.close()

    async def upgrade(self) -> int:
        """Apply pending migrations (safe while other processes do the same); the version."""
        await self._open(apply=True)
        return await self.schema_version()

    async def schema_version(self) -> int:
        return await self._read(_schema_version)

    async def _migrate(self, connections: Connections, *, apply: bool) -> None:
        scripts = migrations.load("postgres")
        latest = scripts[-1][0]
        try:
            connection = await connections.acquire()
        except DRIVER_ERRORS as exc:
            raise unavailable(exc, "connect to PostgreSQL") from exc
        reuse = False
        try:
            await self._migrate_on(connection, scripts, latest, apply=apply)
            reuse = True
        except StorageError:
            reuse = True
            raise
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc
        finally:
            await connections.release(connection, reuse=reuse)

    @staticmethod
    async def _migrate_on(
        connection: Connection,
        scripts: list[tuple[int, list[str]]],
        latest: int,
        *,
        apply: bool,
    ) -> None:
        current = await _schema_version(connection)
        if current == latest:
            return
        if current < latest and not apply:
            raise migrations.outdated(current, latest)
        async with connection.transaction():
            # Upgrades from several processes take turns; the later ones find no work.
            await connection.execute("SELECT pg_advisory_xact_lock($1)", sql.MIGRATION_LOCK)
            await connection.execute(sql.VERSION_TABLE)
            current = await _schema_version(connection)
            if current > latest:
                raise migrations.too_new(current, latest)
            for version, statements in migrations.pending(scripts, current):
                for statement in statements:
                    await connection.execute(statement)
                await connection.execute(
                    "INSERT INTO qzpay_schema_version (version) VALUES ($1)", version
                )

    # -- writes --------------------------------------------------------------------------
    def transaction(self) -> PostgresTransaction:
        return PostgresTransaction(self._opened, recent=self._recent)

    def optimistic_transaction(self) -> PostgresTransaction:
        """A transaction whose customer reads take no lock and whose customer update is checked
        at commit (see qzpay.storage.base.SupportsOptimisticWrites): an update or delete is
        two round trips, a read and one statement, instead of four."""
        return PostgresTransaction(self._opened, optimistic=True, recent=self._recent)

    # -- reads ---------------------------------------------------------------------------
    async def _read(self, query: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``query``, and once more on a new connection if its connection was lost (a read
        is safe to repeat). A failure to connect at all is not retried."""
        connections = self._connections
        if connections is None:
            connections = await self._opened()
        lost: BaseException | None = None
        for _ in range(2):
            try:
                connection = await connections.acquire()
            except DRIVER_ERRORS as exc:
                raise unavailable(exc, "connect to PostgreSQL") from lost or exc
            try:
                result = await query(connection)
            except CONNECTION_ERRORS as exc:
                await connections.release(connection, reuse=False)
                if lost is not None:
                    raise driver_error(exc) from lost
                lost = exc
                await connections.expire()
                continue
            except DRIVER_ERRORS as exc:  # the server refused the query; the connection is fine
                await connections.release(connection, reuse=True)
                raise driver_error(exc) from exc
            except BaseException:
                await connections.release(connection, reuse=False)
                raise
            await connections.release(connection, reuse=True)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _rows(self, statement: str, *args: object) -> list[asyncpg.Record]:
        return await self._read(lambda c: c.fetch(statement, *args))

    async def _page_rows(self, page: Page, *, limit: int, offset: int) -> tuple[Sequence[Row], int]:
        async def query(connection: Connection) -> tuple[list[asyncpg.Record], int]:
            rows = await connection.fetch(page.query, *page.params)
            total = known_total(len(rows), limit=limit, offset=offset)
            if total is None:  # on the same connection: one acquire for both
                total = int(await connection.fetchval(page.count, *page.count_params))
            return rows, total

        return await self._read(query)

    async def get_customer(self, customer_id: str) -> Customer | None:
        # Not remembered (qzpay.storage.postgres.recent): that costs a get ~5 % (measured), and
        # gets far outnumber updates.
        row = await self._read(lambda c: c.fetchrow(sql.GET, customer_id))
        return None if row is None else customer_from_row(row)

    async def find_customers_by_provider_id(
        self, provider_customer_id: str, *, provider: str | None
    ) -> list[Customer]:
        query, params = sql.provider_query(provider_customer_id, provider)
        rows = await self._read(lambda c: c.fetch(query, *params))
        return [customer_from_row(row) for row in rows]

    async def list_customers(
        self, filters: CustomerFilter, *, limit: int, offset: int
    ) -> tuple[list[Customer], int]:
        page, params = sql.list_query(filters, limit=limit, offset=offset)

        async def query(connection: Connection) -> tuple[list[asyncpg.Record], int]:
            rows = await connection.fetch(page, *params)
            total = known_total(len(rows), limit=limit, offset=offset)
            if total is not None:
                return rows, total  # the last page: no count needed
            count, count_params = sql.count_query(filters)
            return rows, int(await connection.fetchval(count, *count_params))

        rows, total = await self._read(query)
        return [customer_from_row(row) for row in rows], total

    async def scan_customers(
        self, filters: CustomerFilter, *, before_id: str | None, limit: int
    ) -> list[Customer]:
        query, params = sql.scan_query(filters, before_id=before_id, limit=limit)
        rows = await self._read(lambda c: c.fetch(query, *params))
        return [customer_from_row(row) for row in rows]

    # An event's data decodes as the model of the resource its type names (the type column).
    async def get_event(self, event_id: str) -> Event[Any] | None:
        row = await self._read(lambda c: c.fetchrow(sql.GET_EVENT, event_id))
        return None if row is None else decode_event(row[1], row[0])

    async def list_events(self, *, after: str | None, limit: int) -> list[Event[Any]]:
        async def query(connection: Connection) -> list[asyncpg.Record] | None:
            if after is None:
                return await connection.fetch(sql.EVENTS_FIRST, limit)
            rows = await connection.fetch(sql.EVENTS_AFTER, after, limit)
            if not rows and await connection.fetchval(sql.EVENT_EXISTS, after) is None:
                return None
            return rows

        return await self._events(query, after)

    async def list_record_events(self, record_id: str, *, limit: int) -> list[Event[Any]]:
        return await self._events(lambda c: c.fetch(sql.RECORD_EVENTS, record_id, max(0, limit)))

    async def list_events_backward(
        self, *, before: str | None, limit: int, event_type: str | None = None
    ) -> list[Event[Any]]:
        query, params = sql.backward_query(before=before, limit=limit, event_type=event_type)

        async def read(connection: Connection) -> list[asyncpg.Record] | None:
            rows = await connection.fetch(query, *params)
            missing = not rows and before is not None
            if missing and await connection.fetchval(sql.EVENT_EXISTS, before) is None:
                return None
            return rows

        return await self._events(read, before)

    async def _events(
        self,
        read: Callable[[Connection], Awaitable[list[asyncpg.Record] | None]],
        event_id: str | None = None,
    ) -> list[Event[Any]]:
        """The events of the rows ``read`` finds (type, payload), decoded by their type;
        NotFoundError when it finds none because the event ``event_id`` is unknown (None)."""
        rows = await self._read(read)
        if rows is None:
            raise NotFoundError(f"no event {event_id!r}")
        return [decode_event(row[1], row[0]) for row in rows]

    async def list_sync_tasks(self, *, limit: int) -> list[SyncTask]:
        rows = await self._read(lambda c: c.fetch(sql.LIST_TASKS, limit))
        return [task_from_row(row) for row in rows]

    async def find_sync_task_by_link(
        self, provider: str, provider_id: str, *, resource: str = "customer"
    ) -> SyncTask | None:
        args = (provider, provider_id, resource)
        row = await self._read(lambda c: c.fetchrow(sql.TASK_BY_LINK, *args))
        return None if row is None else task_from_row(row)

    async def count_sync_tasks(self) -> int:
        return int(await self._read(lambda c: c.fetchval(sql.COUNT_TASKS)))


async def _schema_version(connection: Connection) -> int:
    if await connection.fetchval("SELECT to_regclass('qzpay_schema_version')") is None:
        return 0
    return int(
        await connection.fetchval("SELECT coalesce(max(version), 0) FROM qzpay_schema_version")
    )
