"""Subscriptions on SQLite: the transaction's mix-in, and the statements of the storage's
reads (:data:`STATEMENTS`, read by :mod:`qzpay.storage.sql_reads`), as
:mod:`qzpay.storage.sqlite.catalog` is for plans and prices.

Conflicts are the unique indexes' (migration 0008): a write runs as one statement and a
unique violation of the idempotency key or of the provider subscription id is mapped to its
ConflictError by the constraint it names; any other integrity error (a missing customer,
price or plan, a duplicate id) stays a storage error. The entitlement read (``grants``) is one
join over the ``subscriptions_granting`` partial index; ``due_subscriptions`` reads the
``subscriptions_due`` one.
"""

from __future__ import annotations

import sqlite3

from qzpay._time import to_micros
from qzpay.errors import ConflictError
from qzpay.storage.layout import ColumnLinked, Table
from qzpay.storage.params import CreateKey
from qzpay.storage.sql_reads import SubscriptionStatements, grants_from_rows
from qzpay.storage.sqlite.records import SQLITE, RecordWrites
from qzpay.storage.subscription_base import Grant, SubscriptionFilter
from qzpay.storage.subscription_rows import (
    ENDED_STATUSES_SQL,
    GRANTED_STATUSES_SQL,
    SUBSCRIPTION_ROWS,
)
from qzpay.subscriptions.models import Subscription

# Its look-ups by provider id are answered by the partial index subscriptions_provider_id (an
# equality on provider_subscription_id implies its IS NOT NULL predicate).
SUBSCRIPTIONS: Table[Subscription, SubscriptionFilter] = ColumnLinked(
    SUBSCRIPTION_ROWS, SQLITE, "provider_subscription_id"
)
SELECT = SUBSCRIPTIONS.select
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


STATEMENTS = SubscriptionStatements(SUBSCRIPTIONS, GRANTS, DUE, encode_time=to_micros)
"""What the storage's reads (:mod:`qzpay.storage.sql_reads`) run."""


def _violated(exc: sqlite3.IntegrityError) -> str | None:
    """Which mapped unique constraint ``exc`` reports (None: another integrity error)."""
    if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_CONSTRAINT_UNIQUE:
        return None
    return {_KEY_TAKEN: "idempotency_key_reused", _PROVIDER_ID_TAKEN: "provider_id_taken"}.get(
        str(exc)
    )


class SubscriptionsTransaction(RecordWrites):
    """Subscription reads and writes of SQLiteTransaction (the file's write lock is held, so
    its reads are as good as row locks)."""

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        return self._row(SUBSCRIPTIONS, SUBSCRIPTIONS.get, subscription_id)

    async def find_idempotent_subscription(
        self, idempotency_key: str
    ) -> tuple[Subscription, str] | None:
        return self._idempotent(SUBSCRIPTIONS, idempotency_key)

    async def insert_subscription(
        self, subscription: Subscription, key: CreateKey | None = None
    ) -> None:
        args = SUBSCRIPTIONS.insert_args(subscription, key)
        self._write(SUBSCRIPTIONS.insert, args, subscription, key)

    async def update_subscription(self, before: Subscription, after: Subscription) -> None:
        self._write(SUBSCRIPTIONS.update, SUBSCRIPTIONS.update_args(after), after, None)

    async def grants(self, customer_id: str) -> list[Grant]:
        return grants_from_rows(self._db.execute(GRANTS, (customer_id,)))

    def _write(
        self,
        statement: str,
        args: tuple[object, ...],
        subscription: Subscription,
        key: CreateKey | None,
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
                key is not None and self._key_holder(SUBSCRIPTIONS, key.idempotency_key)
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
