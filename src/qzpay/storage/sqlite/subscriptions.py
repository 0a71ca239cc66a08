"""Subscriptions on SQLite: mixed into the transaction, the reader and the storage (as
:mod:`qzpay.storage.sqlite.catalog` is for plans and prices).

Conflicts are the unique indexes' (migration 0008): a write runs as one statement and a
unique violation of the idempotency key or of the provider subscription id is mapped to its
ConflictError by the constraint it names; any other integrity error (a missing customer,
price or plan, a duplicate id) stays a storage error. The entitlement read (``grants``) is one
join over the ``subscriptions_granting`` partial index; ``due_subscriptions`` reads the
``subscriptions_due`` one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from qzpay._time import from_micros, to_micros
from qzpay.errors import ConflictError
from qzpay.storage.catalog_rows import update_sql, where
from qzpay.storage.subscription_base import Grant, SubscriptionFilter
from qzpay.storage.subscription_rows import (
    ENDED_STATUSES_SQL,
    GRANTED_STATUSES_SQL,
    SUBSCRIPTION_ROWS,
)
from qzpay.subscriptions.models import Subscription

_ROWS = SUBSCRIPTION_ROWS
from_row = _ROWS.mapper(decode_time=from_micros, decode_json=json.loads)


def _mark(number: int) -> str:
    return f"?{number}"


SELECT = f"SELECT {_ROWS.columns} FROM subscriptions"
_BY_ID = f"{SELECT} WHERE id = ?"
_IDEMPOTENT = (
    f"SELECT {_ROWS.columns}, request_fingerprint FROM subscriptions WHERE idempotency_key = ?"
)
_INSERT = (
    f"INSERT INTO subscriptions ({_ROWS.insert_columns}) "
    f"VALUES ({', '.join('?' for _ in _ROWS.insert_columns.split(','))})"
)
_UPDATE = update_sql("subscriptions", _ROWS.update_columns, _mark)
# The conditions are those of the partial index subscriptions_provider_id (an equality on
# provider_subscription_id implies its IS NOT NULL predicate).
_BY_PROVIDER_ID = f"{SELECT} WHERE provider_subscription_id = ? ORDER BY id"
_BY_PROVIDER = f"{SELECT} WHERE provider_subscription_id = ? AND provider = ?"
_HOLDER = (
    "SELECT id FROM subscriptions WHERE provider_subscription_id = ? AND provider IS ? AND id <> ?"
)
# The status condition is written as the partial indexes' predicates are, so the planner
# matches them (tests/test_sqlite_subscriptions.py checks the plans).
GRANTS = (
    "SELECT s.id, s.plan_id, p.entitlements, p.limits FROM subscriptions AS s "
    "JOIN plans AS p ON p.id = s.plan_id "
    f"WHERE s.customer_id = ? AND s.status IN {GRANTED_STATUSES_SQL} ORDER BY s.id"
)
DUE = (
    f"{SELECT} WHERE provider IS NULL AND status NOT IN {ENDED_STATUSES_SQL} "
    "AND current_period_end <= ? ORDER BY current_period_end, id LIMIT ?"
)

# The messages of SQLITE_CONSTRAINT_UNIQUE naming each mapped constraint (the columns of the
# UNIQUE column and of the unique index subscriptions_provider_id, in their order).
_KEY_TAKEN = "UNIQUE constraint failed: subscriptions.idempotency_key"
_PROVIDER_ID_TAKEN = (
    "UNIQUE constraint failed: subscriptions.provider_subscription_id, subscriptions.provider"
)


def _grant(row: Any) -> Grant:
    return Grant(row[0], row[1], tuple(json.loads(row[2])), json.loads(row[3]))


def _violated(exc: sqlite3.IntegrityError) -> str | None:
    """Which mapped unique constraint ``exc`` reports (None: another integrity error)."""
    if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_CONSTRAINT_UNIQUE:
        return None
    return {_KEY_TAKEN: "idempotency_key_reused", _PROVIDER_ID_TAKEN: "provider_id_taken"}.get(
        str(exc)
    )


class SubscriptionsTransaction:
    """Subscription reads and writes of SQLiteTransaction (which holds the write connection
    as ``_db``; the file's write lock is held, so its reads are as good as row locks)."""

    _db: sqlite3.Connection

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        row = self._db.execute(_BY_ID, (subscription_id,)).fetchone()
        return None if row is None else from_row(row)

    async def find_idempotent_subscription(
        self, idempotency_key: str
    ) -> tuple[Subscription, str] | None:
        row = self._db.execute(_IDEMPOTENT, (idempotency_key,)).fetchone()
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
            encode_time=to_micros,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
        )
        self._write(_INSERT, args, subscription, idempotency_key)

    async def update_subscription(self, before: Subscription, after: Subscription) -> None:
        self._write(_UPDATE, _ROWS.update_args(after, encode_time=to_micros), after, None)

    async def grants(self, customer_id: str) -> list[Grant]:
        return [_grant(row) for row in self._db.execute(GRANTS, (customer_id,))]

    def _write(
        self,
        statement: str,
        args: tuple[object, ...],
        subscription: Subscription,
        idempotency_key: str | None,
    ) -> None:
        """Run one write; a violation of a mapped unique constraint is its ConflictError
        (the idempotency key first, as the other backends check it first, whichever index
        SQLite happened to check first)."""
        try:
            self._db.execute(statement, args)
        except sqlite3.IntegrityError as exc:
            code = _violated(exc)
            if code is None:
                raise
            if code == "idempotency_key_reused" or (
                idempotency_key is not None
                and self._db.execute(
                    "SELECT 1 FROM subscriptions WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
            ):
                raise ConflictError(
                    "idempotency key already used", code="idempotency_key_reused"
                ) from exc
            raise self._provider_id_taken(subscription) from exc

    def _provider_id_taken(self, subscription: Subscription) -> ConflictError:
        remote_id, provider = subscription.provider_subscription_id, subscription.provider
        holder = self._db.execute(_HOLDER, (remote_id, provider, subscription.id)).fetchone()
        by = f" by subscription {holder[0]}" if holder is not None else ""
        return ConflictError(
            f"{provider} subscription {remote_id!r} is already linked{by}",
            code="provider_id_taken",
        )


class SubscriptionsReader:
    """Subscription reads of the Reader (committed data; ``_query`` runs one statement)."""

    def _query(self, sql: str, params: Iterable[object] = ()) -> list[Any]:
        raise NotImplementedError  # pragma: no cover - the Reader's

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        rows = self._query(_BY_ID, (subscription_id,))
        return from_row(rows[0]) if rows else None

    def find_subscriptions_by_provider_id(
        self, provider_subscription_id: str, *, provider: str | None
    ) -> list[Subscription]:
        if provider is None:
            rows = self._query(_BY_PROVIDER_ID, (provider_subscription_id,))
        else:
            rows = self._query(_BY_PROVIDER, (provider_subscription_id, provider))
        return [from_row(row) for row in rows]

    def list_subscriptions(
        self, filters: SubscriptionFilter, *, limit: int, offset: int
    ) -> tuple[list[Subscription], int]:
        params: list[Any] = []
        clauses = where(_ROWS.conditions(filters, params, _mark))
        n = len(params)
        rows = self._query(
            f"{SELECT}{clauses} ORDER BY id DESC LIMIT ?{n + 1} OFFSET ?{n + 2}",
            [*params, limit, offset],
        )
        found = len(rows)
        if found < limit and (found or offset == 0):
            total = offset + found
        else:
            total = int(self._query(f"SELECT count(*) FROM subscriptions{clauses}", params)[0][0])
        return [from_row(row) for row in rows], total

    def scan_subscriptions(
        self, filters: SubscriptionFilter, *, before_id: str | None, limit: int
    ) -> list[Subscription]:
        params: list[Any] = []
        clauses = _ROWS.conditions(filters, params, _mark)
        if before_id is not None:
            params.append(before_id)
            clauses.append(f"id < ?{len(params)}")
        params.append(limit)
        rows = self._query(
            f"{SELECT}{where(clauses)} ORDER BY id DESC LIMIT ?{len(params)}", params
        )
        return [from_row(row) for row in rows]

    def grants(self, customer_id: str) -> list[Grant]:
        return [_grant(row) for row in self._query(GRANTS, (customer_id,))]

    def due_subscriptions(self, now: datetime, *, limit: int) -> list[Subscription]:
        return [from_row(row) for row in self._query(DUE, (to_micros(now), limit))]


class SubscriptionsStorage:
    """The subscription reads of SQLiteStorage, on its event-loop reader."""

    async def _loop_reader(self) -> SubscriptionsReader:
        raise NotImplementedError  # pragma: no cover - the storage's

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        return (await self._loop_reader()).get_subscription(subscription_id)

    async def find_subscriptions_by_provider_id(
        self, provider_subscription_id: str, *, provider: str | None
    ) -> list[Subscription]:
        reader = await self._loop_reader()
        return reader.find_subscriptions_by_provider_id(provider_subscription_id, provider=provider)

    async def list_subscriptions(
        self, filters: SubscriptionFilter, *, limit: int, offset: int
    ) -> tuple[list[Subscription], int]:
        reader = await self._loop_reader()
        return reader.list_subscriptions(filters, limit=limit, offset=offset)

    async def scan_subscriptions(
        self, filters: SubscriptionFilter, *, before_id: str | None, limit: int
    ) -> list[Subscription]:
        reader = await self._loop_reader()
        return reader.scan_subscriptions(filters, before_id=before_id, limit=limit)

    async def grants(self, customer_id: str) -> list[Grant]:
        return (await self._loop_reader()).grants(customer_id)

    async def due_subscriptions(self, now: datetime, *, limit: int) -> list[Subscription]:
        return (await self._loop_reader()).due_subscriptions(now, limit=limit)
