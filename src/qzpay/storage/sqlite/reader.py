"""SQLite reads of committed data, on a connection of their own (one per thread for SyncBilling),
and how its rows decode: times are integer microseconds, JSON is text."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qzpay._time import from_micros
from qzpay.customers.models import Customer
from qzpay.errors import NotFoundError, StorageError
from qzpay.events import Event, decode_event
from qzpay.storage.base import CustomerFilter, SyncTask, email_key
from qzpay.storage.rows import CUSTOMER_COLUMNS, TASK_COLUMNS, customer_mapper, task_mapper

SELECT = f"SELECT {CUSTOMER_COLUMNS} FROM customers"
customer_from_row = customer_mapper(decode_time=from_micros, decode_json=json.loads)
task_from_row = task_mapper(decode_time=from_micros)


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


def backward_query(
    *, before: str | None, limit: int, event_type: str | None = None
) -> tuple[str, list[object]]:
    """The statement ``list_events_backward`` runs: newest first by seq, read backward from the
    end of the log or from below ``before``'s seq (no rows if ``before`` is unknown), through
    events_by_type when ``event_type`` is given."""
    clauses: list[str] = []
    params: list[object] = []
    if event_type is not None:
        clauses.append("type = ?")
        params.append(event_type)
    if before is not None:
        clauses.append("seq < (SELECT seq FROM events WHERE id = ?)")
        params.append(before)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    sql = f"SELECT type, payload FROM events{where} ORDER BY seq DESC LIMIT ?"
    return sql, [*params, max(0, limit)]


def read_connection(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout = 5000")
    connection.execute("PRAGMA query_only = 1")
    # Reads map the file instead of copying pages through read() calls, and keep a larger page
    # cache: random look-ups in a large file stay close to their cost in a small one.
    connection.execute("PRAGMA mmap_size = 67108864")
    connection.execute("PRAGMA cache_size = -16000")
    return connection


class Reader:
    """Committed-data reads over one connection (each statement is its own read transaction)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection: sqlite3.Connection | None = connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def query(self, sql: str, params: Iterable[object] = ()) -> list[Any]:
        connection = self.connection
        if connection is None:
            raise StorageError("storage is closed", code="storage_closed")
        try:
            return connection.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite error: {exc}") from exc

    def schema_version(self) -> int:
        return int(self.query("PRAGMA user_version")[0][0])

    def get_customer(self, customer_id: str) -> Customer | None:
        rows = self.query(f"{SELECT} WHERE id = ?", (customer_id,))
        return customer_from_row(rows[0]) if rows else None

    def find_customers_by_provider_id(
        self, provider_customer_id: str, *, provider: str | None
    ) -> list[Customer]:
        sql = f"{SELECT} WHERE id IN (SELECT customer_id FROM customer_links WHERE "
        if provider is None:
            rows = self.query(sql + "provider_customer_id = ?)", (provider_customer_id,))
        else:
            rows = self.query(
                sql + "provider = ? AND provider_customer_id = ?)",
                (provider, provider_customer_id),
            )
        return [customer_from_row(row) for row in rows]

    def list_customers(
        self, filters: CustomerFilter, *, limit: int, offset: int
    ) -> tuple[list[Customer], int]:
        where, params = _where(filters)
        rows = self.query(
            f"{SELECT}{where} ORDER BY id DESC LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        if offset == 0 and len(rows) < limit:
            total = len(rows)
        else:
            total = self.query(f"SELECT count(*) FROM customers{where}", params)[0][0]
        return [customer_from_row(row) for row in rows], total

    def scan_customers(
        self, filters: CustomerFilter, *, before_id: str | None, limit: int
    ) -> list[Customer]:
        where, params = _where(filters)
        if before_id is not None:
            where = f"{where} AND id < ?" if where else " WHERE id < ?"
            params.append(before_id)
        rows = self.query(f"{SELECT}{where} ORDER BY id DESC LIMIT ?", [*params, limit])
        return [customer_from_row(row) for row in rows]

    # An event's data decodes as the model of the resource its type names (the type column).
    def get_event(self, event_id: str) -> Event[Any] | None:
        rows = self.query("SELECT type, payload FROM events WHERE id = ?", (event_id,))
        return decode_event(rows[0][1], rows[0][0]) if rows else None

    def list_events(self, *, after: str | None, limit: int) -> list[Event[Any]]:
        if after is None:
            rows = self.query("SELECT type, payload FROM events ORDER BY seq LIMIT ?", (limit,))
        else:
            found = self.query("SELECT seq FROM events WHERE id = ?", (after,))
            if not found:
                raise NotFoundError(f"no event {after!r}")
            rows = self.query(
                "SELECT type, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (found[0][0], limit),
            )
        return [decode_event(row[1], row[0]) for row in rows]

    def list_record_events(self, record_id: str, *, limit: int) -> list[Event[Any]]:
        rows = self.query(  # events_customer_id_seq, read backward
            "SELECT type, payload FROM events WHERE customer_id = ? ORDER BY seq DESC LIMIT ?",
            (record_id, max(0, limit)),
        )
        return [decode_event(row[1], row[0]) for row in rows]

    def list_events_backward(
        self, *, before: str | None, limit: int, event_type: str | None = None
    ) -> list[Event[Any]]:
        sql, params = backward_query(before=before, limit=limit, event_type=event_type)
        rows = self.query(sql, params)
        missing = not rows and before is not None
        if missing and not self.query("SELECT 1 FROM events WHERE id = ?", (before,)):
            raise NotFoundError(f"no event {before!r}")
        return [decode_event(row[1], row[0]) for row in rows]

    def list_sync_tasks(self, *, limit: int) -> list[SyncTask]:
        rows = self.query(
            f"SELECT {TASK_COLUMNS} FROM sync_tasks ORDER BY created_at, customer_id LIMIT ?",
            (limit,),
        )
        return [task_from_row(row) for row in rows]

    def find_sync_task_by_link(
        self, provider: str, provider_id: str, *, resource: str = "customer"
    ) -> SyncTask | None:
        # json_each rather than a JSON path: a provider name needs no quoting as a key here.
        # No index can serve a key chosen per query; the scan is of pending work only.
        rows = self.query(
            f"SELECT {TASK_COLUMNS} FROM sync_tasks WHERE resource = ? AND EXISTS ("
            "SELECT 1 FROM json_each(links) "
            "WHERE key = ? AND value = ?) ORDER BY created_at, customer_id LIMIT 1",
            (resource, provider, provider_id),
        )
        return task_from_row(rows[0]) if rows else None

    def count_sync_tasks(self) -> int:
        return int(self.query("SELECT count(*) FROM sync_tasks")[0][0])
