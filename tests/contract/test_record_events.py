"""``Storage.list_record_events``: one record's events, newest first, on every backend."""

from __future__ import annotations

from qzpay import Billing
from tests.factories import create_customer


async def test_newest_first_only_that_record(billing: Billing) -> None:
    storage = billing.storage
    one = await create_customer(billing)
    other = await create_customer(billing)
    for name in ("A", "B", "C"):
        await billing.customers.update(one.id, name=name)
        await billing.customers.update(other.id, name=f"Other {name}")

    events = await storage.list_record_events(one.id, limit=10)
    assert [e.type for e in events] == ["customer.updated"] * 3 + ["customer.created"]
    assert [e.data.name for e in events[:3]] == ["C", "B", "A"]
    assert {e.data.id for e in events} == {one.id}
    # The same events as the log's, in the log's order reversed.
    log = await billing.events.list(limit=100)
    assert [e.id for e in events] == [e.id for e in reversed(log) if e.data.id == one.id]


async def test_limit_keeps_the_newest(billing: Billing) -> None:
    one = await create_customer(billing)
    for name in ("A", "B", "C", "D"):
        await billing.customers.update(one.id, name=name)

    two = await billing.storage.list_record_events(one.id, limit=2)
    assert [e.data.name for e in two] == ["D", "C"]
    assert await billing.storage.list_record_events(one.id, limit=0) == []
    assert len(await billing.storage.list_record_events(one.id, limit=100)) == 5


async def test_other_resources_events_are_found_by_their_id(billing: Billing) -> None:
    customer = await create_customer(billing)
    plan = await billing.plans.create("pro", "Pro")
    await billing.plans.update(plan.id, name="Pro 2")

    plan_events = await billing.storage.list_record_events(plan.id, limit=10)
    assert [e.type for e in plan_events] == ["plan.updated", "plan.created"]
    assert {e.data.id for e in plan_events} == {plan.id}
    customer_events = await billing.storage.list_record_events(customer.id, limit=10)
    assert [e.type for e in customer_events] == ["customer.created"]


async def test_unknown_record_has_no_events(billing: Billing) -> None:
    await create_customer(billing)
    assert await billing.storage.list_record_events("cus_01J0000000000000000000000", limit=5) == []
