"""What the catalog and subscription mix-ins of a PostgreSQL transaction do alike, over a
:class:`~qzpay.storage.layout.Table` of the record kind: a write sent at once inside the
transaction (its unique violations mapped to ConflictErrors), a read that sees the writes kept
so far, a read for change behind the record's advisory lock, and the idempotent-create look-up.
(The committed reads are :mod:`qzpay.storage.sql_reads`.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel

from qzpay.errors import ConflictError, StorageError
from qzpay.storage.layout import Dialect, Table
from qzpay.storage.postgres.connections import DRIVER_ERRORS, Connection, driver_error
from qzpay.storage.postgres.sql import queue
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


class RecordTransaction:
    """Reads and writes of one record kind inside PostgresTransaction (its ``_begin``,
    ``_flush`` and ``_fetchrow``)."""

    async def _begin(self, first: str | None = None) -> Connection:
        raise NotImplementedError  # pragma: no cover - the transaction's

    async def _flush(self, connection: Connection) -> None:
        raise NotImplementedError  # pragma: no cover - the transaction's

    async def _fetchrow(
        self, query: str, *args: object, queue: str | None = None
    ) -> asyncpg.Record | None:
        raise NotImplementedError  # pragma: no cover - the transaction's

    async def _send(
        self, statement: str, args: Sequence[object], conflicts: Mapping[str, tuple[str, str]]
    ) -> None:
        """Send one write now, inside the transaction, after the writes kept so far; a unique
        violation of one of ``conflicts`` is its ConflictError."""
        connection = await self._begin()
        await self._flush(connection)
        try:
            await connection.execute(statement, *args)
        except asyncpg.UniqueViolationError as exc:
            raise unique_conflict(exc, conflicts) from exc
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc

    async def _fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        """Rows read inside the transaction, after the writes kept so far (so it sees them)."""
        connection = await self._begin()
        await self._flush(connection)
        try:
            return await connection.fetch(query, *args)
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc

    async def _for_update(self, table: Table[R, Any], lock_class: int, record_id: str) -> R | None:
        """Read a record for change: queue on its advisory lock, then lock the row."""
        lock = queue(lock_class, record_id)
        row = await self._fetchrow(f"{table.get} FOR UPDATE", record_id, queue=lock)
        return None if row is None else table.from_row(row)

    async def _idempotent(self, table: Table[R, Any], idempotency_key: str) -> tuple[R, str] | None:
        row = await self._fetchrow(table.idempotent, idempotency_key)
        return None if row is None else (table.from_row(row), row[table.rows.fingerprint_at])
