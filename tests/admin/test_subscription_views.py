"""The console over plain HTTP: with subscriptions in the log, a customer's timeline shows what
it may use before and after, and the Events page links subscription events to their customer
and filters by any registered event type; links follow each app's mount."""

from __future__ import annotations

import html

import httpx
from fastapi import FastAPI

from qzpay import Billing
from qzpay.admin import create_admin_router
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


async def test_links_follow_the_mount_of_each_app() -> None:
    """Links are built from path templates cached per app router: two apps mounting the
    console at different prefixes each get their own, with each page's own ids."""
    async with Billing("memory://") as billing:
        one = await billing.customers.create(email="one@example.com")
        two = await billing.customers.create(email="two@example.com")
        pages = {}
        for prefix in ("/admin", "/ops/console"):
            app = FastAPI()
            app.include_router(
                create_admin_router(billing, auth=APIKeyAuth(API_KEY)), prefix=prefix
            )
            transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 4000))
            async with httpx.AsyncClient(transport=transport, base_url="http://a.test") as http:
                signed = await http.post(f"{prefix}/sign-in", data={"api_key": API_KEY})
                assert signed.status_code == 303
                for customer in (one, two):
                    page = await http.get(f"{prefix}/customers/{customer.id}")
                    assert page.status_code == 200
                    pages[prefix, customer.id] = page.text
        for (prefix, customer_id), text in pages.items():
            assert f'href="{prefix}/customers/{customer_id}/edit"' in text
            other = "/ops/console" if prefix == "/admin" else "/admin"
            assert f'href="{other}/' not in text
