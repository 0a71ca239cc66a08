"""SQLiteStorage: opening (and migrating) the file, the write lock, and the reads it hands to
its readers."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from qzpay.customers.models import Customer
from qzpay.errors import StorageError
from qzpay.events import Event
from qzpay.storage import migrations
from qzpay.storage.base import CustomerFilter, SyncTask
from qzpay.storage.layout import Page, known_total
from qzpay.storage.sql_reads import CatalogReads, SubscriptionReads
from qzpay.storage.sqlite.catalog import CATALOG
from qzpay.storage.sqlite.reader import Reader, read_connection
from qzpay.storage.sqlite.subscriptions import STATEMENTS
from qzpay.storage.sqlite.transaction import SQLiteTransaction

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def _is_busy(exc: sqlite3.Error) -> bool:
    # Extended result codes keep the primary code in their low byte.
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (_SQLITE_BUSY, _SQLITE_LOCKED)


class SQLiteStorage(CatalogReads, SubscriptionReads):
    """Storage in one SQLite file. ``synchronous`` is SQLite's durability setting: the default
    FULL syncs every commit to disk; NORMAL is faster and can lose the last commits (never
    corrupt the file) on a power cut."""

    catalog = CATALOG
    subscription_statements = STATEMENTS

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        lock_timeout: float = 30.0,
        migrate: bool = True,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.lock_timeout = lock_timeout
        self.migrate = migrate
        self._writer: sqlite3.Connection | None = None
        self._reader: Reader | None = None
        self._thread_readers = threading.local()
        self._all_readers: weakref.WeakSet[Reader] = weakref.WeakSet()
        self._all_readers_lock = threading.Lock()
        self._write_lock = asyncio.Lock()
        self._open_lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        if self._reader is not None:
            return
        async with self._open_lock:
            if self._reader is not None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                writer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            except (OSError, sqlite3.Error) as exc:
                raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from exc
            try:
                writer.execute("PRAGMA busy_timeout = 0")
                await self._retry_busy(lambda: writer.execute("PRAGMA journal_mode = WAL"))
                writer.execute(f"PRAGMA synchronous = {self.synchronous}")
                writer.execute("PRAGMA foreign_keys = ON")
                await self._migrate(writer, apply=self.migrate)
                reader = Reader(read_connection(self.path))
            except BaseException:
                writer.close()
                raise
            self._writer, self._reader = writer, reader

    async def close(self) -> None:
        async with self._write_lock:
            with self._all_readers_lock:
                readers = [self._reader, *self._all_readers]
                self._all_readers.clear()
            for reader in readers:
                if reader is not None:
                    reader.close()
            if self._writer is not None:
                self._writer.close()
            self._reader = self._writer = None

    async def upgrade(self) -> int:
        """Apply pending migrations (safe while other processes do the same); the version."""
        if self._writer is None:
            migrate, self.migrate = self.migrate, True
            try:
                await self.open()
            finally:
                self.migrate = migrate
        else:
            await self._migrate(self._writer, apply=True)
        return await self.schema_version()

    async def schema_version(self) -> int:
        return (await self._loop_reader()).schema_version()

    async def _retry_busy(self, action: Any) -> Any:
        """Run ``action``; while another connection holds the lock, wait without blocking."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.0005
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise StorageError(f"SQLite error: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise StorageError(
                        f"SQLite database {self.path} stayed locked for {self.lock_timeout}s",
                        code="storage_busy",
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)

    async def _migrate(self, connection: sqlite3.Connection, *, apply: bool) -> None:
        scripts = migrations.load("sqlite")
        latest = scripts[-1][0]
        current = connection.execute("PRAGMA user_version").fetchone()[0]
        if current == latest:
            return
        if not apply and current < latest:
            raise migrations.outdated(current, latest)
        await self._retry_busy(lambda: connection.execute("BEGIN IMMEDIATE"))
        try:
            current = connection.execute("PRAGMA user_version").fetchone()[0]
            if current > latest:
                raise migrations.too_new(current, latest)
            for version, statements in migrations.pending(scripts, current):
                for statement in statements:
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {int(version)}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    # -- writes --------------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SQLiteTransaction]:
        await self.open()
        async with self._write_lock:
            writer = self._writer
            assert writer is not None
            await self._retry_busy(lambda: writer.execute("BEGIN IMMEDIATE"))
            try:
                yield SQLiteTransaction(writer)
            except BaseException as exc:
                writer.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"SQLite error: {exc}") from exc
                raise
            try:
                writer.execute("COMMIT")
            except sqlite3.Error as exc:
                if writer.in_transaction:
                    writer.execute("ROLLBACK")
                raise StorageError(f"SQLite commit failed: {exc}") from exc

    # -- reads ---------------------------------------------------------------------------
    async def _loop_reader(self) -> Reader:
        if self._reader is None:
            await self.open()
        assert self._reader is not None
        return self._reader

    async def _rows(self, statement: str, *args: object) -> list[Any]:
        return (await self._loop_reader()).query(statement, args)

    async def _page_rows(self, page: Page, *, limit: int, offset: int) -> tuple[list[Any], int]:
        reader = await self._loop_reader()
        rows = reader.query(page.query, page.params)
        total = known_total(len(rows), limit=limit, offset=offset)
        if total is None:
            total = int(reader.query(page.count, page.count_params)[0][0])
        return rows, total

    def blocking_reader(self) -> Reader:
        """A reader for the calling thread (its own connection), for SyncBilling's reads."""
        if self._reader is None:
            raise StorageError("storage is not open", code="storage_closed")
        reader: Reader | None = getattr(self._thread_readers, "reader", None)
        if reader is None or reader.connection is None:
            reader = Reader(read_connection(self.path))
            self._thread_readers.reader = reader
            with self._all_readers_lock:
                self._all_readers.add(reader)
        return reader

    async def get_customer(self, customer_id: str) -> Customer | None:
        return (await self._loop_reader()).get_customer(customer_id)

    async def find_customers_by_provider_id(
        self, provider_customer_id: str, *, provider: str | None
    ) -> list[Customer]:
        reader = await self._loop_reader()
        return reader.find_customers_by_provider_id(provider_customer_id, provider=provider)

    async def list_customers(
        self, filters: CustomerFilter, *, limit: int, offset: int
    ) -> tuple[list[Customer], int]:
        return (await self._loop_reader()).list_customers(filters, limit=limit, offset=offset)

    async def scan_customers(
        self, filters: CustomerFilter, *, before_id: str | None, limit: int
    ) -> list[Customer]:
        reader = await self._loop_reader()
        return reader.scan_customers(filters, before_id=before_id, limit=limit)

    async def get_event(self, event_id: str) -> Event | None:
        return (await self._loop_reader()).get_event(event_id)

    async def list_events(self, *, after: str | None, limit: int) -> list[Event]:
        return (await self._loop_reader()).list_events(after=after, limit=limit)

    async def list_record_events(self, record_id: str, *, limit: int) -> list[Event]:
        return (await self._loop_reader()).list_record_events(record_id, limit=limit)

    async def list_events_backward(
        self, *, before: str | None, limit: int, event_type: str | None = None
    ) -> list[Event]:
        reader = await self._loop_reader()
        return reader.list_events_backward(before=before, limit=limit, event_type=event_type)

    async def list_sync_tasks(self, *, limit: int) -> list[SyncTask]:
        return (await self._loop_reader()).list_sync_tasks(limit=limit)

    async def find_sync_task_by_link(
        self, provider: str, provider_id: str, *, resource: str = "customer"
    ) -> SyncTask | None:
        reader = await self._loop_reader()
        return reader.find_sync_task_by_link(provider, provider_id, resource=resource)

    async def count_sync_tasks(self) -> int:
        return (await self._loop_reader()).count_sync_tasks()
