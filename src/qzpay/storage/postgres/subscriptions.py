"""Subscriptions on PostgreSQL: statements, and the mix-ins that give the transaction and the
storage their subscription methods.

A subscription is one row (its metadata a JSONB copy) with no link table: its one provider
id is a column, unique per provider through the ``subscriptions_provider_id`` index. As for the
catalog, a transaction sends each write at once (after BEGIN), so a write that breaks a unique
index raises its ConflictError from the call, and a later read of the same transaction sees
it. Reading a subscription for change queues on its advisory lock, then locks the row, so one
subscription's events keep commit order. Committed reads are one statement each.

The entitlement read (:data:`GRANTS`) is the hot one: one statement over the customer's
subscriptions in a granting status only (the ``subscriptions_granting`` partial index, whose
predicate it repeats word for word), joined to their plans. asyncpg prepares it once per
connection and reuses it, and a row costs two ``json.loads`` of small documents.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from qzpay.storage.catalog_rows import update_sql, where
from qzpay.storage.postgres.catalog import unique_conflict
from qzpay.storage.postgres.connections import DRIVER_ERRORS, Connection, driver_error
from qzpay.storage.postgres.sql import known_total, queue
from qzpay.storage.rows import Row, as_is
from qzpay.storage.subscription_base import Grant, SubscriptionFilter
from qzpay.storage.subscription_rows import (
    ENDED_STATUSES_SQL,
    GRANTED_STATUSES_SQL,
    SUBSCRIPTION_ROWS,
)
from qzpay.subscriptions.models import Subscription

T = TypeVar("T")

SUBSCRIPTION_LOCK_CLASS = 0x717A_7073  # "qzps": first key of the per-subscription advisory lock

_ROWS = SUBSCRIPTION_ROWS
_CASTS = {"metadata": "::jsonb"}


def _placeholder(number: int) -> str:
    return f"${number}"


def _values(columns: str) -> str:
    names = [name.strip() for name in columns.split(",")]
    return ", ".join(f"${n}{_CASTS.get(name, '')}" for n, name in enumerate(names, start=1))


from_row: Callable[[Row], Subscription] = _ROWS.mapper(decode_time=as_is, decode_json=json.loads)

SELECT = f"SELECT {_ROWS.columns} FROM subscriptions"
COUNT = "SELECT count(*) FROM subscriptions"
GET = f"{SELECT} WHERE id = $1"
GET_FOR_UPDATE = f"{GET} FOR UPDATE"
GET_IDEMPOTENT = (
    f"SELECT {_ROWS.columns}, request_fingerprint FROM subscriptions WHERE idempotency_key = $1"
)
INSERT = (
    f"INSERT INTO subscriptions ({_ROWS.insert_columns}) VALUES ({_values(_ROWS.insert_columns)})"
)
UPDATE = update_sql("subscriptions", _ROWS.update_columns, _placeholder, _CASTS)
# The condition implies the partial unique index's predicate (provider_subscription_id IS NOT
# NULL), so that index answers both.
BY_PROVIDER_ID = f"{SELECT} WHERE provider_subscription_id = $1 ORDER BY id"
BY_PROVIDER = f"{SELECT} WHERE provider_subscription_id = $1 AND provider = $2"
# The predicates repeat the partial indexes' (subscriptions_granting, subscriptions_due) as
# written in migration 0009, so the planner uses them, in generic plans too.
GRANTS = (
    "SELECT s.id, s.plan_id, p.entitlements, p.limits "
    "FROM subscriptions AS s JOIN plans AS p ON p.id = s.plan_id "
    f"WHERE s.customer_id = $1 AND s.status IN {GRANTED_STATUSES_SQL} "
    "ORDER BY s.id"
)
DUE = (
    f"{SELECT} WHERE provider IS NULL AND status NOT IN {ENDED_STATUSES_SQL} "
    "AND current_period_end <= $1 ORDER BY current_period_end, id LIMIT $2"
)

_CONFLICTS: dict[str, tuple[str, str]] = {
    "subscriptions_idempotency_key_key": (
        "idempotency_key_reused",
        "idempotency key already used",
    ),
    "subscriptions_provider_id": (
        "provider_id_taken",
        "the provider subscription id belongs to another subscription",
    ),
}


def grants_from_rows(rows: Sequence[Row]) -> list[Grant]:
    """The rows of :data:`GRANTS` as grants (JSONB arrives as text from asyncpg)."""
    loads = json.loads
    return [Grant(row[0], row[1], tuple(loads(row[2])), loads(row[3])) for row in rows]


def list_query(
    filters: SubscriptionFilter, *, limit: int, offset: int
) -> tuple[str, str, list[Any], list[Any]]:
    """A list page (newest first) and its count, each with its arguments. No OFFSET clause on
    the first page (see sql.list_query)."""
    params: list[Any] = []
    clauses = _ROWS.conditions(filters, params, _placeholder)
    count = f"{COUNT}{where(clauses)}"
    page_params = [*params, limit]
    page = f"{SELECT}{where(clauses)} ORDER BY id DESC LIMIT ${len(page_params)}"
    if offset:
        page_params.append(offset)
        page += f" OFFSET ${len(page_params)}"
    return page, count, page_params, params


def scan_query(
    filters: SubscriptionFilter, *, before_id: str | None, limit: int
) -> tuple[str, list[Any]]:
    """A keyset page: ids below ``before_id``, newest first."""
    params: list[Any] = []
    clauses = _ROWS.conditions(filters, params, _placeholder)
    if before_id is not None:
        params.append(before_id)
        clauses.append(f"id < ${len(params)}")
    params.append(limit)
    return f"{SELECT}{where(clauses)} ORDER BY id DESC LIMIT ${len(params)}", params


class SubscriptionTransaction:
    """Subscription reads and writes of PostgresTransaction (its ``_begin``, ``_flush`` and
    ``_fetchrow``)."""

    async def _begin(self, first: str | None = None) -> Connection:
        raise NotImplementedError  # pragma: no cover - the transaction's

    async def _flush(self, connection: Connection) -> None:
        raise NotImplementedError  # pragma: no cover - the transaction's

    async def _fetchrow(
        self, query: str, *args: object, queue: str | None = None
    ) -> asyncpg.Record | None:
        raise NotImplementedError  # pragma: no cover - the transaction's

    async def _subscription_write(self, statement: str, args: Sequence[object]) -> None:
        """Send one write now, inside the transaction, after the writes kept so far."""
        connection = await self._begin()
        await self._flush(connection)
        try:
            await connection.execute(statement, *args)
        except asyncpg.UniqueViolationError as exc:
            raise unique_conflict(exc, _CONFLICTS) from exc
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        lock = queue(SUBSCRIPTION_LOCK_CLASS, subscription_id)
        row = await self._fetchrow(GET_FOR_UPDATE, subscription_id, queue=lock)
        return None if row is None else from_row(row)

    async def find_idempotent_subscription(
        self, idempotency_key: str
    ) -> tuple[Subscription, str] | None:
        row = await self._fetchrow(GET_IDEMPOTENT, idempotency_key)
        return None if row is None else (from_row(row), row[_ROWS.fingerprint_at])

    async def insert_subscription(
        self,
        subscription: Subscription,
        *,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
    ) -> None:
        args = _ROWS.args(
            subscription,
            encode_time=as_is,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
        )
        await self._subscription_write(INSERT, args)

    async def update_subscription(self, before: Subscription, after: Subscription) -> None:
        if after != before:
            await self._subscription_write(UPDATE, _ROWS.update_args(after, encode_time=as_is))

    async def grants(self, customer_id: str) -> list[Grant]:
        connection = await self._begin()
        await self._flush(connection)  # the writes kept so far, so the read sees them
        try:
            rows = await connection.fetch(GRANTS, customer_id)
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc
        return grants_from_rows(rows)


class SubscriptionStorage:
    """Committed subscription reads of PostgresStorage (its ``_read``: retried on a lost
    connection)."""

    async def _read(self, query: Callable[[Connection], Awaitable[T]]) -> T:
        raise NotImplementedError  # pragma: no cover - the storage's

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        row = await self._read(lambda c: c.fetchrow(GET, subscription_id))
        return None if row is None else from_row(row)

    async def find_subscriptions_by_provider_id(
        self, provider_subscription_id: str, *, provider: str | None
    ) -> list[Subscription]:
        if provider is None:
            rows = await self._read(lambda c: c.fetch(BY_PROVIDER_ID, provider_subscription_id))
        else:
            args = (provider_subscription_id, provider)
            rows = await self._read(lambda c: c.fetch(BY_PROVIDER, *args))
        return [from_row(row) for row in rows]

    async def list_subscriptions(
        self, filters: SubscriptionFilter, *, limit: int, offset: int
    ) -> tuple[list[Subscription], int]:
        page, count, page_params, params = list_query(filters, limit=limit, offset=offset)

        async def query(connection: Connection) -> tuple[list[asyncpg.Record], int]:
            rows = await connection.fetch(page, *page_params)
            total = known_total(len(rows), limit=limit, offset=offset)
            if total is None:
                total = int(await connection.fetchval(count, *params))
            return rows, total

        rows, total = await self._read(query)
        return [from_row(row) for row in rows], total

    async def scan_subscriptions(
        self, filters: SubscriptionFilter, *, before_id: str | None, limit: int
    ) -> list[Subscription]:
        query, args = scan_query(filters, before_id=before_id, limit=limit)
        rows = await self._read(lambda c: c.fetch(query, *args))
        return [from_row(row) for row in rows]

    async def grants(self, customer_id: str) -> list[Grant]:
        return grants_from_rows(await self._read(lambda c: c.fetch(GRANTS, customer_id)))

    async def due_subscriptions(self, now: datetime, *, limit: int) -> list[Subscription]:
        rows = await self._read(lambda c: c.fetch(DUE, now, limit))
        return [from_row(row) for row in rows]
