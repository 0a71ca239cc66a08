"""What the catalog and subscription mix-ins of a PostgreSQL transaction do alike, over a
:class:`~qzpay.storage.layout.Table` of the record kind: a write sent at once inside the
transaction (its unique violations mapped to ConflictErrors), a read that sees the writes kept
so far, a read for change and the change it is read for, and the idempotent-create look-up.
(The committed reads are :mod:`qzpay.storage.sql_reads`.)

A read for change queues on the record's advisory lock, then locks the row; in an optimistic
transaction the first one reads without BEGIN or lock instead, and the change becomes a checked
statement kept for the commit with its events (qzpay.storage.postgres.checked): two round trips
for a change with no other read, instead of five (BEGIN with the lock, the locked read, the
update, the events, COMMIT).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel

from qzpay.errors import ConflictError, StorageError
from qzpay.storage.layout import Dialect, Table
from qzpay.storage.postgres.checked import checked_write
from qzpay.storage.postgres.commit import TransactionCore
from qzpay.storage.postgres.connections import DRIVER_ERRORS, driver_error
from qzpay.storage.postgres.sql import Check, queue
from qzpay.storage.rows import as_is

R = TypeVar("R", bound=BaseModel)

POSTGRES = Dialect("$", "::jsonb", encode_time=as_is, decode_time=as_is)
"""asyncpg passes datetimes as they are and JSONB as text (cast from a text argument)."""


def unique_conflict(
    exc: asyncpg.UniqueViolationError, known_constraints: Mapping[str, tuple[str, str]]
) -> Exception:
    """The ConflictError a unique constraint of ``known_constraints`` (name -> code, message)
    stands for; a StorageError for any other."""
    known = known_constraints.get(exc.constraint_name or "")
    if known is None:
        return StorageError(f"PostgreSQL error: {exc!r}")
    code, message = known
    return ConflictError(message, code=code)


def with_statement(statements: Sequence[str], *, versioned: bool = False) -> str:
    """Several writes over the same arguments as one statement; ``versioned``: it returns the
    version (xmin) of the row the first one writes."""
    first, *rest = statements
    if versioned:
        first += " RETURNING xmin"
    if not rest:
        return first
    ctes = ", ".join(f"w{index} AS ({sql})" for index, sql in enumerate((first, *rest)))
    return f"WITH {ctes} {'SELECT xmin FROM w0' if versioned else 'SELECT 1'}"


class RecordTransaction(TransactionCore):
    """Reads and writes of the record kinds inside PostgresTransaction."""

    async def _send(
        self, statement: str, args: Sequence[object], conflicts: Mapping[str, tuple[str, str]]
    ) -> object:
        """Send one write now, inside the transaction, after the writes kept so far; what its
        first column returns. A unique violation of one of ``conflicts`` is its ConflictError."""
        connection = await self._begin()
        await self._flush(connection)
        try:
            return await connection.fetchval(statement, *args)
        except asyncpg.UniqueViolationError as exc:
            raise unique_conflict(exc, conflicts) from exc
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc

    async def _insert_record(
        self,
        check: Check,
        record: BaseModel,
        statements: Sequence[str],
        args: Sequence[object],
    ) -> None:
        """Insert a record now (a taken key raises from the call). Once the transaction has
        committed, its version is remembered, unless the transaction changed it again."""
        version = await self._send(
            with_statement(statements, versioned=True), args, check.conflicts
        )
        assert isinstance(version, int)
        self._created[str(args[0])] = (record, version)

    async def _fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        """Rows read inside the transaction, after the writes kept so far (so it sees them)."""
        connection = await self._begin()
        await self._flush(connection)
        try:
            return await connection.fetch(query, *args)
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc

    async def _for_change(self, table: Table[R, Any], check: Check, record_id: str) -> R | None:
        """Read a record for change (see the module docstring)."""
        if self._may_read_unlocked():
            return await self._read_versioned(check, record_id, table.rows.model, table.from_row)
        lock = queue(check.lock_class, record_id)
        row = await self._fetchrow(f"{table.get} FOR UPDATE", record_id, queue=lock)
        return None if row is None else table.from_row(row)

    def _checks(self, record_id: str) -> bool:
        """Whether the change of ``record_id`` is a checked one (read without a lock), so its
        side-table writes must be made ``checked.only_if_written``."""
        return record_id in self._versions

    async def _change(
        self, check: Check, after: BaseModel, statements: Sequence[str], args: Sequence[object]
    ) -> None:
        """Write ``after``, the change of a record read for change (the update first, the
        record id its first argument): at once if the record is locked, else as a checked
        write kept for the commit."""
        record_id = str(args[0])
        self._created.pop(record_id, None)  # its version no longer names one state
        version = self._versions.pop(record_id, None)
        if version is None:
            self._recent.forget(record_id)  # changed in BEGIN: its version names no one state
            await self._send(with_statement(statements), args, check.conflicts)
            return
        self._recalled.pop(record_id, None)  # the checked statement compares it
        self._checked_after = after
        write = checked_write(check, statements, args, version=version)
        await self._write(write, may_conflict=False)

    async def _idempotent(self, table: Table[R, Any], idempotency_key: str) -> tuple[R, str] | None:
        row = await self._fetchrow(table.idempotent, idempotency_key)
        return None if row is None else (table.from_row(row), row[table.rows.fingerprint_at])
