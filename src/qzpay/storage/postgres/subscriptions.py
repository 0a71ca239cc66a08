"""Subscriptions on PostgreSQL: statements, and the mix-in that gives the transaction its
subscription methods (the storage's are :mod:`qzpay.storage.sql_reads`, over
:data:`STATEMENTS`).

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

from qzpay.storage.layout import ColumnLinked, Table
from qzpay.storage.params import CreateKey
from qzpay.storage.postgres.checked import record_check
from qzpay.storage.postgres.records import POSTGRES, RecordTransaction
from qzpay.storage.rows import as_is
from qzpay.storage.sql_reads import SubscriptionStatements, grants_from_rows
from qzpay.storage.subscription_base import Grant, SubscriptionFilter
from qzpay.storage.subscription_rows import (
    ENDED_STATUSES_SQL,
    GRANTED_STATUSES_SQL,
    SUBSCRIPTION_ROWS,
)
from qzpay.subscriptions.models import Subscription

SUBSCRIPTION_LOCK_CLASS = 0x717A_7073  # "qzps": first key of the per-subscription advisory lock

# Its look-ups by provider id imply the partial unique index's predicate
# (provider_subscription_id IS NOT NULL), so that index answers both.
SUBSCRIPTIONS: Table[Subscription, SubscriptionFilter] = ColumnLinked(
    SUBSCRIPTION_ROWS, POSTGRES, "provider_subscription_id"
)
SELECT = SUBSCRIPTIONS.select
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


SUBSCRIPTION_CHECK = record_check(SUBSCRIPTIONS, SUBSCRIPTION_LOCK_CLASS, _CONFLICTS)
STATEMENTS = SubscriptionStatements(SUBSCRIPTIONS, GRANTS, DUE, encode_time=as_is)
"""What the storage's reads (:mod:`qzpay.storage.sql_reads`) run; JSONB arrives as text."""


class SubscriptionTransaction(RecordTransaction):
    """Subscription reads and writes of PostgresTransaction."""

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        return await self._for_change(SUBSCRIPTIONS, SUBSCRIPTION_CHECK, subscription_id)

    async def find_idempotent_subscription(
        self, idempotency_key: str
    ) -> tuple[Subscription, str] | None:
        return await self._idempotent(SUBSCRIPTIONS, idempotency_key)

    async def insert_subscription(
        self, subscription: Subscription, key: CreateKey | None = None
    ) -> None:
        args = SUBSCRIPTIONS.insert_args(subscription, key)
        await self._insert_record(SUBSCRIPTION_CHECK, subscription, [SUBSCRIPTIONS.insert], args)

    async def update_subscription(self, before: Subscription, after: Subscription) -> None:
        if after != before:
            args = SUBSCRIPTIONS.update_args(after)
            await self._change(SUBSCRIPTION_CHECK, after, [SUBSCRIPTIONS.update], args)

    async def grants(self, customer_id: str) -> list[Grant]:
        return grants_from_rows(await self._fetch(GRANTS, customer_id))
