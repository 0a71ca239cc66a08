"""What the catalog and subscription mix-ins of a SQLite transaction do alike, over a
:class:`~qzpay.storage.layout.Table` of the record kind: its reads (its write connection holds
the file's write lock, so they are as good as row locks) and the idempotency key check. (The
committed reads are :mod:`qzpay.storage.sql_reads`.)
"""

from __future__ import annotations

import sqlite3
from typing import Any, TypeVar

from pydantic import BaseModel

from qzpay._time import from_micros, to_micros
from qzpay.errors import ConflictError
from qzpay.storage.layout import Dialect, Table

R = TypeVar("R", bound=BaseModel)

SQLITE = Dialect("?", "", encode_time=to_micros, decode_time=from_micros)
"""SQLite keeps times as integer microseconds and JSON as text."""


class RecordWrites:
    """Reads of one record kind inside SQLiteTransaction (which holds the write connection as
    ``_db``)."""

    _db: sqlite3.Connection

    def _row(self, table: Table[R, Any], statement: str, key: str) -> R | None:
        row = self._db.execute(statement, (key,)).fetchone()
        return None if row is None else table.from_row(row)

    def _idempotent(self, table: Table[R, Any], idempotency_key: str) -> tuple[R, str] | None:
        row = self._db.execute(table.idempotent, (idempotency_key,)).fetchone()
        return None if row is None else (table.from_row(row), row[table.rows.fingerprint_at])

    def _check_key(self, table: Table[Any, Any], idempotency_key: str | None) -> None:
        """ConflictError ``idempotency_key_reused`` if a record of the kind holds the key."""
        if idempotency_key is not None and self._key_holder(table, idempotency_key):
            raise ConflictError("idempotency key already used", code="idempotency_key_reused")

    def _key_holder(self, table: Table[Any, Any], idempotency_key: str) -> bool:
        statement = f"SELECT 1 FROM {table.table} WHERE idempotency_key = ?"
        return self._db.execute(statement, (idempotency_key,)).fetchone() is not None
