"""PostgreSQL storage (asyncpg): for several application processes sharing one database.

Design, measured rather than assumed: every operation is as few round trips as it can be.
Connections come from a small stack of our own rather than an asyncpg Pool (whose acquire and
release cost as much as a primary-key read, plus a reset round trip); asyncpg prepares and
caches each statement per connection; a customer is one row (metadata, address and provider
ids are JSONB copies), so a read is one query. Writes that cannot conflict are kept until the
transaction next reads or commits, then sent as one statement; a transaction that only wrote
such writes commits them as one statement without BEGIN, so a create costs one round trip
instead of four (BEGIN, two INSERTs, COMMIT). Writes that can raise a ConflictError are sent
at once, so the call raises it.

Connection loss: reads are retried once on a fresh connection. A write is retried only where it
cannot have committed (connecting, BEGIN), or where re-sending it is harmless (the one-statement
commit, re-sent with ON CONFLICT DO NOTHING on ids chosen by the client). A lost COMMIT is never
retried; it raises StorageError.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import re
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from qzpay.customers.models import Address, Customer
from qzpay.errors import ConflictError, NotFoundError, StorageError
from qzpay.events import Event
from qzpay.storage import migrations
from qzpay.storage.base import CustomerFilter, IdempotentCreate, SyncTask, email_key

_Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
T = TypeVar("T")

_COLUMNS = (
    "id, email, name, phone, address, metadata, provider_ids, created_at, updated_at, deleted_at"
)
_GET = f"SELECT {_COLUMNS} FROM customers WHERE id = $1"
_GET_FOR_UPDATE = f"{_GET} FOR UPDATE"
_GET_IDEMPOTENT = (
    f"SELECT {_COLUMNS}, request_fingerprint FROM customers WHERE idempotency_key = $1"
)
_BY_PROVIDER_ID = (
    "SELECT "
    + ", ".join(f"c.{name.strip()}" for name in _COLUMNS.split(","))
    + " FROM customer_links AS l JOIN customers AS c ON c.id = l.customer_id"
    " WHERE l.provider_customer_id = $1"
)
_BY_PROVIDER = f"{_BY_PROVIDER_ID} AND l.provider = $2"

# A write is one or more statements over the same arguments. Each part carries what makes
# sending it again a no-op once it has committed: a clause to append ("" if it is one already),
# or None if it has none (see _compose).
_Part: TypeAlias = tuple[str, str | None]
_INSERT_CUSTOMER: _Part = (
    "INSERT INTO customers (id, email, email_key, name, phone, address, metadata, provider_ids, "
    "created_at, updated_at, deleted_at, idempotency_key, request_fingerprint) "
    "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13)",
    " ON CONFLICT (id) DO NOTHING",
)
_INSERT_METADATA: _Part = (
    "INSERT INTO customer_metadata (customer_id, key, value) "
    "SELECT $1::text, key, value FROM jsonb_each_text($7::jsonb)",
    " ON CONFLICT (customer_id, key) DO NOTHING",
)
_INSERT_LINKS: _Part = (
    "INSERT INTO customer_links (provider, provider_customer_id, customer_id) "
    "SELECT key, value, $1::text FROM jsonb_each_text($8::jsonb)",
    " ON CONFLICT (provider, provider_customer_id) DO NOTHING",
)
_INSERT_EVENT: _Part = (
    "INSERT INTO events (id, type, customer_id, payload, created_at) "
    "VALUES ($1, $2, $3, $4::jsonb, $5)",
    " ON CONFLICT (id) DO NOTHING",
)
_TASK_COLUMNS = (
    "customer_id, operation, customer, committed, idempotency_key, request_fingerprint, "
    "lease_owner, lease_until, attempts, last_error, created_at"
)
_PUT_TASK: _Part = (
    f"INSERT INTO sync_tasks ({_TASK_COLUMNS}) "
    "VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, $11) "
    "ON CONFLICT (customer_id) DO UPDATE SET "
    + ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _TASK_COLUMNS.split(",")[1:]),
    None,
)
_DELETE_TASK: _Part = ("DELETE FROM sync_tasks WHERE customer_id = $1", "")
_GET_TASK = f"SELECT {_TASK_COLUMNS} FROM sync_tasks WHERE customer_id = $1 FOR UPDATE"
_GET_TASK_BY_KEY = f"SELECT {_TASK_COLUMNS} FROM sync_tasks WHERE idempotency_key = $1 FOR UPDATE"
# SKIP LOCKED: processes claiming at once each take different tasks instead of queueing.
_CLAIM_TASKS = f"""
    WITH claimable AS (
        SELECT customer_id FROM sync_tasks
        WHERE lease_until <= $1 OR lease_owner IS NULL OR lease_owner = ANY($2::text[])
        ORDER BY created_at, customer_id LIMIT $3
        FOR UPDATE SKIP LOCKED
    )
    UPDATE sync_tasks AS t SET lease_owner = $4, lease_until = $5
    FROM claimable WHERE t.customer_id = claimable.customer_id
    RETURNING {", ".join(f"t.{c.strip()}" for c in _TASK_COLUMNS.split(","))}"""
_LIST_TASKS = f"SELECT {_TASK_COLUMNS} FROM sync_tasks ORDER BY created_at, customer_id LIMIT $1"
_WEBHOOK_SEEN = "SELECT 1 FROM webhook_events WHERE provider = $1 AND event_id = $2"
_INSERT_WEBHOOK: _Part = (
    "INSERT INTO webhook_events (provider, event_id, received_at) VALUES ($1, $2, $3)",
    " ON CONFLICT (provider, event_id) DO NOTHING",
)
_UPDATE_CUSTOMER = (
    "UPDATE customers SET email = $2, email_key = $3, name = $4, phone = $5, address = $6::jsonb, "
    "metadata = $7::jsonb, provider_ids = $8::jsonb, updated_at = $9, deleted_at = $10 "
    "WHERE id = $1"
)

# The event log's order is (txid, seq): seq alone is not commit order, as sequence numbers are
# taken before commit. Reads stop below the oldest transaction still running in this database,
# which may yet commit an event that sorts earlier, so a reader paging with ``after`` never
# skips one. Transactions of backends on other databases cannot write here and do not hold the
# log back. Changes to one customer queue before taking their txid (see _queue), so for one
# customer this order is commit order.
_EVENT_BOUND = """(
    WITH snap AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
    elsewhere AS MATERIALIZED (
        SELECT backend_xid::text::bigint AS xid FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL
          AND datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
    )
    SELECT coalesce(
        (SELECT min(x) FROM snap, pg_snapshot_xip(snap.s) AS x
         WHERE x::text::bigint % 4294967296 NOT IN (SELECT xid FROM elsewhere)),
        (SELECT pg_snapshot_xmax(s) FROM snap))
)"""
_EVENTS_FIRST = (
    f"SELECT payload FROM events WHERE txid < {_EVENT_BOUND} ORDER BY txid, seq LIMIT $1"
)
_EVENTS_AFTER = f"""
    WITH after_event AS MATERIALIZED (SELECT txid, seq FROM events WHERE id = $1)
    SELECT payload FROM events
    WHERE txid >= (SELECT txid FROM after_event)
      AND (txid, seq) > (SELECT txid, seq FROM after_event)
      AND txid < {_EVENT_BOUND}
    ORDER BY txid, seq LIMIT $2"""

_MIGRATION_LOCK = 0x717A_7061_795F_6462  # "qzpay_db": pg_advisory_xact_lock key for upgrades
_CUSTOMER_LOCK_CLASS = 0x717A_7079  # "qzpy": first key of the per-customer advisory lock
_WEBHOOK_LOCK_CLASS = 0x717A_7077  # "qzpw": first key of the per-webhook-delivery lock
_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS qzpay_schema_version ("
    "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
)
_PARAM = re.compile(r"\$(\d+)")

# Errors after which the connection is gone; everything else from the driver is a StorageError.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
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
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    *_CONNECTION_ERRORS,
    asyncpg.PostgresError,
    asyncpg.InternalClientError,
)
_RESEND_ERRORS: tuple[type[BaseException], ...] = (StorageError, *_DRIVER_ERRORS)


def _customer(row: asyncpg.Record) -> Customer:
    address = row[4]
    return Customer.model_construct(
        id=row[0],
        email=row[1],
        name=row[2],
        phone=row[3],
        address=None if address is None else Address.model_construct(**json.loads(address)),
        metadata=json.loads(row[5]),
        provider_customer_ids=json.loads(row[6]),
        created_at=row[7],
        updated_at=row[8],
        deleted_at=row[9],
    )


def _task(row: asyncpg.Record) -> SyncTask:
    return SyncTask(
        customer_id=row[0],
        operation=row[1],
        customer=Customer.model_validate_json(row[2]),
        committed=row[3],
        idempotency_key=row[4],
        request_fingerprint=row[5],
        lease_owner=row[6],
        lease_until=row[7],
        attempts=row[8],
        last_error=row[9],
        created_at=row[10],
    )


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _unavailable(exc: BaseException, doing: str = "reach PostgreSQL") -> StorageError:
    return StorageError(f"could not {doing}: {exc!r}", code="storage_unavailable")


def _driver_error(exc: BaseException) -> StorageError:
    if isinstance(exc, _CONNECTION_ERRORS):
        return _unavailable(exc, "complete the operation, the connection was lost")
    return StorageError(f"PostgreSQL error: {exc!r}")


def _queue(lock_class: int, name: str) -> str:
    """SQL that waits until other transactions queued under ``name`` have finished.

    A transaction takes the id that orders the event log when it first writes or locks a row,
    and one that waits for a row lock may already have taken it. Queueing on an advisory lock
    (which needs no id) before touching the row makes one customer's changes take their ids in
    commit order. The key is computed here so the statement has no parameters and can travel
    with BEGIN.
    """
    digest = hashlib.blake2b(name.encode(), digest_size=4).digest()
    key = int.from_bytes(digest, "big", signed=True)
    return f"SELECT pg_advisory_xact_lock({lock_class}, {key})"


def where_clauses(filters: CustomerFilter, params: list[object]) -> list[str]:
    """SQL conditions for ``filters``, appending their arguments to ``params``."""
    clauses: list[str] = []
    if not filters.include_deleted:
        clauses.append("deleted_at IS NULL")
    if filters.email is not None:
        params.append(email_key(filters.email))
        clauses.append(f"email_key = ${len(params)}")
    for key, value in filters.metadata.items():
        params += [key, value]
        clauses.append(
            "EXISTS (SELECT 1 FROM customer_metadata AS m WHERE m.customer_id = customers.id "
            f"AND m.key = ${len(params) - 1} AND m.value = ${len(params)})"
        )
    return clauses


def list_query(filters: CustomerFilter, *, limit: int, offset: int) -> tuple[str, list[object]]:
    """The page query ``list_customers`` runs (also used by the index tests).

    No OFFSET clause for the first page: with ``OFFSET $n`` PostgreSQL plans the statement
    anew on every call (measured: 100-400 µs a call), as it cannot cost a generic plan.
    """
    params: list[object] = []
    clauses = where_clauses(filters, params)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(limit)
    sql = f"SELECT {_COLUMNS} FROM customers{where} ORDER BY id DESC LIMIT ${len(params)}"
    if offset:
        params.append(offset)
        sql += f" OFFSET ${len(params)}"
    return sql, params


def count_query(filters: CustomerFilter) -> tuple[str, list[object]]:
    params: list[object] = []
    clauses = where_clauses(filters, params)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"SELECT count(*) FROM customers{where}", params


def scan_query(
    filters: CustomerFilter, *, before_id: str | None, limit: int
) -> tuple[str, list[object]]:
    """The keyset page query ``scan_customers`` runs."""
    params: list[object] = []
    clauses = where_clauses(filters, params)
    if before_id is not None:
        params.append(before_id)
        clauses.append(f"id < ${len(params)}")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(limit)
    return f"SELECT {_COLUMNS} FROM customers{where} ORDER BY id DESC LIMIT ${len(params)}", params


def provider_query(provider_customer_id: str, provider: str | None) -> tuple[str, list[object]]:
    if provider is None:
        return _BY_PROVIDER_ID, [provider_customer_id]
    return _BY_PROVIDER, [provider_customer_id, provider]


@dataclass(frozen=True, slots=True)
class _Write:
    parts: tuple[_Part, ...]
    args: tuple[object, ...]
    links: tuple[tuple[str, str], ...] = ()  # provider links it adds, for the conflict message
    customer: bool = True  # it writes a customer's rows (not only the event log)

    @property
    def resendable(self) -> bool:
        return all(again is not None for _, again in self.parts)


def _shifted(match: re.Match[str], *, shift: int) -> str:
    return f"${int(match[1]) + shift}"


@functools.lru_cache(maxsize=256)
def _compose(shape: tuple[tuple[tuple[_Part, ...], int], ...], resend: bool) -> str:
    """One statement running every write's parts; ``resend`` makes each a no-op if its row
    already exists (the statement committed before the connection dropped)."""
    statements: list[str] = []
    shift = 0
    for parts, count in shape:
        for sql, again in parts:
            if resend:
                assert again is not None
                sql += again
            if shift:
                sql = _PARAM.sub(functools.partial(_shifted, shift=shift), sql)
            statements.append(sql)
        shift += count
    if len(statements) == 1:
        return statements[0]
    ctes = ", ".join(f"w{index} AS ({sql})" for index, sql in enumerate(statements))
    return f"WITH {ctes} SELECT 1"


def _statement(writes: Sequence[_Write], *, resend: bool = False) -> tuple[str, list[object]]:
    shape = tuple((write.parts, len(write.args)) for write in writes)
    args = [arg for write in writes for arg in write.args]
    return _compose(shape, resend), args


def _same_row(first: _Write, second: _Write) -> bool:
    """Whether two deferred writes may touch the same row (then they cannot share a statement)."""
    if first.customer and second.customer:
        return True
    # Other writes are keyed by their first argument (a task's customer id, an event's id):
    # a CTE does not see another CTE's change, so an upsert then a delete must not share one.
    return first.args[:1] == second.args[:1]


def _conflict(exc: asyncpg.UniqueViolationError, writes: Sequence[_Write]) -> Exception:
    """Translate a unique violation by its constraint name."""
    links = [link for write in writes for link in write.links]
    constraint = exc.constraint_name
    if constraint in ("customers_idempotency_key_key", "sync_tasks_idempotency_key_key"):
        return ConflictError("idempotency key already used", code="idempotency_key_reused")
    if constraint == "customer_links_pkey":
        taken = ", ".join(f"{provider} customer {pcid!r}" for provider, pcid in links)
        return ConflictError(
            f"{taken or 'a provider customer id'} is already linked to another customer",
            code="provider_id_taken",
        )
    if constraint == "customer_links_customer_provider_key":
        return ConflictError(
            "the customer is already linked at this provider", code="provider_already_linked"
        )
    return StorageError(f"PostgreSQL error: {exc!r}")


class _OwnConnections:
    """The connections a storage opened itself: idle ones on a stack, at most ``max_size`` out.

    Measured: an asyncpg Pool acquire and release costs about 60 µs (a proxy object, a shielded
    task), as much as a whole primary-key read; this costs a few. A connection that saw
    anything but success or a server error is closed rather than reused.
    """

    def __init__(self, dsn: str, *, max_size: int, connect_timeout: float) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._idle: list[tuple[_Connection, int]] = []
        self._out: dict[_Connection, int] = {}
        self._slots = asyncio.Semaphore(max_size)
        self._generation = 0
        self._closed = False

    async def acquire(self) -> _Connection:
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

    async def release(self, connection: _Connection, *, reuse: bool) -> None:
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


class _GivenPool:
    """A caller's asyncpg Pool, used as it is (its reset runs on every release)."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self.pool = pool

    async def acquire(self) -> _Connection:
        return await self.pool.acquire()

    async def release(self, connection: _Connection, *, reuse: bool) -> None:
        assert isinstance(connection, PoolConnectionProxy)
        if not reuse:
            connection.terminate()
        # A failed release means the pool dropped the connection, which is what we want.
        with contextlib.suppress(*_DRIVER_ERRORS):
            await self.pool.release(connection)

    async def expire(self) -> None:
        await self.pool.expire_connections()

    async def close(self) -> None:
        return None  # the caller's pool stays open


_Connections: TypeAlias = "_OwnConnections | _GivenPool"


class PostgresStorage:
    """Storage in a PostgreSQL database (13 or newer), through asyncpg.

    ``dsn_or_pool`` is a ``postgresql://`` DSN, whose connections this storage opens (at most
    ``max_size``, ``min_size`` of them at open) and closes, or an ``asyncpg.Pool`` to use as it
    is and leave open on ``close()``.
    """

    def __init__(
        self,
        dsn_or_pool: str | asyncpg.Pool[asyncpg.Record],
        *,
        migrate: bool = True,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
    ) -> None:
        if isinstance(dsn_or_pool, asyncpg.Pool):
            self.dsn: str | None = None
            self._given: _GivenPool | None = _GivenPool(dsn_or_pool)
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
        self._connections: _Connections | None = None
        self._blocking: BlockingReader | None = None
        self._open_lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        if self._connections is None:
            await self._open(apply=self.migrate)

    async def _opened(self) -> _Connections:
        if self._connections is not None:
            return self._connections
        return await self._open(apply=self.migrate)

    async def _open(self, *, apply: bool) -> _Connections:
        async with self._open_lock:
            if self._connections is not None:
                if apply:
                    await self._migrate(self._connections, apply=True)
                return self._connections
            connections: _Connections
            if self._given is not None:
                connections = self._given
            else:
                assert self.dsn is not None
                connections = _OwnConnections(
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

    async def _warm(self, connections: _Connections) -> None:
        """Open ``min_size`` connections now rather than on first need."""
        if self._given is not None or self.min_size < 2:
            return  # the migration check left one open
        opened: list[_Connection] = []
        try:
            # Holding them all at once: the first is the one the migration check left idle.
            for _ in range(self.min_size):
                opened.append(await connections.acquire())
        except _DRIVER_ERRORS as exc:
            raise _unavailable(exc, "connect to PostgreSQL") from exc
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

    async def _migrate(self, connections: _Connections, *, apply: bool) -> None:
        scripts = migrations.load("postgres")
        latest = scripts[-1][0]
        try:
            connection = await connections.acquire()
        except _DRIVER_ERRORS as exc:
            raise _unavailable(exc, "connect to PostgreSQL") from exc
        reuse = False
        try:
            await self._migrate_on(connection, scripts, latest, apply=apply)
            reuse = True
        except StorageError:
            reuse = True
            raise
        except _DRIVER_ERRORS as exc:
            raise _driver_error(exc) from exc
        finally:
            await connections.release(connection, reuse=reuse)

    @staticmethod
    async def _migrate_on(
        connection: _Connection,
        scripts: list[tuple[int, list[str]]],
        latest: int,
        *,
        apply: bool,
    ) -> None:
        current = await _schema_version(connection)
        if current == latest:
            return
        if current < latest and not apply:
            raise StorageError(
                f"database schema version {current} is older than this qzpay needs "
                f"({latest}); run `qzpay db upgrade` or open with migrate=True",
                code="schema_outdated",
            )
        async with connection.transaction():
            # Upgrades from several processes take turns; the later ones find no work.
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await connection.execute(_VERSION_TABLE)
            current = await _schema_version(connection)
            if current > latest:
                raise StorageError(
                    f"database schema version {current} is newer than this qzpay knows "
                    f"({latest}); upgrade qzpay",
                    code="schema_too_new",
                )
            for version, statements in scripts:
                if version > current:
                    for statement in statements:
                        await connection.execute(statement)
                    await connection.execute(
                        "INSERT INTO qzpay_schema_version (version) VALUES ($1)", version
                    )

    # -- writes --------------------------------------------------------------------------
    def transaction(self) -> _PostgresTransaction:
        return _PostgresTransaction(self)

    # -- reads ---------------------------------------------------------------------------
    async def _read(self, query: Callable[[_Connection], Awaitable[T]]) -> T:
        """Run ``query``, and once more on a new connection if its connection was lost (a read
        is safe to repeat). A failure to connect at all is not retried."""
        connections = self._connections
        if connections is None:
            connections = await self._opened()
        lost: BaseException | None = None
        for _ in range(2):
            try:
                connection = await connections.acquire()
            except _DRIVER_ERRORS as exc:
                raise _unavailable(exc, "connect to PostgreSQL") from lost or exc
            try:
                result = await query(connection)
            except _CONNECTION_ERRORS as exc:
                await connections.release(connection, reuse=False)
                if lost is not None:
                    raise _driver_error(exc) from lost
                lost = exc
                await connections.expire()
                continue
            except _DRIVER_ERRORS as exc:  # the server refused the query; the connection is fine
                await connections.release(connection, reuse=True)
                raise _driver_error(exc) from exc
            except BaseException:
                await connections.release(connection, reuse=False)
                raise
            await connections.release(connection, reuse=True)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_customer(self, customer_id: str) -> Customer | None:
        row = await self._read(lambda c: c.fetchrow(_GET, customer_id))
        return None if row is None else _customer(row)

    async def find_customers_by_provider_id(
        self, provider_customer_id: str, *, provider: str | None
    ) -> list[Customer]:
        sql, params = provider_query(provider_customer_id, provider)
        rows = await self._read(lambda c: c.fetch(sql, *params))
        return [_customer(row) for row in rows]

    async def list_customers(
        self, filters: CustomerFilter, *, limit: int, offset: int
    ) -> tuple[list[Customer], int]:
        sql, params = list_query(filters, limit=limit, offset=offset)

        async def query(connection: _Connection) -> tuple[list[asyncpg.Record], int]:
            rows = await connection.fetch(sql, *params)
            if len(rows) < limit and (rows or offset == 0):
                return rows, offset + len(rows)  # the last page: no count needed
            count_sql, count_params = count_query(filters)
            return rows, int(await connection.fetchval(count_sql, *count_params))

        rows, total = await self._read(query)
        return [_customer(row) for row in rows], total

    async def scan_customers(
        self, filters: CustomerFilter, *, before_id: str | None, limit: int
    ) -> list[Customer]:
        sql, params = scan_query(filters, before_id=before_id, limit=limit)
        rows = await self._read(lambda c: c.fetch(sql, *params))
        return [_customer(row) for row in rows]

    async def get_event(self, event_id: str) -> Event | None:
        payload = await self._read(
            lambda c: c.fetchval("SELECT payload FROM events WHERE id = $1", event_id)
        )
        return None if payload is None else Event.model_validate_json(payload)

    async def list_events(self, *, after: str | None, limit: int) -> list[Event]:
        async def query(connection: _Connection) -> list[asyncpg.Record] | None:
            if after is None:
                return await connection.fetch(_EVENTS_FIRST, limit)
            rows = await connection.fetch(_EVENTS_AFTER, after, limit)
            if (
                not rows
                and await connection.fetchval("SELECT 1 FROM events WHERE id = $1", after) is None
            ):
                return None
            return rows

        rows = await self._read(query)
        if rows is None:
            raise NotFoundError(f"no event {after!r}")
        return [Event.model_validate_json(row[0]) for row in rows]

    async def list_sync_tasks(self, *, limit: int) -> list[SyncTask]:
        rows = await self._read(lambda c: c.fetch(_LIST_TASKS, limit))
        return [_task(row) for row in rows]


async def _schema_version(connection: _Connection) -> int:
    if await connection.fetchval("SELECT to_regclass('qzpay_schema_version')") is None:
        return 0
    return int(
        await connection.fetchval("SELECT coalesce(max(version), 0) FROM qzpay_schema_version")
    )


class _PostgresTransaction:
    """One transaction on one connection; also its own context manager.

    Writes that cannot conflict wait in ``_pending`` until the next read or the commit, which
    send them as one statement. The statements of one WITH all see the same snapshot, so one
    statement holds at most one customer write (plus any events).
    """

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage
        self._connections: _Connections | None = None
        self._connection: _Connection | None = None
        self._begun = False
        self._pending: list[_Write] = []

    async def __aenter__(self) -> _PostgresTransaction:
        self._connections = await self._storage._opened()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reuse = False
        try:
            if exc_type is None:
                await self._commit()
            else:
                await self._rollback()
            # After a cancellation the connection may still be busy cancelling: drop it.
            reuse = exc_type is None or issubclass(exc_type, Exception)
        finally:
            await self._release(reuse=reuse)

    # -- connection and transaction state ------------------------------------------------
    async def _acquire(self) -> _Connection:
        if self._connection is None:
            assert self._connections is not None, "use the transaction in `async with`"
            try:
                self._connection = await self._connections.acquire()
            except _DRIVER_ERRORS as exc:
                raise _unavailable(exc, "connect to PostgreSQL") from exc
        return self._connection

    async def _release(self, *, reuse: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and self._connections is not None:
            await self._connections.release(connection, reuse=reuse)

    async def _replace_connection(self) -> None:
        """Drop a lost connection, and every other one too (the server may have restarted)."""
        await self._release(reuse=False)
        assert self._connections is not None
        await self._connections.expire()

    async def _begin(self, first: str | None = None) -> _Connection:
        """BEGIN, sent with ``first`` (a statement without parameters) in one round trip."""
        if self._begun:
            assert self._connection is not None
            if first is not None:
                try:
                    await self._connection.execute(first)
                except _DRIVER_ERRORS as exc:
                    raise _driver_error(exc) from exc
            return self._connection
        begin = "BEGIN" if first is None else f"BEGIN; {first}"
        connection = await self._acquire()
        try:
            await connection.execute(begin)
        except _CONNECTION_ERRORS as exc:
            # Nothing was sent but BEGIN, so nothing can have been written: start again.
            await self._replace_connection()
            connection = await self._acquire()
            try:
                await connection.execute(begin)
            except _DRIVER_ERRORS as again:
                raise _driver_error(again) from exc
        except _DRIVER_ERRORS as exc:
            raise _driver_error(exc) from exc
        self._begun = True
        return connection

    async def _flush(self, connection: _Connection) -> None:
        """Send the pending writes, in order, as one statement inside the transaction."""
        if self._pending:
            pending, self._pending = self._pending, []
            await self._execute(connection, pending)

    async def _execute(self, connection: _Connection, writes: Sequence[_Write]) -> None:
        sql, args = _statement(writes)
        try:
            await connection.execute(sql, *args)
        except asyncpg.UniqueViolationError as exc:
            raise _conflict(exc, writes) from exc
        except _DRIVER_ERRORS as exc:
            raise _driver_error(exc) from exc

    async def _write(self, write: _Write, *, may_conflict: bool) -> None:
        """Send a write that can raise a ConflictError now, so the call raises it; keep the
        others for the next read or the commit."""
        if may_conflict or not (self._begun or write.resendable):
            connection = await self._begin()
            await self._flush(connection)
            await self._execute(connection, (write,))
            return
        if any(_same_row(pending, write) for pending in self._pending):
            # One statement cannot change a row twice (PostgreSQL refuses it): send the first.
            await self._flush(await self._begin())
        self._pending.append(write)

    async def _commit(self) -> None:
        if self._begun:
            assert self._connection is not None
            await self._flush(self._connection)
            try:
                await self._connection.execute("COMMIT")
            except _CONNECTION_ERRORS as exc:
                raise StorageError(
                    f"the connection was lost during COMMIT, so the change may or may not "
                    f"have been saved: {exc!r}",
                    code="storage_unavailable",
                ) from exc
            except _DRIVER_ERRORS as exc:
                raise _driver_error(exc) from exc
        elif self._pending:
            await self._commit_pending()

    async def _commit_pending(self) -> None:
        """Send the pending writes as one statement, which commits on its own."""
        sql, args = _statement(self._pending)
        connection = await self._acquire()
        try:
            await connection.execute(sql, *args)
            return
        except _CONNECTION_ERRORS as exc:
            lost: BaseException = exc
        except _DRIVER_ERRORS as exc:
            raise _driver_error(exc) from exc
        # It may have committed before the connection dropped. Its rows have ids chosen here,
        # so sending it again with ON CONFLICT DO NOTHING writes them exactly once (a copy
        # still running on the old connection makes it wait for that one's outcome).
        await self._replace_connection()
        sql, args = _statement(self._pending, resend=True)
        try:
            connection = await self._acquire()
            await connection.execute(sql, *args)
        except _RESEND_ERRORS as exc:
            raise StorageError(
                "the connection was lost while committing and sending the change again failed, "
                f"so it may or may not have been saved: {exc!r}",
                code="storage_unavailable",
            ) from lost

    async def _rollback(self) -> None:
        self._pending.clear()
        connection = self._connection
        if not self._begun or connection is None or connection.is_closed():
            return
        try:
            await connection.execute("ROLLBACK")
        except asyncio.CancelledError:
            connection.terminate()  # closing the connection rolls back on the server
            raise
        except Exception:
            connection.terminate()  # keep the error that caused the rollback

    async def _fetchrow(
        self, sql: str, *args: object, queue: str | None = None
    ) -> asyncpg.Record | None:
        """A read inside the transaction, after the writes kept so far."""
        connection = await self._begin(queue)
        await self._flush(connection)
        try:
            return await connection.fetchrow(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise _driver_error(exc) from exc

    # -- the Transaction protocol --------------------------------------------------------
    async def get_customer(self, customer_id: str) -> Customer | None:
        queue = _queue(_CUSTOMER_LOCK_CLASS, customer_id)
        row = await self._fetchrow(_GET_FOR_UPDATE, customer_id, queue=queue)
        return None if row is None else _customer(row)

    async def find_idempotent_create(self, idempotency_key: str) -> IdempotentCreate | None:
        row = await self._fetchrow(_GET_IDEMPOTENT, idempotency_key)
        return None if row is None else IdempotentCreate(_customer(row), row[10])

    async def insert_customer(
        self,
        customer: Customer,
        *,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
    ) -> None:
        links = customer.provider_customer_ids
        parts = [_INSERT_CUSTOMER]
        if customer.metadata:
            parts.append(_INSERT_METADATA)
        if links:
            parts.append(_INSERT_LINKS)
        write = _Write(
            tuple(parts),
            (
                customer.id,
                customer.email,
                email_key(customer.email),
                customer.name,
                customer.phone,
                None if customer.address is None else _json(customer.address.model_dump()),
                _json(customer.metadata),
                _json(links),
                customer.created_at,
                customer.updated_at,
                customer.deleted_at,
                idempotency_key,
                request_fingerprint,
            ),
            tuple(links.items()),
        )
        await self._write(write, may_conflict=idempotency_key is not None or bool(links))

    async def update_customer(self, before: Customer, after: Customer) -> None:
        args: list[object] = [
            after.id,
            after.email,
            email_key(after.email),
            after.name,
            after.phone,
            None if after.address is None else _json(after.address.model_dump()),
            _json(after.metadata),
            _json(after.provider_customer_ids),
            after.updated_at,
            after.deleted_at,
        ]
        parts: list[_Part] = [(_UPDATE_CUSTOMER, None)]

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        # The side tables change by difference. Each key is touched by one statement only,
        # since the statements of one WITH run in no defined order.
        old_meta, new_meta = before.metadata, after.metadata
        removed = [k for k in old_meta if k not in new_meta]
        if removed:
            parts.append(
                (
                    "DELETE FROM customer_metadata WHERE customer_id = $1 "
                    f"AND key = ANY({arg(removed)}::text[])",
                    None,
                )
            )
        changed = {k: v for k, v in new_meta.items() if old_meta.get(k) != v}
        if changed:
            parts.append(
                (
                    "INSERT INTO customer_metadata (customer_id, key, value) "
                    f"SELECT $1::text, key, value FROM jsonb_each_text({arg(_json(changed))}"
                    "::jsonb) ON CONFLICT (customer_id, key) DO UPDATE SET value = excluded.value",
                    None,
                )
            )
        old_links, new_links = before.provider_customer_ids, after.provider_customer_ids
        unlinked = [p for p in old_links if p not in new_links]
        if unlinked:
            parts.append(
                (
                    "DELETE FROM customer_links WHERE customer_id = $1 "
                    f"AND provider = ANY({arg(unlinked)}::text[])",
                    None,
                )
            )
        linked = {p: v for p, v in new_links.items() if old_links.get(p) != v}
        if linked:
            parts.append(
                (
                    "INSERT INTO customer_links (provider, provider_customer_id, customer_id) "
                    f"SELECT key, value, $1::text FROM jsonb_each_text({arg(_json(linked))}"
                    "::jsonb) ON CONFLICT (customer_id, provider) "
                    "DO UPDATE SET provider_customer_id = excluded.provider_customer_id",
                    None,
                )
            )
        write = _Write(tuple(parts), tuple(args), tuple(linked.items()))
        await self._write(write, may_conflict=bool(linked))

    async def append_event(self, event: Event) -> None:
        write = _Write(
            (_INSERT_EVENT,),
            (event.id, event.type, event.data.id, event.model_dump_json(), event.created_at),
            customer=False,
        )
        await self._write(write, may_conflict=False)

    async def get_sync_task(self, customer_id: str) -> SyncTask | None:
        row = await self._fetchrow(_GET_TASK, customer_id)
        return None if row is None else _task(row)

    async def find_sync_task_by_key(self, idempotency_key: str) -> SyncTask | None:
        row = await self._fetchrow(_GET_TASK_BY_KEY, idempotency_key)
        return None if row is None else _task(row)

    async def put_sync_task(self, task: SyncTask) -> None:
        write = _Write(
            (_PUT_TASK,),
            (
                task.customer_id,
                task.operation,
                task.customer.model_dump_json(),
                task.committed,
                task.idempotency_key,
                task.request_fingerprint,
                task.lease_owner,
                task.lease_until,
                task.attempts,
                task.last_error,
                task.created_at,
            ),
            customer=False,
        )
        await self._write(write, may_conflict=task.idempotency_key is not None)

    async def delete_sync_task(self, customer_id: str) -> None:
        write = _Write((_DELETE_TASK,), (customer_id,), customer=False)
        await self._write(write, may_conflict=False)

    async def claim_sync_tasks(
        self,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        stale_owners: frozenset[str],
        limit: int,
    ) -> list[SyncTask]:
        connection = await self._begin()
        await self._flush(connection)
        try:
            rows = await connection.fetch(
                _CLAIM_TASKS, now, sorted(stale_owners), limit, owner, lease_until
            )
        except _DRIVER_ERRORS as exc:
            raise _driver_error(exc) from exc
        return sorted((_task(row) for row in rows), key=lambda t: (t.created_at, t.customer_id))

    async def record_webhook_event(self, provider: str, event_id: str, now: datetime) -> bool:
        # Deliveries of one event queue on an advisory lock and then look, so a duplicate
        # arriving at once waits for the first one's outcome (and nothing takes an id early).
        connection = await self._begin(_queue(_WEBHOOK_LOCK_CLASS, f"{provider}\0{event_id}"))
        await self._flush(connection)
        try:
            seen = await connection.fetchval(_WEBHOOK_SEEN, provider, event_id)
        except _DRIVER_ERRORS as exc:
            raise _driver_error(exc) from exc
        if seen is not None:
            return False
        write = _Write((_INSERT_WEBHOOK,), (provider, event_id, now), customer=False)
        await self._write(write, may_conflict=False)
        return True


_PLACEHOLDER = re.compile(r"\$\d+")


def _psycopg_sql(sql: str) -> str:
    """asyncpg's ``$n`` placeholders as psycopg's ``%s`` (each is used once, in order)."""
    return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))


def _customer_from_row(row: Sequence[Any]) -> Customer:
    """A psycopg row: JSONB arrives decoded."""
    address = row[4]
    return Customer.model_construct(
        id=row[0],
        email=row[1],
        name=row[2],
        phone=row[3],
        address=None if address is None else Address.model_construct(**address),
        metadata=row[5],
        provider_customer_ids=row[6],
        created_at=row[7],
        updated_at=row[8],
        deleted_at=row[9],
    )


class BlockingReader:
    """Customer reads on the calling thread through psycopg, one connection per thread.

    SyncBilling uses it so that a blocking read costs a query, not a hop to its event-loop
    thread and back (asyncpg has no blocking API). Same SQL as the asyncpg reads; autocommit,
    so every read sees committed data only; server-side prepared statements from the first use.
    """

    def __init__(self, dsn: str, *, connect_timeout: float) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._all = self._all, []
        for connection in connections:
            with contextlib.suppress(Exception):
                connection.close()

    def _connect(self) -> Any:
        import psycopg

        if self._closed:
            raise StorageError("storage is closed", code="storage_closed")
        try:
            connection = psycopg.connect(
                self._dsn,
                autocommit=True,
                prepare_threshold=0,
                connect_timeout=max(1, round(self._connect_timeout)),
                options="-c timezone=UTC",
            )
        except psycopg.Error as exc:
            raise _unavailable(exc, "connect to PostgreSQL") from exc
        with self._lock:
            self._all.append(connection)
        self._local.connection = connection
        return connection

    def _fetch(self, sql: str, params: Sequence[object]) -> list[Any]:
        import psycopg

        query = _psycopg_sql(sql)
        for attempt in (1, 2):
            connection = getattr(self._local, "connection", None)
            if connection is None or connection.closed:
                connection = self._connect()
            try:
                rows: list[Any] = connection.execute(query, params).fetchall()
                return rows
            except psycopg.OperationalError as exc:
                self._local.connection = None
                with contextlib.suppress(Exception):
                    connection.close()
                if attempt == 2:  # a read is safe to repeat once on a new connection
                    raise _driver_error(exc) from exc
            except psycopg.Error as exc:
                raise StorageError(f"PostgreSQL error: {exc!r}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def get_customer(self, customer_id: str) -> Customer | None:
        rows = self._fetch(_GET, [customer_id])
        return _customer_from_row(rows[0]) if rows else None

    def find_customers_by_provider_id(
        self, provider_customer_id: str, *, provider: str | None
    ) -> list[Customer]:
        sql, params = provider_query(provider_customer_id, provider)
        return [_customer_from_row(row) for row in self._fetch(sql, params)]

    def list_customers(
        self, filters: CustomerFilter, *, limit: int, offset: int
    ) -> tuple[list[Customer], int]:
        sql, params = list_query(filters, limit=limit, offset=offset)
        rows = self._fetch(sql, params)
        if len(rows) < limit and (rows or offset == 0):
            total = offset + len(rows)
        else:
            count_sql, count_params = count_query(filters)
            total = int(self._fetch(count_sql, count_params)[0][0])
        return [_customer_from_row(row) for row in rows], total

    def scan_customers(
        self, filters: CustomerFilter, *, before_id: str | None, limit: int
    ) -> list[Customer]:
        sql, params = scan_query(filters, before_id=before_id, limit=limit)
        return [_customer_from_row(row) for row in self._fetch(sql, params)]
