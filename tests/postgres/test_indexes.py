"""Every documented look-up uses an index on a table of 100k customers, so it stays flat.

The plans are checked both as PostgreSQL first plans a query (with the values) and as it
plans a prepared statement it reuses (generic plans, blind to the values), since asyncpg
prepares and caches every statement.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from qzpay import Billing
from qzpay.ids import customer_ids
from qzpay.storage.base import CustomerFilter
from qzpay.storage.postgres import list_query, provider_query, scan_query

pytestmark = pytest.mark.postgres

ROWS = 100_000
PLANS = ("force_custom_plan", "force_generic_plan")


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plan(admin: asyncpg.Connection, mode: str, sql: str, args: list[object]) -> list[Any]:
    await admin.execute(f"SET plan_cache_mode = {mode}")
    (document,) = json.loads(await admin.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))
    return list(_nodes(document["Plan"]))


def _assert_indexed(nodes: list[Any], *indexes: str) -> None:
    kinds = {node["Node Type"] for node in nodes}
    used = {node.get("Index Name") for node in nodes}
    assert "Seq Scan" not in kinds, nodes
    assert "Sort" not in kinds, nodes  # newest first comes from an index, not a sort
    assert used & set(indexes), nodes


@pytest.fixture
async def loaded(pg_url: str, admin: asyncpg.Connection) -> list[str]:
    """100k customers written straight into the tables with COPY; their ids, oldest first."""
    async with Billing(storage=pg_url) as billing:
        await billing.open()  # the schema
    start = datetime(2024, 1, 1, tzinfo=UTC)
    ids = [customer_ids.new() for _ in range(ROWS)]
    plans = ("free", "pro", "team")
    customers, metadata, links = [], [], []
    for i, customer_id in enumerate(ids):
        meta = {"plan": plans[i % 3], "ref": f"ref-{i}"}
        moment = start + timedelta(seconds=i)
        email = f"User{i}@Example.com"
        customers.append(
            (
                customer_id,
                email,
                email.lower(),
                json.dumps(meta),
                json.dumps({"stripe": f"cus_s{i}"}),
                moment,
                moment,
            )
        )
        metadata += [(customer_id, key, value) for key, value in meta.items()]
        links.append(("stripe", f"cus_s{i}", customer_id))
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
    await admin.copy_records_to_table("customer_metadata", records=metadata)
    await admin.copy_records_to_table(
        "customer_links", records=links, columns=["provider", "provider_customer_id", "customer_id"]
    )
    await admin.execute("ANALYZE customers, customer_metadata, customer_links")
    return ids


class TestAtScale:
    """One load of 100k rows serves both checks (loading is most of the time)."""

    async def test_lookups_use_indexes_and_answer_correctly(
        self, loaded: list[str], admin: asyncpg.Connection, pg_url: str
    ) -> None:
        for mode in PLANS:
            await self._check_plans(loaded, admin, mode)
        await self._check_answers(loaded, pg_url)

    @staticmethod
    async def _check_plans(loaded: list[str], admin: asyncpg.Connection, mode: str) -> None:
        middle = loaded[ROWS // 2]
        # (query, indexes any of which proves the look-up is indexed)
        checks: list[tuple[tuple[str, list[object]], tuple[str, ...]]] = [
            (
                list_query(CustomerFilter(email="user777@example.com"), limit=20, offset=0),
                ("customers_email_key",),
            ),
            (
                list_query(CustomerFilter(metadata={"ref": "ref-777"}), limit=20, offset=0),
                ("customer_metadata_key_value",),
            ),
            (
                list_query(
                    CustomerFilter(metadata={"plan": "pro", "ref": "ref-777"}), limit=20, offset=0
                ),
                ("customer_metadata_key_value",),
            ),
            (
                list_query(CustomerFilter(metadata={"plan": "team"}), limit=20, offset=0),
                ("customer_metadata_key_value", "customer_metadata_pkey"),
            ),
            (provider_query("cus_s777", None), ("customer_links_provider_customer_id",)),
            (
                provider_query("cus_s777", "stripe"),
                ("customer_links_pkey", "customer_links_provider_customer_id"),
            ),
            (scan_query(CustomerFilter(), before_id=middle, limit=100), ("customers_pkey",)),
            (
                scan_query(
                    CustomerFilter(email="user777@example.com"), before_id=middle, limit=100
                ),
                ("customers_email_key",),
            ),
            (list_query(CustomerFilter(), limit=20, offset=0), ("customers_pkey",)),
            (("SELECT id FROM customers WHERE id = $1", [middle]), ("customers_pkey",)),
        ]
        for (sql, args), indexes in checks:
            _assert_indexed(await _plan(admin, mode, sql, args), *indexes)

    @staticmethod
    async def _check_answers(loaded: list[str], pg_url: str) -> None:
        async with Billing(storage=pg_url) as billing:
            found = await billing.customers.get_by_external_id("cus_s777")
            assert found is not None
            assert found.id == loaded[777]
            assert found.provider_customer_ids == {"stripe": "cus_s777"}
            page = await billing.customers.list(email="USER777@example.COM")
            assert [c.id for c in page.data] == [loaded[777]]
            page = await billing.customers.list(metadata={"ref": "ref-778"})
            assert [c.id for c in page.data] == [loaded[778]]
            page = await billing.customers.list(metadata={"plan": "team"}, limit=3)
            assert [c.id for c in page.data] == [loaded[i] for i in (99_998, 99_995, 99_992)]
            assert page.total == ROWS // 3
            newest = await billing.customers.list(limit=2)
            assert [c.id for c in newest.data] == [loaded[-1], loaded[-2]]
            assert newest.total == ROWS
            second = await billing.customers.list(limit=2, offset=2)
            assert [c.id for c in second.data] == [loaded[-3], loaded[-4]]
            assert second.total == ROWS
            walked = [c.id async for c in billing.customers.iterate(page_size=1000)]
            assert walked == loaded[::-1]
