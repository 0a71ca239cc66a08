"""How a PostgreSQL transaction reaches the server: its connection, the writes it keeps until
the next read or the commit (then sent as one statement), the commit and the rollback. A create
is one round trip instead of four; in an optimistic transaction an update or delete is one
checked statement, after a read unless the customer was seen recently
(qzpay.storage.postgres.recent). What is retried after a lost connection, and why, is in the
package docstring; the Transaction protocol's methods are in qzpay.storage.postgres.transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self, TypeVar

import asyncpg
from pydantic import BaseModel

from qzpay.customers.models import Customer
from qzpay.errors import StorageError
from qzpay.storage.base import WriteConflict
from qzpay.storage.postgres import sql
from qzpay.storage.postgres.checked import changed, checked_statement, split_checked
from qzpay.storage.postgres.connections import (
    CONNECTION_ERRORS,
    DRIVER_ERRORS,
    RESEND_ERRORS,
    Connection,
    Connections,
    driver_error,
    unavailable,
)
from qzpay.storage.postgres.recent import RecentVersions
from qzpay.storage.postgres.sql import Check, Write

M = TypeVar("M", bound=BaseModel)


def _resend_failed(exc: BaseException) -> StorageError:
    """A commit whose connection was lost, and whose resending failed too: its outcome is
    unknown."""
    return StorageError(
        "the connection was lost while committing and sending the change again failed, "
        f"so it may or may not have been saved: {exc!r}",
        code="storage_unavailable",
    )


def _refused(write: Write) -> WriteConflict:
    assert write.checked is not None
    return changed(write.checked, write.args[0])


class TransactionCore:
    """One transaction on one connection (PostgresTransaction's connection, commit and
    rollback); also its own context manager.

    Writes that cannot conflict wait in ``_pending`` until the next read or the commit, which
    send them as one statement. The statements of one WITH all see the same snapshot, so one
    statement holds at most one customer write (plus any events).

    ``optimistic``: ``get_customer`` outside BEGIN reads without a lock, noting the row's
    version, and the customer's update becomes a checked one (see sql.checked_update), kept for
    the commit like any other write (provider-link conflicts included); if the row changed
    meanwhile the commit raises WriteConflict and writes nothing. A customer in ``recent``
    (qzpay.storage.postgres.recent) is not read at all; its version is checked by the update or,
    if nothing checks it, before the transaction commits or raises.
    """

    def __init__(
        self,
        opened: Callable[[], Awaitable[Connections]],
        *,
        optimistic: bool = False,
        recent: RecentVersions | None = None,
    ) -> None:
        self._opened = opened  # the storage's connections, once it is open
        self._connections: Connections | None = None
        self._connection: Connection | None = None
        self._begun = False
        self._pending: list[Write] = []
        self._optimistic = optimistic
        self._versions: dict[str, int] = {}  # records read without a lock: their xmin
        self._read_unlocked: Check | None = None  # the kind of the one record read so
        self._recent = RecentVersions(0) if recent is None else recent
        self._recalled: dict[str, int] = {}  # taken from ``recent``, not yet checked
        self._checked_after: BaseModel | None = None  # what a checked update writes
        self._inserted: list[Customer] = []  # sent at commit, without BEGIN
        self._created: dict[str, tuple[BaseModel, int]] = {}  # records inserted after BEGIN
        self._current: tuple[BaseModel, int] | None = None  # found by a refused check

    async def __aenter__(self) -> Self:
        self._connections = await self._opened()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        reuse = False
        try:
            if exc_type is None:
                try:
                    await self._confirm_recalled()
                    await self._commit()
                    for record, version in self._created.values():
                        self._recent.remember(record, version)
                except WriteConflict:
                    self._forget_reads()
                    if self._current is not None:  # what the refused check found instead
                        self._recent.remember(*self._current)
                    await self._rollback()
                    reuse = True
                    raise
            else:
                await self._rollback()
            # After a cancellation the connection may still be busy cancelling: drop it.
            reuse = exc_type is None or issubclass(exc_type, Exception)
        finally:
            await self._release(reuse=reuse)
        if exc_type is not None and self._recalled:
            await self._confirm_raised(exc_type)

    async def _confirm_recalled(self) -> None:
        """Raise WriteConflict if a record taken from ``recent`` and not checked by an update
        (a no-op, a delete of a deleted customer) is no longer at its version."""
        kind = self._read_unlocked
        for record_id, version in self._recalled.items():
            assert kind is not None  # a recalled record is the transaction's unlocked read
            if self._begun:
                connection = await self._acquire()
                try:
                    current = await connection.fetchval(kind.version, record_id)
                except DRIVER_ERRORS as exc:
                    raise driver_error(exc) from exc
            else:
                row = await self._fetchrow_unlocked(kind.version, record_id)
                current = None if row is None else row[0]
            if current != version:
                raise WriteConflict(
                    f"{kind.noun} {record_id} changed since it was last seen; read it again"
                )
        self._recalled.clear()

    async def _confirm_raised(self, exc_type: type[BaseException]) -> None:
        """The block raised after reading a customer from ``recent``: if that customer has
        changed, what it raised may come from the stale copy, so raise WriteConflict instead
        (the caller retries from a fresh read); otherwise the error stands."""
        if not issubclass(exc_type, Exception) or issubclass(exc_type, WriteConflict):
            self._forget_reads()
            return
        try:
            await self._confirm_recalled()
        except WriteConflict:
            self._forget_reads()
            raise
        except Exception:  # cannot tell: keep the error raised, read afresh next time
            self._forget_reads()
        finally:
            await self._release(reuse=True)

    def _forget_reads(self) -> None:
        """The customers this transaction read may have changed: read them afresh next time."""
        for customer_id in (*self._versions, *self._recalled):
            self._recent.forget(customer_id)
        if self._checked_after is not None:
            self._recent.forget(getattr(self._checked_after, "id"))  # noqa: B009
        self._recalled.clear()

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

    def _may_read_unlocked(self) -> bool:
        """Whether the next read for change may skip the lock: in an optimistic transaction,
        the first read only, before anything was written or sent (checked.py's docstring)."""
        return (
            self._optimistic
            and not self._begun
            and not self._pending
            and self._read_unlocked is None
        )

    async def _read_versioned(
        self, check: Check, record_id: str, model: type[M], from_row: Callable[[Any], M]
    ) -> M | None:
        """Read a record without a lock (``_may_read_unlocked``), noting its version for the
        checked write (or for the lock a later read takes first): the copy in ``recent`` if
        there is one (confirmed later, see _confirm_recalled), else the row, then remembered."""
        self._read_unlocked = check
        recalled = self._recent.recall_record(record_id, model)
        if recalled is not None:
            record, version = recalled
            self._versions[record_id] = self._recalled[record_id] = version
            return record
        row = await self._fetchrow_unlocked(check.read, record_id)
        if row is None:
            return None
        self._versions[record_id] = row["xmin"]
        record = from_row(row)
        self._recent.remember(record, row["xmin"])
        return record

    def _held(self) -> tuple[Check, str, int] | None:
        """The record read without a lock and not yet written through a check."""
        if self._read_unlocked is None or not self._versions:
            return None
        record_id, version = next(iter(self._versions.items()))
        return self._read_unlocked, record_id, version

    async def _lock_held(self, connection: Connection, held: tuple[Check, str, int]) -> None:
        """Lock the row read without a lock (its advisory lock was taken with BEGIN) and check
        that it is still the version read; from here it is changed like any locked row."""
        check, record_id, version = held
        try:
            current = await connection.fetchval(f"{check.version} FOR UPDATE", record_id)
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc
        self._versions.pop(record_id, None)
        self._recalled.pop(record_id, None)
        if current != version:
            raise changed(check, record_id)

    async def _begin(self, first: str | None = None) -> Connection:
        """BEGIN, sent with ``first`` (a statement without parameters) in one round trip; a
        record read without a lock is locked first (see _lock_held)."""
        if self._begun:
            assert self._connection is not None
            if first is not None:
                try:
                    await self._connection.execute(first)
                except DRIVER_ERRORS as exc:
                    raise driver_error(exc) from exc
            return self._connection
        held = self._held()
        if held is not None:
            begin = f"BEGIN; {sql.queue(held[0].lock_class, held[1])}"
        else:
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
        if held is not None:
            await self._lock_held(connection, held)
            if first is not None:
                await self._begin(first)
        return connection

    async def _flush(self, connection: Connection) -> None:
        """Send the pending writes, in order, as one statement inside the transaction."""
        if self._pending:
            pending, self._pending = self._pending, []
            await self._execute(connection, pending)

    async def _execute(self, connection: Connection, writes: Sequence[Write]) -> None:
        checked, writes = split_checked(writes)
        if checked:
            # Inside BEGIN: the transaction may change the row again under the same xmin.
            self._recent.forget(str(checked[0].args[0]))
            try:
                result = await self._execute_checked(connection, checked)
            except CONNECTION_ERRORS as exc:
                raise driver_error(exc) from exc
            if result["written"] is None:
                raise _refused(checked[0])
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
    async def _execute_checked(connection: Connection, writes: Sequence[Write]) -> asyncpg.Record:
        """Send a checked update with its events; its result row (sql.checked_statement:
        ``written`` None if the row had changed). A lost connection is raised as the driver's
        error."""
        statement, args = checked_statement(writes)
        try:
            result = await connection.fetchrow(statement, *args)
            assert result is not None  # the statement always returns one row
            return result
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
            checked, rest = split_checked(self._pending)
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
            result = await self._execute_checked(connection, writes)
        except asyncio.CancelledError:
            self._recent.forget(str(writes[0].args[0]))
            await asyncio.shield(self._cancel_on_server(connection))
            raise
        except CONNECTION_ERRORS as exc:
            lost: BaseException = exc
        else:
            if result["written"] is None:
                # The row as the statement found it: the retry starts from it. Unless it is the
                # version we held: the statement's snapshot predates a writer that committed
                # while it waited for the lock, so the retry must read.
                tried = writes[0].args[-1]  # checked_write puts the version last
                check = writes[0].checked
                if check is not None and result["id"] is not None and result["version"] != tried:
                    self._current = (check.from_row(result), result["version"])
                raise _refused(writes[0])
            if self._checked_after is not None:
                self._recent.remember(self._checked_after, result["written"])
            return
        self._recent.forget(str(writes[0].args[0]))
        # It may have committed before the connection dropped. Sending it again is safe: if it
        # did, the row is no longer at the version read, and its event tells it apart from a
        # change by another writer (a copy still running on the old connection holds the
        # customer's advisory lock, so the second one waits for its outcome).
        await self._replace_connection()
        try:
            connection = await self._acquire()
            if (await self._execute_checked(connection, writes))["written"] is not None:
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
        raise _refused(writes[0])

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
        """Send the pending writes as one statement, which commits on its own; a customer it
        creates is remembered (``recent``) at the version it returns."""
        created = self._inserted[0] if len(self._inserted) == 1 else None
        statement, args = sql.statement(self._pending, versioned=created is not None)
        connection = await self._acquire()
        try:
            if created is None:
                await connection.execute(statement, *args)
            else:
                self._recent.remember(created, await connection.fetchval(statement, *args))
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
