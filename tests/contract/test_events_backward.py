"""``Storage.list_events_backward``: the whole log, newest first, paged by ``before`` and
filtered by type, on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from qzpay import Billing, Customer, Event
from qzpay.catalog.models import Plan, Price
from qzpay.errors import NotFoundError
from qzpay.events import new_event
from qzpay.subscriptions.models import EntitlementsChange, Subscription
from qzpay.subscriptions.registry import ENTITLEMENTS_CHANGED
from tests.contract.test_subscription_storage import T0, subscription
from tests.factories import create_customer

UNKNOWN = "evt_01J0000000000000000000000"


async def _log(billing: Billing) -> list[Event[Any]]:
    """The whole log, in its own (forward) order."""
    return await billing.events.list(limit=1000)


async def _page_back(
    billing: Billing, *, limit: int, event_type: str | None = None
) -> list[list[Event[Any]]]:
    """Every page from the newest back to the oldest, each read below the last one shown."""
    pages: list[list[Event[Any]]] = []
    before: str | None = None
    while True:
        page = await billing.storage.list_events_backward(
            before=before, limit=limit, event_type=event_type
        )
        if not page:
            return pages
        pages.append(page)
        before = page[-1].id


async def _make_events(billing: Billing, customers: int = 4, updates: int = 3) -> None:
    """``customers`` customers, each updated ``updates`` times, interleaved."""
    made = [await create_customer(billing) for _ in range(customers)]
    for n in range(updates):
        for customer in made:
            await billing.customers.update(customer.id, name=f"Name {n}")


async def test_newest_first_is_the_log_reversed(billing: Billing) -> None:
    await _make_events(billing, customers=3, updates=2)
    await billing.plans.create("pro", "Pro")
    log = await _log(billing)
    assert len(log) == 3 + 3 * 2 + 1
    newest = await billing.storage.list_events_backward(before=None, limit=100)
    assert [e.id for e in newest] == [e.id for e in reversed(log)]
    assert newest == list(reversed(log))  # decoded the same as the forward read
    assert newest[0].type == "plan.created"
    three = await billing.storage.list_events_backward(before=None, limit=3)
    assert [e.id for e in three] == [e.id for e in reversed(log)][:3]
    assert await billing.storage.list_events_backward(before=None, limit=0) == []


async def test_paging_back_reaches_every_event_exactly_once(billing: Billing) -> None:
    await _make_events(billing, customers=5, updates=4)  # 25 events
    log = await _log(billing)
    pages = await _page_back(billing, limit=7)
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    seen = [e.id for page in pages for e in page]
    assert seen == [e.id for e in reversed(log)]
    assert len(set(seen)) == len(log)
    # Strictly older than ``before``: the oldest event has nothing behind it.
    assert await billing.storage.list_events_backward(before=log[0].id, limit=10) == []
    below = await billing.storage.list_events_backward(before=log[5].id, limit=10)
    assert [e.id for e in below] == [e.id for e in reversed(log[:5])]


async def test_type_filter(billing: Billing) -> None:
    await _make_events(billing, customers=3, updates=3)
    await billing.plans.create("pro", "Pro")
    log = await _log(billing)
    updated = [e.id for e in reversed(log) if e.type == "customer.updated"]
    assert len(updated) == 9
    pages = await _page_back(billing, limit=4, event_type="customer.updated")
    assert [len(p) for p in pages] == [4, 4, 1]
    assert [e.id for page in pages for e in page] == updated
    created = await billing.storage.list_events_backward(
        before=None, limit=100, event_type="customer.created"
    )
    assert [e.id for e in created] == [e.id for e in reversed(log) if e.type == "customer.created"]
    # ``before`` may be an event of another type: the cut is its place in the log.
    cut = next(e for e in log if e.type == "customer.created" and e is not log[0])
    at = log.index(cut)
    older = await billing.storage.list_events_backward(
        before=cut.id, limit=100, event_type="customer.updated"
    )
    assert [e.id for e in older] == [
        e.id for e in reversed(log[:at]) if e.type == "customer.updated"
    ]
    for event_type in ("customer.deleted", "no.such_type", "Customer.Created", "it's"):
        found = await billing.storage.list_events_backward(
            before=None, limit=100, event_type=event_type
        )
        assert found == []


async def test_unknown_before_is_not_found(billing: Billing) -> None:
    await create_customer(billing)
    for event_type in (None, "customer.created", "customer.updated"):
        with pytest.raises(NotFoundError):
            await billing.storage.list_events_backward(
                before=UNKNOWN, limit=10, event_type=event_type
            )
    with pytest.raises(NotFoundError):
        await billing.storage.list_events_backward(before=UNKNOWN, limit=0)


async def test_events_of_every_resource_decode(billing: Billing) -> None:
    customer = await create_customer(billing)
    plan = await billing.plans.create("pro", "Pro", entitlements=["api"])
    price = await billing.prices.create(plan.id, currency="USD", unit_amount=1000, interval="month")
    stored = subscription(customer, price)
    change = EntitlementsChange(customer_id=customer.id, before=[], after=["api"], changed_at=T0)
    async with billing.storage.transaction() as tx:
        await tx.insert_subscription(stored)
        await tx.append_event(
            new_event("subscription.created", stored, id="evt_s1", previous=None, created_at=T0)
        )
        await tx.append_event(
            new_event(ENTITLEMENTS_CHANGED, change, id="evt_e1", previous=None, created_at=T0)
        )

    newest = await billing.storage.list_events_backward(before=None, limit=100)
    assert [e.type for e in newest] == [
        ENTITLEMENTS_CHANGED,
        "subscription.created",
        "price.created",
        "plan.created",
        "customer.created",
    ]
    kinds = [Customer, Plan, Price, Subscription, EntitlementsChange]
    assert [type(e.data) for e in reversed(newest)] == kinds
    latest: Any = newest[0].data
    assert latest == change
    assert newest[1].data.id == stored.id
    assert newest == list(reversed(await _log(billing)))
    only = await billing.storage.list_events_backward(
        before=None, limit=10, event_type=ENTITLEMENTS_CHANGED
    )
    assert [e.id for e in only] == ["evt_e1"]
    assert isinstance(only[0].data, EntitlementsChange)
    subs = await billing.storage.list_events_backward(
        before="evt_e1", limit=10, event_type="subscription.created"
    )
    assert [e.id for e in subs] == ["evt_s1"]
    assert isinstance(subs[0].data, Subscription)
