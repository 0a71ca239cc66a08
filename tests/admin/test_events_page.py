"""The Events page over HTTP: it pages back through the whole event log, newest first, by
type, with "Older events" and "Newest" links, and a bad ``before`` is a message, not a 500."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from qzpay import Billing, records
from qzpay.admin.operations import DEFAULT_LIMIT, EVENT_LIMITS
from qzpay.api import APIKeyAuth, create_app
from qzpay.events import new_event
from qzpay.limits import DEFAULT_EVENT_PAGE, MAX_EVENT_PAGE
from qzpay.subscriptions.models import EntitlementsChange
from qzpay.subscriptions.registry import ENTITLEMENTS_CHANGED
from tests.admin.test_security import sign_in
from tests.api.live import API_KEY
from tests.contract.test_subscription_storage import T0, subscription

Client = tuple[Billing, httpx.AsyncClient]


@pytest.fixture
async def console(storage_url: str) -> AsyncIterator[Client]:
    """A signed-in client of the console of a fresh billing (memory, SQLite, PostgreSQL)."""
    billing = Billing(storage_url)
    app = create_app(billing, auth=APIKeyAuth(API_KEY), manage_billing=False)
    async with billing:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as http:
            await sign_in(http)
            yield billing, http


def event_ids(text: str) -> list[str]:
    """The event ids of the page's table, top to bottom."""
    return re.findall(r"<td><code>(evt_[^<]+)</code></td>", text)


def pager(text: str) -> dict[str, str]:
    """The page's paging links: label -> href."""
    nav = re.search(r'<nav aria-label="Pages" class="pager">(.*?)</nav>', text, re.S)
    assert nav is not None
    return {
        label: html.unescape(href)
        for href, label in re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav.group(1))
    }


async def make_events(billing: Billing, count: int) -> list[str]:
    """``count`` events (customers created, then updated); the log's ids, oldest first."""
    customers = [await billing.customers.create(email=f"e{n}@example.com") for n in range(40)]
    n = 0
    while len(customers) + n < count:
        await billing.customers.update(customers[n % len(customers)].id, name=f"Name {n}")
        n += 1
    log = await billing.events.list(limit=MAX_EVENT_PAGE)
    assert len(log) == count
    return [e.id for e in log]


async def walk(http: httpx.AsyncClient, start: str) -> list[tuple[list[str], dict[str, str]]]:
    """Follow "Older events" from ``start``: each page's event ids and paging links."""
    pages: list[tuple[list[str], dict[str, str]]] = []
    target: str | None = start
    while target is not None:
        response = await http.get(target)
        assert response.status_code == 200, response.text
        links = pager(response.text)
        pages.append((event_ids(response.text), links))
        target = links.get("Older events")
        assert len(pages) < 20, "the Older links never end"
    return pages


def test_the_page_sizes_come_from_the_limits() -> None:
    assert DEFAULT_LIMIT == DEFAULT_EVENT_PAGE
    assert DEFAULT_LIMIT in EVENT_LIMITS
    assert max(EVENT_LIMITS) < MAX_EVENT_PAGE  # a page reads one more than it shows


async def test_paging_back_reaches_every_event_once_newest_first(console: Client) -> None:
    billing, http = console
    log = await make_events(billing, 120)
    pages = await walk(http, "/admin/events?limit=50")
    assert [len(ids) for ids, _ in pages] == [50, 50, 20]
    seen = [i for ids, _ in pages for i in ids]
    assert seen == log[::-1]
    assert len(set(seen)) == 120
    # The first page has no way back to itself; the others do; the last goes no further.
    (_, first), (_, middle), (_, last) = pages
    assert "Newest" not in first
    assert first["Older events"] == f"/admin/events?limit=50&before={log[-50]}"
    assert middle["Newest"] == "/admin/events?limit=50"
    assert middle["Older events"] == f"/admin/events?limit=50&before={log[-100]}"
    assert last == {"Newest": "/admin/events?limit=50"}
    # The default page size, and a size the select does not offer falls back to it.
    for query in ("", "?limit=7"):
        page = await http.get(f"/admin/events{query}")
        assert event_ids(page.text) == log[::-1][:DEFAULT_LIMIT]
        assert pager(page.text) == {"Older events": f"/admin/events?before={log[-100]}"}
    whole = await http.get("/admin/events?limit=500")
    assert event_ids(whole.text) == log[::-1]
    assert pager(whole.text) == {}


async def test_type_filter_is_applied_in_storage(console: Client) -> None:
    billing, http = console
    await make_events(billing, 120)  # 40 created, 80 updated
    log = await billing.events.list(limit=MAX_EVENT_PAGE)
    created = [e.id for e in reversed(log) if e.type == "customer.created"]
    page = await http.get("/admin/events?type=customer.created&limit=50")
    assert event_ids(page.text) == created  # all 40, though 80 newer updates came after
    assert pager(page.text) == {}
    assert '<option value="customer.created" selected>' in page.text
    updated = [e.id for e in reversed(log) if e.type == "customer.updated"]
    pages = await walk(http, "/admin/events?type=customer.updated&limit=50")
    assert [i for ids, _ in pages for i in ids] == updated
    assert pages[0][1]["Older events"] == (
        f"/admin/events?type=customer.updated&limit=50&before={updated[49]}"
    )
    assert pages[1][1] == {"Newest": "/admin/events?type=customer.updated&limit=50"}
    none = await http.get("/admin/events?type=customer.deleted")
    assert event_ids(none.text) == []
    assert "No events." in none.text
    # A type nobody registered is no filter at all.
    unknown = await http.get("/admin/events?type=bogus.thing&limit=500")
    assert event_ids(unknown.text) == [e.id for e in reversed(log)]


async def test_every_registered_type_can_be_chosen_and_shown(console: Client) -> None:
    billing, http = console
    customer = await billing.customers.create(email="subs@example.com")
    plan = await billing.plans.create("pro", "Pro", entitlements=["api"])
    price = await billing.prices.create(plan.id, currency="USD", unit_amount=900, interval="month")
    stored = subscription(customer, price)
    change = EntitlementsChange(customer_id=customer.id, before=[], after=["api"], changed_at=T0)
    async with billing.storage.transaction() as tx:
        await tx.insert_subscription(stored)
        for event_type, data in (("subscription.created", stored), (ENTITLEMENTS_CHANGED, change)):
            event: Any = new_event(
                event_type, data, id=f"evt_{event_type}", previous=None, created_at=T0
            )
            await tx.append_event(event)
    page = await http.get("/admin/events")
    assert page.status_code == 200
    options = re.findall(r'<option value="([^"]*)"', page.text.split('id="limit"')[0])
    assert options == ["", *records.event_types()]
    assert {"plan.created", "subscription.created", ENTITLEMENTS_CHANGED} <= set(options)
    assert event_ids(page.text) == [
        f"evt_{ENTITLEMENTS_CHANGED}",
        "evt_subscription.created",
        *[e.id for e in reversed(await billing.events.list(limit=3))],
    ]
    only = await http.get("/admin/events", params={"type": ENTITLEMENTS_CHANGED})
    assert event_ids(only.text) == [f"evt_{ENTITLEMENTS_CHANGED}"]
    assert f'href="/admin/customers/{customer.id}"' in only.text  # the customer it is about


@pytest.mark.parametrize(
    ("before", "status", "message"),
    [
        ("evt_01J0000000000000000000000", 404, "There is no such event"),
        ("x" * 300, 422, "That is not an event id"),
        ("evt_\x00", 422, "That is not an event id"),  # PostgreSQL could not even compare it
    ],
)
async def test_a_bad_before_is_a_message_not_a_failure(
    console: Client, before: str, status: int, message: str
) -> None:
    billing, http = console
    await make_events(billing, 45)
    page = await http.get("/admin/events", params={"before": before, "type": "customer.created"})
    assert page.status_code == status
    assert message in page.text
    assert 'role="alert"' in page.text
    assert event_ids(page.text) == []
    assert pager(page.text) == {"Newest": "/admin/events?type=customer.created"}
    assert "older than" not in page.text  # the caption names no cut
