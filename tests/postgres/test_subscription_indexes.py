"""The subscription reads use their indexes on a table of 60k subscriptions (most of them
ended, as a long-lived database's are): the entitlement read only the customer's granting
subscriptions (the ``subscriptions_granting`` partial index), the due read only provider-less
live ones by period end (``subscriptions_due``), the lists and look-ups their own.

As in test_indexes, each plan is checked both as PostgreSQL first plans the query (with the
values) and as it plans a prepared statement it reuses (a generic plan, blind to the values),
since asyncpg prepares and caches every statement. The statement is PREPAREd and EXPLAINed
through EXECUTE: EXPLAIN of a statement with bound parameters plans it with their values
whatever plan_cache_mode says, while a prepared statement's generic plan is the one that must
still find the partial indexes (their predicates are literals in the SQL for this reason).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from qzpay.catalog.models import Plan, Price, plan_ids, price_ids
from qzpay.ids import customer_ids
from qzpay.storage.base import Grant, SubscriptionFilter
from qzpay.storage.postgres import PostgresStorage
from qzpay.storage.postgres import subscriptions as statements
from qzpay.subscriptions.models import subscription_ids

pytestmark = pytest.mark.postgres

PLANS = ("force_custom_plan", "force_generic_plan")
CUSTOMERS = 12_000
PER_CUSTOMER = 5
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Per customer: one live subscription (granting for most customers) and four ended or
# non-granting ones.
HISTORY = ("canceled", "incomplete_expired", "canceled", "unpaid")
LIVE = ("active", "trialing", "past_due", "paused", "incomplete", "active")


class Loaded:
    def __init__(self) -> None:
        self.customers: list[str] = []
        self.plans: list[Plan] = []
        self.prices: list[Price] = []
        self.subscriptions: list[tuple[Any, ...]] = []  # rows as copied, oldest id first


COLUMNS = [
    "id",
    "customer_id",
    "price_id",
    "plan_id",
    "quantity",
    "status",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
    "provider",
    "provider_subscription_id",
    "metadata",
    "created_at",
    "updated_at",
]


@pytest.fixture
async def loaded(pg_url: str, admin: asyncpg.Connection) -> Loaded:
    made = Loaded()
    made.plans = [
        Plan(
            id=plan_ids.new(),
            key=key,
            name=key,
            entitlements=entitlements,
            limits={"seats": seats},
            metadata={},
            provider_plan_ids={},
            created_at=T0,
            updated_at=T0,
        )
        for key, entitlements, seats in (
            ("free", ["api"], 1),
            ("pro", ["api", "sso"], 5),
            ("team", ["api", "sso", "audit"], 50),
        )
    ]
    made.prices = [
        Price(
            id=price_ids.new(),
            plan_id=plan.id,
            currency="USD",
            unit_amount=0,
            interval="month",
            metadata={},
            provider_price_ids={},
            created_at=T0,
            updated_at=T0,
        )
        for plan in made.plans
    ]
    storage = PostgresStorage(pg_url)
    try:
        async with storage.transaction() as tx:
            for plan in made.plans:
                await tx.insert_plan(plan)
            for price in made.prices:
                await tx.insert_price(price)
    finally:
        await storage.close()

    made.customers = [customer_ids.new() for _ in range(CUSTOMERS)]
    customers = []
    for i, customer_id in enumerate(made.customers):
        email = f"user{i}@example.com"
        customers.append((customer_id, email, email, "{}", "{}", T0, T0))
    await admin.copy_records_to_table(
        "customers",
        records=customers,
        columns=[
            "id",
            "email",
            "email_key",
            "metadata",
            "provider_ids",
            "created_at",
            "updated_at",
        ],
    )
    rows: list[tuple[Any, ...]] = []
    for i, customer_id in enumerate(made.customers):
        for j, status in enumerate((*HISTORY, LIVE[i % len(LIVE)])):
            n = i * PER_CUSTOMER + j
            price = made.prices[n % len(made.prices)]
            end = T0 + timedelta(minutes=n)
            billed = n % 2 == 0
            rows.append(
                (
                    subscription_ids.new(),
                    customer_id,
                    price.id,
                    price.plan_id,
                    1,
                    status,
                    end - timedelta(days=30),
                    end,
                    False,
                    "stripe" if billed else None,
                    f"sub_s{n}" if billed else None,
                    json.dumps({"n": str(n)}),
                    T0,
                    T0,
                )
            )
    await admin.copy_records_to_table("subscriptions", records=rows, columns=COLUMNS)
    await admin.execute("ANALYZE customers, plans, prices, subscriptions")
    made.subscriptions = rows
    return made


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plan(admin: asyncpg.Connection, mode: str, sql: str, args: list[Any]) -> list[Any]:
    """The plan of ``sql`` as a prepared statement executed with ``args``, under ``mode``."""
    await admin.execute(f"SET plan_cache_mode = {mode}")
    name = f"q_{secrets.token_hex(4)}"
    await admin.execute(f"PREPARE {name} AS {sql}")
    try:
        literals = [await admin.fetchval("SELECT quote_literal($1::text)", str(a)) for a in args]
        explain = f"EXPLAIN (FORMAT JSON) EXECUTE {name}({', '.join(literals)})"
        (document,) = json.loads(await admin.fetchval(explain))
    finally:
        await admin.execute(f"DEALLOCATE {name}")
    return list(_nodes(document["Plan"]))


def _scans(nodes: list[Any], table: str) -> list[Any]:
    return [node for node in nodes if node.get("Relation Name") == table]


def _assert_uses(nodes: list[Any], *indexes: str, sorted_by_index: bool) -> None:
    """The subscriptions are read through ``indexes`` only (any of them), never scanned."""
    scans = _scans(nodes, "subscriptions")
    assert scans, nodes
    assert all(node["Node Type"] != "Seq Scan" for node in scans), nodes
    assert {node.get("Index Name") for node in scans} <= set(indexes), nodes
    if sorted_by_index:
        assert all(node["Node Type"] != "Sort" for node in nodes), nodes


class TestAtScale:
    async def test_reads_use_their_indexes_and_answer_correctly(
        self, loaded: Loaded, admin: asyncpg.Connection, pg_url: str
    ) -> None:
        for mode in PLANS:
            await self._check_plans(loaded, admin, mode)
        await self._check_answers(loaded, pg_url)

    @staticmethod
    async def _check_plans(loaded: Loaded, admin: asyncpg.Connection, mode: str) -> None:
        customer = loaded.customers[CUSTOMERS // 2]
        now = T0 + timedelta(minutes=len(loaded.subscriptions) // 2)
        # The entitlement read: the partial index only (never the customer's ended history,
        # nor a scan of every subscription); a handful of rows, sorted after.
        nodes = await _plan(admin, mode, statements.GRANTS, [customer])
        _assert_uses(nodes, "subscriptions_granting", sorted_by_index=False)
        (scan,) = _scans(nodes, "subscriptions")
        bound = "$1" if mode == "force_generic_plan" else f"'{customer}'::text"
        assert scan["Index Cond"] == f"(customer_id = {bound})", scan  # generic: blind to it
        # The due read: the partial index gives the order, so the LIMIT stops early.
        nodes = await _plan(admin, mode, statements.DUE, [now, 100])
        _assert_uses(nodes, "subscriptions_due", sorted_by_index=True)
        # The lists and look-ups.
        checks: list[tuple[tuple[str, list[Any]], tuple[str, ...]]] = [
            (_page(SubscriptionFilter(customer_id=customer)), ("subscriptions_customer",)),
            # A common status: walking the newest ids until 20 match may be the cheaper plan.
            (
                _page(SubscriptionFilter(status="paused")),
                ("subscriptions_status", "subscriptions_pkey"),
            ),
            (
                _page(SubscriptionFilter(plan_id=loaded.plans[0].id)),
                ("subscriptions_plan", "subscriptions_pkey"),
            ),
            (_page(SubscriptionFilter()), ("subscriptions_pkey",)),
            (
                statements.SUBSCRIPTIONS.scan(
                    SubscriptionFilter(), before_id=loaded.subscriptions[999][0], limit=100
                ),
                ("subscriptions_pkey",),
            ),
        ]
        for (sql, args), indexes in checks:
            _assert_uses(await _plan(admin, mode, sql, args), *indexes, sorted_by_index=True)
        # Look-ups of one row (one per provider: sorting them costs nothing).
        lookups: list[tuple[str, list[Any], str]] = [
            (statements.SUBSCRIPTIONS.by_provider_id, ["sub_s100"], "subscriptions_provider_id"),
            (
                statements.SUBSCRIPTIONS.by_provider,
                ["sub_s100", "stripe"],
                "subscriptions_provider_id",
            ),
            (statements.SUBSCRIPTIONS.get, [loaded.subscriptions[7][0]], "subscriptions_pkey"),
        ]
        for sql, args, index in lookups:
            _assert_uses(await _plan(admin, mode, sql, args), index, sorted_by_index=False)

    @staticmethod
    async def _check_answers(loaded: Loaded, pg_url: str) -> None:
        plans = {plan.id: plan for plan in loaded.plans}
        storage = PostgresStorage(pg_url)
        try:
            for at in (0, 1, 2, 3, CUSTOMERS - 1):
                customer = loaded.customers[at]
                expected = [
                    Grant(row[0], row[3], tuple(plans[row[3]].entitlements), plans[row[3]].limits)
                    for row in sorted(loaded.subscriptions)
                    if row[1] == customer and row[5] in ("trialing", "active", "past_due")
                ]
                assert await storage.grants(customer) == expected
                assert len(expected) == (
                    0 if LIVE[at % len(LIVE)] in ("paused", "incomplete") else 1
                )
            now = T0 + timedelta(minutes=100)
            due = [
                row[0]
                for row in loaded.subscriptions
                if row[9] is None
                and row[5] not in ("canceled", "incomplete_expired")
                and row[7] <= now
            ]
            found = await storage.due_subscriptions(now, limit=1000)
            assert [s.id for s in found] == due
            assert due
        finally:
            await storage.close()


def _page(filters: SubscriptionFilter) -> tuple[str, list[Any]]:
    page = statements.SUBSCRIPTIONS.page(filters, limit=20, offset=0)
    return page.query, page.params
