"""The console over plain HTTP with subscriptions in the log: a customer's timeline shows what
it may use before and after, and the Events page links subscription events to their customer
and filters by any registered event type."""

from __future__ import annotations

import html

import httpx

from qzpay import Billing
from qzpay.api import APIKeyAuth, create_app
from tests.admin.test_security import sign_in
from tests.api.live import API_KEY
from tests.subscriptions.factories import make_catalog


async def test_timeline_and_events_page_show_subscription_events() -> None:
    billing = Billing("memory://")
    app = create_app(billing, auth=APIKeyAuth(API_KEY), manage_billing=False)
    async with billing:
        catalog = await make_catalog(billing)
        customer = await billing.customers.create(email="subscriber@example.com")
        sub = await billing.subscriptions.create(customer.id, catalog.free.id)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as http:
            await sign_in(http)
            page = html.unescape((await http.get(f"/admin/customers/{customer.id}")).text)
            assert "customer.entitlements_changed" in page
            assert '<del>[]</del> → <ins>["api", "reports"]</ins>' in page
            events = html.unescape(
                (await http.get("/admin/events", params={"type": "subscription.created"})).text
            )
            assert "subscription.created" in events
            assert f"/admin/customers/{customer.id}" in events
            assert "customer.created" not in events.split("<tbody>", 1)[-1]
    assert sub.status == "active"
