"""Writes inside a PostgreSQL transaction, kept until the next read or the commit and then sent
as one statement: a create is one round trip instead of four, and in an optimistic transaction
an update or delete is a read and one checked statement. What is retried after a lost
connection, and why, is in the package docstring."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

import asyncpg

from qzpay.customers.models import Customer
from qzpay.errors import StorageError
from qzpay.events import Event
from qzpay.storage.base import IdempotentCreate, SyncTask, WriteConflict
from qzpay.storage.postgres import catalog, sql, subscriptions
from qzpay.storage.postgres.connections import (
    CONNECTION_ERRORS,
    DRIVER_ERRORS,
    RESEND_ERRORS,
    Connection,
    Connections,
    driver_error,
    unavailable,
)
from qzpay.storage.postgres.sql import Part, Write, customer_from_row, task_from_row
from qzpay.storage.rows import (
    as_is,
    customer_args,
    customer_update_args,
    dump_json,
    event_args,
    task_args,
)


def _resend_failed(exc: BaseException) -> StorageError:
    """A commit whose connection was lost, and whose resending failed too: its outcome is
    unknown."""
    return StorageError(
        "the connection was lost while committing and sending the change again failed, "
        f"so it may or may not have been saved: {exc!r}",
        code="storage_unavailable",
    )


class PostgresTransaction(catalog.CatalogTransaction, subscriptions.SubscriptionTransaction):
    """One transaction on one connection; also its own context manager.

    Writes that cannot conflict wait in ``_pending`` until the next read or the commit, which
    send them as one statement. The statements of one WITH all see the same snapshot, so one
    statement holds at most one customer write (plus any events).

    ``optimistic``: ``get_customer`` outside BEGIN reads without a lock, noting the row's
    version, and the customer's update becomes a checked one (see sql.checked_update), kept for
    the commit like any other write (provider-link conflicts included); if the row changed
    meanwhile the commit raises WriteConflict and writes nothing.
    """

    def __init__(
        self, opened: Callable[[], Awaitable[Connections]], *, optimistic: bool = False
    ) -> None:
        self._opened = opened  # the storage's connections, once it is open
        self._connections: Connections | None = None
        self._connection: Connection | None = None
        self._begun = False
        self._pending: list[Write] = []
        self._optimistic = optimistic
        self._versions: dict[str, int] = {}  # customers read without a lock: their xmin

    async def __aenter__(self) -> PostgresTransaction:
        self._connections = await self._opened()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        reuse = False
        try:
            if exc_type is None:
                try:
                    await self._commit()
                except WriteConflict:
                    await self._rollback()
                    reuse = True
                    raise
            else:
                await self._rollback()
            # After a cancellation the connection may still be busy cancelling: drop it.
            reuse = exc_type is None or issubclass(exc_type, Exception)
        finally:
            await self._release(reuse=reuse)

    # -- connection and transaction state ------------------------------------------------
    async def _acquire(self) -> Connection:
        if self._connection is None:
            assert self._connections is not None, "use the transaction in `async with`"
            try:
                self._connection = await self._connections.acquire()
            except DRIVER_ERRORS as exc:
                raise unavailable(exc, "connect to PostgreSQL") from exc
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

    async def _begin(self, first: str | None = None) -> Connection:
        """BEGIN, sent with ``first`` (a statement without parameters) in one round trip."""
        if self._begun:
            assert self._connection is not None
            if first is not None:
                try:
                    await self._connection.execute(first)
                except DRIVER_ERRORS as exc:
                    raise driver_error(exc) from exc
            return self._connection
        begin = "BEGIN" if first is None else f"BEGIN; {first}"
        connection = await self._acquire()
        try:
            await connection.execute(begin)
        except CONNECTION_ERRORS as exc:
            # Nothing was sent but BEGIN, so nothing can have been written: start again.
            await self._replace_connection()
            connection = await self._acquire()
            try:
                await connection.execute(begin)
            except DRIVER_ERRORS as again:
                raise driver_error(again) from exc
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc
        self._begun = True
        return connection

    async def _flush(self, connection: Connection) -> None:
        """Send the pending writes, in order, as one statement inside the transaction."""
        if self._pending:
            pending, self._pending = self._pending, []
            await self._execute(connection, pending)

    async def _execute(self, connection: Connection, writes: Sequence[Write]) -> None:
        checked, writes = sql.split_checked(writes)
        if checked:
            try:
                wrote = await self._execute_checked(connection, checked)
            except CONNECTION_ERRORS as exc:
                raise driver_error(exc) from exc
            if not wrote:
                raise _changed(checked[0])
        if not writes:
            return
        statement, args = sql.statement(writes)
        try:
            await connection.execute(statement, *args)
        except asyncpg.UniqueViolationError as exc:
            raise sql.conflict(exc, writes) from exc
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc

    @staticmethod
    async def _execute_checked(connection: Connection, writes: Sequence[Write]) -> bool:
        """Send a checked update with its events; whether it wrote (False: the row changed).
        A lost connection is raised as the driver's error."""
        statement, args = sql.checked_statement(writes)
        try:
            return bool(await connection.fetchval(statement, *args))
        except asyncpg.UniqueViolationError as exc:
            raise sql.conflict(exc, writes) from exc
        except CONNECTION_ERRORS:
            raise
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc

    async def _write(self, write: Write, *, may_conflict: bool) -> None:
        """Send a write that can raise a ConflictError now, so the call raises it; keep the
        others for the next read or the commit (and a checked update always)."""
        if not write.checked and (may_conflict or not (self._begun or write.resendable)):
            connection = await self._begin()
            await self._flush(connection)
            await self._execute(connection, (write,))
            return
        if any(sql.same_row(pending, write) for pending in self._pending):
            # One statement cannot change a row twice (PostgreSQL refuses it): send the first.
            await self._flush(await self._begin())
        self._pending.append(write)

    async def _commit(self) -> None:
        if self._begun:
            assert self._connection is not None
            await self._flush(self._connection)
            try:
                await self._connection.execute("COMMIT")
            except CONNECTION_ERRORS as exc:
                raise StorageError(
                    f"the connection was lost during COMMIT, so the change may or may not "
                    f"have been saved: {exc!r}",
                    code="storage_unavailable",
                ) from exc
            except DRIVER_ERRORS as exc:
                raise driver_error(exc) from exc
        elif self._pending:
            checked, rest = sql.split_checked(self._pending)
            if not checked:
                await self._commit_pending()
            elif not rest:
                await self._commit_checked(checked)
            else:  # other writes too (a sync task): in a transaction, which the check can undo
                await self._begin()
                await self._commit()

    async def _commit_checked(self, writes: Sequence[Write]) -> None:
        """Send a checked update and its events as one statement, which commits on its own."""
        self._pending = []
        connection = await self._acquire()
        try:
            wrote = await self._execute_checked(connection, writes)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel_on_server(connection))
            raise
        except CONNECTION_ERRORS as exc:
            lost: BaseException = exc
        else:
            if not wrote:
                raise _changed(writes[0])
            return
        # It may have committed before the connection dropped. Sending it again is safe: if it
        # did, the row is no longer at the version read, and its event tells it apart from a
        # change by another writer (a copy still running on the old connection holds the
        # customer's advisory lock, so the second one waits for its outcome).
        await self._replace_connection()
        try:
            connection = await self._acquire()
            if await self._execute_checked(connection, writes):
                return
            events = [write.args[0] for write in writes[1:]]
            if events and await connection.fetchval(sql.EVENT_EXISTS, events[0]) is not None:
                return
        except RESEND_ERRORS as exc:
            raise _resend_failed(exc) from lost
        if not events:
            raise StorageError(
                "the connection was lost while committing, so the change may or may not have "
                f"been saved: {lost!r}",
                code="storage_unavailable",
            ) from lost
        raise _changed(writes[0])

    async def _cancel_on_server(self, connection: Connection) -> None:
        """Stop a commit statement the caller cancelled. Dropping the connection is not
        enough: a server backend waiting for a lock does not notice its client has gone, and
        would commit the change once the lock is free, after the caller was told it was
        cancelled. A statement that already committed stays committed (cancelling a commit
        is always ambiguous); one still waiting is rolled back."""
        assert self._connections is not None
        try:
            other = await self._connections.acquire()
        except Exception:  # pragma: no cover - the server is gone: so is the statement
            return
        try:
            await other.execute("SELECT pg_cancel_backend($1)", connection.get_server_pid())
        except Exception:  # pragma: no cover
            await self._connections.release(other, reuse=False)
        else:
            await self._connections.release(other, reuse=True)

    async def _commit_pending(self) -> None:
        """Send the pending writes as one statement, which commits on its own."""
        statement, args = sql.statement(self._pending)
        connection = await self._acquire()
        try:
            await connection.execute(statement, *args)
            return
        except CONNECTION_ERRORS as exc:
            lost: BaseException = exc
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc
        # It may have committed before the connection dropped. Its rows have ids chosen here,
        # so sending it again with ON CONFLICT DO NOTHING writes them exactly once (a copy
        # still running on the old connection makes it wait for that one's outcome).
        await self._replace_connection()
        statement, args = sql.statement(self._pending, resend=True)
        try:
            connection = await self._acquire()
            await connection.execute(statement, *args)
        except RESEND_ERRORS as exc:
            raise _resend_failed(exc) from lost

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
        self, query: str, *args: object, queue: str | None = None
    ) -> asyncpg.Record | None:
        """A read inside the transaction, after the writes kept so far."""
        connection = await self._begin(queue)
        await self._flush(connection)
        try:
            return await connection.fetchrow(query, *args)
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc

    async def _fetchrow_unlocked(self, query: str, *args: object) -> asyncpg.Record | None:
        """A read outside BEGIN (its own implicit transaction), retried once on a new
        connection if the connection was lost (nothing was written on it)."""
        connection = await self._acquire()
        try:
            return await connection.fetchrow(query, *args)
        except CONNECTION_ERRORS:
            await self._replace_connection()
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc
        connection = await self._acquire()
        try:
            return await connection.fetchrow(query, *args)
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc

    # -- the Transaction protocol --------------------------------------------------------
    async def get_customer(self, customer_id: str) -> Customer | None:
        if self._optimistic and not self._begun and not self._pending:
            row = await self._fetchrow_unlocked(sql.GET_VERSIONED, customer_id)
            if row is None:
                self._versions.pop(customer_id, None)
                return None
            self._versions[customer_id] = row["xmin"]
            return customer_from_row(row)
        queue = sql.queue(sql.CUSTOMER_LOCK_CLASS, customer_id)
        row = await self._fetchrow(sql.GET_FOR_UPDATE, customer_id, queue=queue)
        self._versions.pop(customer_id, None)  # locked now: no check needed
        return None if row is None else customer_from_row(row)

    async def find_idempotent_create(self, idempotency_key: str) -> IdempotentCreate | None:
        row = await self._fetchrow(sql.GET_IDEMPOTENT, idempotency_key)
        return None if row is None else IdempotentCreate(customer_from_row(row), row[10])

    async def insert_customer(
        self,
        customer: Customer,
        *,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
    ) -> None:
        links = customer.provider_customer_ids
        parts = [sql.INSERT_CUSTOMER]
        if customer.metadata:
            parts.append(sql.INSERT_METADATA)
        if links:
            parts.append(sql.INSERT_LINKS)
        args = customer_args(
            customer,
            encode_time=as_is,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
        )
        write = Write(tuple(parts), args, tuple(links.items()))
        await self._write(write, may_conflict=idempotency_key is not None or bool(links))

    async def update_customer(self, before: Customer, after: Customer) -> None:
        if after == before:
            return  # nothing to write
        version = self._versions.pop(before.id, None)
        checked = version is not None
        args = customer_update_args(after, encode_time=as_is)
        parts: list[Part] = [(sql.UPDATE_CUSTOMER, None)]
        # The side tables change by difference. Each key is touched by one statement only,
        # since the statements of one WITH run in no defined order.
        metadata_diff = sql.CHECKED_METADATA_DIFF if checked else sql.METADATA_DIFF
        links_diff = sql.CHECKED_LINKS_DIFF if checked else sql.LINKS_DIFF
        # Keys whose value changes are updated in place; the diff adds and removes the others.
        changed = {
            key: value
            for key, value in after.metadata.items()
            if key in before.metadata and before.metadata[key] != value
        }
        if changed:
            args.append(dump_json(changed))
            change = sql.CHECKED_METADATA_CHANGE if checked else sql.METADATA_CHANGE
            parts.append((change.format(f"${len(args)}"), None))
        added = {key: value for key, value in after.metadata.items() if key not in changed}
        _diff(before.metadata, added, metadata_diff, parts, args, kept=after.metadata)
        linked = _diff(
            before.provider_customer_ids, after.provider_customer_ids, links_diff, parts, args
        )
        if version is not None:
            checked_parts, checked_args = sql.checked_update(
                parts, args, customer_id=before.id, version=version
            )
            write = Write(checked_parts, checked_args, tuple(linked.items()), checked=True)
        else:
            write = Write(tuple(parts), tuple(args), tuple(linked.items()))
        await self._write(write, may_conflict=bool(linked))

    async def append_event(self, event: Event) -> None:
        write = Write((sql.INSERT_EVENT,), event_args(event, encode_time=as_is), customer=False)
        await self._write(write, may_conflict=False)

    async def get_sync_task(self, record_id: str) -> SyncTask | None:
        row = await self._fetchrow(sql.GET_TASK, record_id)
        return None if row is None else task_from_row(row)

    async def find_sync_task_by_key(self, idempotency_key: str) -> SyncTask | None:
        row = await self._fetchrow(sql.GET_TASK_BY_KEY, idempotency_key)
        return None if row is None else task_from_row(row)

    async def put_sync_task(self, task: SyncTask) -> None:
        write = Write((sql.PUT_TASK,), task_args(task, encode_time=as_is), customer=False)
        await self._write(write, may_conflict=task.idempotency_key is not None)

    async def delete_sync_task(self, record_id: str) -> None:
        write = Write((sql.DELETE_TASK,), (record_id,), customer=False)
        await self._write(write, may_conflict=False)

    async def claim_sync_tasks(
        self,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        stale_owners: frozenset[str],
        limit: int,
        resource: str | None = None,
    ) -> list[SyncTask]:
        connection = await self._begin()
        await self._flush(connection)
        args = (now, sorted(stale_owners), limit, owner, lease_until, resource)
        try:
            rows = await connection.fetch(sql.CLAIM_TASKS, *args)
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc
        claimed = (task_from_row(row) for row in rows)
        return sorted(claimed, key=lambda t: (t.created_at, t.record_id))

    async def record_webhook_event(self, provider: str, event_id: str, now: datetime) -> bool:
        # Deliveries of one event queue on an advisory lock and then look, so a duplicate
        # arriving at once waits for the first one's outcome (and nothing takes an id early).
        queue = sql.queue(sql.WEBHOOK_LOCK_CLASS, f"{provider}\0{event_id}")
        connection = await self._begin(queue)
        await self._flush(connection)
        try:
            seen = await connection.fetchval(sql.WEBHOOK_SEEN, provider, event_id)
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc
        if seen is not None:
            return False
        write = Write((sql.INSERT_WEBHOOK,), (provider, event_id, now), customer=False)
        await self._write(write, may_conflict=False)
        return True


def _changed(write: Write) -> WriteConflict:
    return WriteConflict(
        f"customer {write.args[0]} changed since it was read; read it again and retry",
    )


def _diff(
    old: Mapping[str, str],
    new: Mapping[str, str],
    statements: tuple[str, str],
    parts: list[Part],
    args: list[object],
    *,
    kept: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Add to ``parts`` the (delete, upsert) ``statements`` that take a side table from
    ``old`` to ``new``, their arguments appended to ``args``; the pairs it upserts. The keys
    of ``old`` not in ``kept`` (``new`` unless given) are deleted."""
    delete, upsert = statements
    removed_keys = [key for key in old if key not in (new if kept is None else kept)]
    if removed_keys:
        args.append(removed_keys)
        parts.append((delete.format(f"${len(args)}"), None))
    changed = {key: value for key, value in new.items() if old.get(key) != value}
    if changed:
        args.append(dump_json(changed))
        parts.append((upsert.format(f"${len(args)}"), None))
    return changed
