"""SQLite storage: the embedded default. One file, WAL mode, several processes may share it.

Design, measured rather than assumed: the stdlib driver is called directly on the event loop
thread (a point read costs microseconds; a thread hop per call would cost far more). Writes
take the database write lock with ``BEGIN IMMEDIATE`` and, while another process holds it,
wait with ``asyncio.sleep`` instead of blocking the loop. Reads use their own connection, so
they only ever see committed data.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from qzpay._time import from_micros, to_micros
from qzpay.customers.models import Address, Customer
from qzpay.errors import ConflictError, NotFoundError, StorageError
from qzpay.events import Event
from qzpay.storage import migrations
from qzpay.storage.base import CustomerFilter, IdempotentCreate, SyncTask, email_key

_COLUMNS = (
    "id, email, name, phone, address, metadata, provider_ids, created_at, updated_at, deleted_at"
)
_SELECT = f"SELECT {_COLUMNS} FROM customers"
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def _customer(row: Sequence[Any]) -> Customer:
    address = row[4]
    deleted = row[9]
    return Customer.model_construct(
        id=row[0],
        email=row[1],
        name=row[2],
        phone=row[3],
        address=None if address is None else Address.model_construct(**json.loads(address)),
        metadata=json.loads(row[5]),
        provider_customer_ids=json.loads(row[6]),
        created_at=from_micros(row[7]),
        updated_at=from_micros(row[8]),
        deleted_at=None if deleted is None else from_micros(deleted),
    )


_TASK_COLUMNS = (
    "customer_id, operation, customer, committed, idempotency_key, request_fingerprint, "
    "lease_owner, lease_until, attempts, last_error, created_at"
)


def _task(row: Sequence[Any]) -> SyncTask:
    return SyncTask(
        customer_id=row[0],
        operation=row[1],
        customer=Customer.model_validate_json(row[2]),
        committed=bool(row[3]),
        idempotency_key=row[4],
        request_fingerprint=row[5],
        lease_owner=row[6],
        lease_until=from_micros(row[7]),
        attempts=row[8],
        last_error=row[9],
        created_at=from_micros(row[10]),
    )


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _where(filters: CustomerFilter) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if not filters.include_deleted:
        clauses.append("deleted_at IS NULL")
    if filters.email is not None:
        clauses.append("email_key = ?")
        params.append(email_key(filters.email))
    if filters.metadata:
        selects = []
        for key, value in filters.metadata.items():
            selects.append("SELECT customer_id FROM customer_metadata WHERE key = ? AND value = ?")
            params += [key, value]
        clauses.append(f"id IN ({' INTERSECT '.join(selects)})")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _is_busy(exc: sqlite3.Error) -> bool:
    # Extended result codes keep the primary code in their low byte.
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (_SQLITE_BUSY, _SQLITE_LOCKED)


class SQLiteStorage:
    """Storage in one SQLite file. ``synchronous`` is SQLite's durability setting: the default
    FULL syncs every commit to disk; NORMAL is faster and can lose the last commits (never
    corrupt the file) on a power cut."""

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
        self._reader: _Reader | None = None
        self._thread_readers = threading.local()
        self._all_readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
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
                reader = _Reader(_read_connection(self.path))
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
        reader = await self._loop_reader()
        return int(reader._query("PRAGMA user_version")[0][0])

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
            raise StorageError(
                f"database schema version {current} is older than this qzpay needs ({latest}); "
                "run `qzpay db upgrade` or open with migrate=True",
                code="schema_outdated",
            )
        await self._retry_busy(lambda: connection.execute("BEGIN IMMEDIATE"))
        try:
            current = connection.execute("PRAGMA user_version").fetchone()[0]
            if current > latest:
                raise StorageError(
                    f"database schema version {current} is newer than this qzpay knows "
                    f"({latest}); upgrade qzpay",
                    code="schema_too_new",
                )
            for version, statements in scripts:
                if version > current:
                    for statement in statements:
                        connection.execute(statement)
                    connection.execute(f"PRAGMA user_version = {int(version)}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    # -- writes --------------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SQLiteTransaction]:
        await self.open()
        async with self._write_lock:
            writer = self._writer
            assert writer is not None
            await self._retry_busy(lambda: writer.execute("BEGIN IMMEDIATE"))
            try:
                yield _SQLiteTransaction(writer)
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
    async def _loop_reader(self) -> _Reader:
        if self._reader is None:
            await self.open()
        assert self._reader is not None
        return self._reader

    def blocking_reader(self) -> _Reader:
        """A reader for the calling thread (its own connection), for SyncBilling's reads."""
        if self._reader is None:
            raise StorageError("storage is not open", code="storage_closed")
        reader: _Reader | None = getattr(self._thread_readers, "reader", None)
        if reader is None or reader.connection is None:
            reader = _Reader(_read_connection(self.path))
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

    async def list_sync_tasks(self, *, limit: int) -> list[SyncTask]:
        reader = await self._loop_reader()
        rows = reader._query(
            f"SELECT {_TASK_COLUMNS} FROM sync_tasks ORDER BY created_at, customer_id LIMIT ?",
            (limit,),
        )
        return [_task(row) for row in rows]


def _read_connection(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout = 5000")
    connection.execute("PRAGMA query_only = 1")
    # Reads map the file instead of copying pages through read() calls, and keep a larger page
    # cache: random look-ups in a large file stay close to their cost in a small one.
    connection.execute("PRAGMA mmap_size = 67108864")
    connection.execute("PRAGMA cache_size = -16000")
    return connection


class _Reader:
    """Committed-data reads over one connection (each statement is its own read transaction)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection: sqlite3.Connection | None = connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _query(self, sql: str, params: Iterable[object] = ()) -> list[Any]:
        connection = self.connection
        if connection is None:
            raise StorageError("storage is closed", code="storage_closed")
        try:
            return connection.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite error: {exc}") from exc

    def get_customer(self, customer_id: str) -> Customer | None:
        rows = self._query(f"{_SELECT} WHERE id = ?", (customer_id,))
        return _customer(rows[0]) if rows else None

    def find_customers_by_provider_id(
        self, provider_customer_id: str, *, provider: str | None
    ) -> list[Customer]:
        sql = f"{_SELECT} WHERE id IN (SELECT customer_id FROM customer_links WHERE "
        if provider is None:
            rows = self._query(sql + "provider_customer_id = ?)", (provider_customer_id,))
        else:
            rows = self._query(
                sql + "provider = ? AND provider_customer_id = ?)",
                (provider, provider_customer_id),
            )
        return [_customer(row) for row in rows]

    def list_customers(
        self, filters: CustomerFilter, *, limit: int, offset: int
    ) -> tuple[list[Customer], int]:
        where, params = _where(filters)
        rows = self._query(
            f"{_SELECT}{where} ORDER BY id DESC LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        if offset == 0 and len(rows) < limit:
            total = len(rows)
        else:
            total = self._query(f"SELECT count(*) FROM customers{where}", params)[0][0]
        return [_customer(row) for row in rows], total

    def scan_customers(
        self, filters: CustomerFilter, *, before_id: str | None, limit: int
    ) -> list[Customer]:
        where, params = _where(filters)
        if before_id is not None:
            where = f"{where} AND id < ?" if where else " WHERE id < ?"
            params.append(before_id)
        rows = self._query(f"{_SELECT}{where} ORDER BY id DESC LIMIT ?", [*params, limit])
        return [_customer(row) for row in rows]

    def get_event(self, event_id: str) -> Event | None:
        rows = self._query("SELECT payload FROM events WHERE id = ?", (event_id,))
        return Event.model_validate_json(rows[0][0]) if rows else None

    def list_events(self, *, after: str | None, limit: int) -> list[Event]:
        if after is None:
            rows = self._query("SELECT payload FROM events ORDER BY seq LIMIT ?", (limit,))
        else:
            found = self._query("SELECT seq FROM events WHERE id = ?", (after,))
            if not found:
                raise NotFoundError(f"no event {after!r}")
            rows = self._query(
                "SELECT payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (found[0][0], limit),
            )
        return [Event.model_validate_json(row[0]) for row in rows]


class _SQLiteTransaction:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    async def get_customer(self, customer_id: str) -> Customer | None:
        row = self._db.execute(f"{_SELECT} WHERE id = ?", (customer_id,)).fetchone()
        return None if row is None else _customer(row)

    async def find_idempotent_create(self, idempotency_key: str) -> IdempotentCreate | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS}, request_fingerprint FROM customers WHERE idempotency_key = ?",
            (idempotency_key,),
        ).fetchone()
        return None if row is None else IdempotentCreate(_customer(row), row[10])

    def _claim_links(self, customer_id: str, links: dict[str, str]) -> None:
        for provider, pcid in links.items():
            row = self._db.execute(
                "SELECT customer_id FROM customer_links WHERE provider = ? "
                "AND provider_customer_id = ?",
                (provider, pcid),
            ).fetchone()
            if row is not None and row[0] != customer_id:
                raise ConflictError(
                    f"{provider} customer {pcid!r} is already linked to customer {row[0]}",
                    code="provider_id_taken",
                )

    async def insert_customer(
        self,
        customer: Customer,
        *,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
    ) -> None:
        db = self._db
        if (
            idempotency_key is not None
            and db.execute(
                "SELECT 1 FROM customers WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
        ):
            raise ConflictError("idempotency key already used", code="idempotency_key_reused")
        self._claim_links(customer.id, customer.provider_customer_ids)
        db.execute(
            "INSERT INTO customers (id, email, email_key, name, phone, address, metadata, "
            "provider_ids, created_at, updated_at, deleted_at, idempotency_key, "
            "request_fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                customer.id,
                customer.email,
                email_key(customer.email),
                customer.name,
                customer.phone,
                None if customer.address is None else _json(customer.address.model_dump()),
                _json(customer.metadata),
                _json(customer.provider_customer_ids),
                to_micros(customer.created_at),
                to_micros(customer.updated_at),
                None if customer.deleted_at is None else to_micros(customer.deleted_at),
                idempotency_key,
                request_fingerprint,
            ),
        )
        if customer.metadata:
            db.executemany(
                "INSERT INTO customer_metadata (customer_id, key, value) VALUES (?, ?, ?)",
                [(customer.id, k, v) for k, v in customer.metadata.items()],
            )
        if customer.provider_customer_ids:
            db.executemany(
                "INSERT INTO customer_links (provider, provider_customer_id, customer_id) "
                "VALUES (?, ?, ?)",
                [(p, pcid, customer.id) for p, pcid in customer.provider_customer_ids.items()],
            )

    async def update_customer(self, before: Customer, after: Customer) -> None:
        db = self._db
        old_links, new_links = before.provider_customer_ids, after.provider_customer_ids
        added_links = {p: v for p, v in new_links.items() if old_links.get(p) != v}
        self._claim_links(after.id, added_links)
        db.execute(
            "UPDATE customers SET email = ?, email_key = ?, name = ?, phone = ?, address = ?, "
            "metadata = ?, provider_ids = ?, updated_at = ?, deleted_at = ? WHERE id = ?",
            (
                after.email,
                email_key(after.email),
                after.name,
                after.phone,
                None if after.address is None else _json(after.address.model_dump()),
                _json(after.metadata),
                _json(new_links),
                to_micros(after.updated_at),
                None if after.deleted_at is None else to_micros(after.deleted_at),
                after.id,
            ),
        )
        old_meta, new_meta = before.metadata, after.metadata
        removed = [k for k in old_meta if k not in new_meta]
        if removed:
            db.executemany(
                "DELETE FROM customer_metadata WHERE customer_id = ? AND key = ?",
                [(after.id, k) for k in removed],
            )
        changed = [(after.id, k, v) for k, v in new_meta.items() if old_meta.get(k) != v]
        if changed:
            db.executemany(
                "INSERT INTO customer_metadata (customer_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (customer_id, key) DO UPDATE SET value = excluded.value",
                changed,
            )
        dropped = [(p, v) for p, v in old_links.items() if new_links.get(p) != v]
        if dropped:
            db.executemany(
                "DELETE FROM customer_links WHERE provider = ? AND provider_customer_id = ?",
                dropped,
            )
        if added_links:
            db.executemany(
                "INSERT INTO customer_links (provider, provider_customer_id, customer_id) "
                "VALUES (?, ?, ?)",
                [(p, v, after.id) for p, v in added_links.items()],
            )

    async def append_event(self, event: Event) -> None:
        self._db.execute(
            "INSERT INTO events (id, type, customer_id, payload, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                event.id,
                event.type,
                event.data.id,
                event.model_dump_json(),
                to_micros(event.created_at),
            ),
        )

    async def get_sync_task(self, customer_id: str) -> SyncTask | None:
        row = self._db.execute(
            f"SELECT {_TASK_COLUMNS} FROM sync_tasks WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        return None if row is None else _task(row)

    async def find_sync_task_by_key(self, idempotency_key: str) -> SyncTask | None:
        row = self._db.execute(
            f"SELECT {_TASK_COLUMNS} FROM sync_tasks WHERE idempotency_key = ?", (idempotency_key,)
        ).fetchone()
        return None if row is None else _task(row)

    async def put_sync_task(self, task: SyncTask) -> None:
        if task.idempotency_key is not None:
            holder = self._db.execute(
                "SELECT customer_id FROM sync_tasks WHERE idempotency_key = ?",
                (task.idempotency_key,),
            ).fetchone()
            if holder is not None and holder[0] != task.customer_id:
                raise ConflictError("idempotency key already used", code="idempotency_key_reused")
        self._db.execute(
            f"INSERT OR REPLACE INTO sync_tasks ({_TASK_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.customer_id,
                task.operation,
                task.customer.model_dump_json(),
                int(task.committed),
                task.idempotency_key,
                task.request_fingerprint,
                task.lease_owner,
                to_micros(task.lease_until),
                task.attempts,
                task.last_error,
                to_micros(task.created_at),
            ),
        )

    async def delete_sync_task(self, customer_id: str) -> None:
        self._db.execute("DELETE FROM sync_tasks WHERE customer_id = ?", (customer_id,))

    async def claim_sync_tasks(
        self,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        stale_owners: frozenset[str],
        limit: int,
    ) -> list[SyncTask]:
        stale = sorted(stale_owners)
        marks = ", ".join("?" * len(stale))
        stale_clause = f" OR lease_owner IN ({marks})" if stale else ""
        rows = self._db.execute(
            f"SELECT {_TASK_COLUMNS} FROM sync_tasks WHERE lease_until <= ? "
            f"OR lease_owner IS NULL{stale_clause} ORDER BY created_at, customer_id LIMIT ?",
            (to_micros(now), *stale, limit),
        ).fetchall()
        claimed = [replace(_task(row), lease_owner=owner, lease_until=lease_until) for row in rows]
        self._db.executemany(
            "UPDATE sync_tasks SET lease_owner = ?, lease_until = ? WHERE customer_id = ?",
            [(owner, to_micros(lease_until), task.customer_id) for task in claimed],
        )
        return claimed

    async def record_webhook_event(self, provider: str, event_id: str, now: datetime) -> bool:
        cursor = self._db.execute(
            "INSERT INTO webhook_events (provider, event_id, received_at) VALUES (?, ?, ?) "
            "ON CONFLICT (provider, event_id) DO NOTHING",
            (provider, event_id, to_micros(now)),
        )
        return cursor.rowcount == 1
