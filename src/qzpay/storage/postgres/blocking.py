"""Customer reads on the calling thread through psycopg, for SyncBilling: asyncpg has no
blocking API, and a hop to the event-loop thread and back costs more than the query."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Sequence
from typing import Any

from qzpay.customers.models import Customer
from qzpay.errors import StorageError
from qzpay.storage.base import CustomerFilter
from qzpay.storage.layout import known_total
from qzpay.storage.postgres import sql
from qzpay.storage.postgres.connections import driver_error, unavailable
from qzpay.storage.rows import as_is, customer_mapper

_PLACEHOLDER = re.compile(r"\$\d+")

# psycopg rows: times as datetimes, JSONB already decoded.
_customer_from_row = customer_mapper(decode_time=as_is, decode_json=as_is)


def _psycopg_sql(query: str) -> str:
    """asyncpg's ``$n`` placeholders as psycopg's ``%s`` (each is used once, in order)."""
    return _PLACEHOLDER.sub("%s", query.replace("%", "%%"))


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
            raise unavailable(exc, "connect to PostgreSQL") from exc
        with self._lock:
            self._all.append(connection)
        self._local.connection = connection
        return connection

    def _fetch(self, query: str, params: Sequence[object]) -> list[Any]:
        import psycopg

        query = _psycopg_sql(query)
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
                    raise driver_error(exc) from exc
            except psycopg.Error as exc:
                raise StorageError(f"PostgreSQL error: {exc!r}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def get_customer(self, customer_id: str) -> Customer | None:
        rows = self._fetch(sql.GET, [customer_id])
        return _customer_from_row(rows[0]) if rows else None

    def find_customers_by_provider_id(
        self, provider_customer_id: str, *, provider: str | None
    ) -> list[Customer]:
        query, params = sql.provider_query(provider_customer_id, provider)
        return [_customer_from_row(row) for row in self._fetch(query, params)]

    def list_customers(
        self, filters: CustomerFilter, *, limit: int, offset: int
    ) -> tuple[list[Customer], int]:
        query, params = sql.list_query(filters, limit=limit, offset=offset)
        rows = self._fetch(query, params)
        total = known_total(len(rows), limit=limit, offset=offset)
        if total is None:
            count, count_params = sql.count_query(filters)
            total = int(self._fetch(count, count_params)[0][0])
        return [_customer_from_row(row) for row in rows], total

    def scan_customers(
        self, filters: CustomerFilter, *, before_id: str | None, limit: int
    ) -> list[Customer]:
        query, params = sql.scan_query(filters, before_id=before_id, limit=limit)
        return [_customer_from_row(row) for row in self._fetch(query, params)]
