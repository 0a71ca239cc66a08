"""The subscription pages: in headless Chromium (a customer's subscriptions and access, one
subscription and each change through its confirmation page, the list filtered by status;
axe-checked), and over plain HTTP (session, CSRF, service errors shown, 404s, paging)."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from qzpay import Billing
from qzpay.admin import create_admin_router
from qzpay.admin import subscriptions as admin_subscriptions
from qzpay.api import APIKeyAuth, create_app
from qzpay.catalog.models import Price
from qzpay.limits import MAX_ID_LENGTH
from qzpay.subscriptions.models import Subscription
from tests.admin.conftest import assert_accessible
from tests.admin.test_journeys import sign_in
from tests.admin.test_security import sign_in as http_sign_in
from tests.api.live import API_KEY, LiveServer, serving
from tests.providers.test_stripe_subscriptions import give_card
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.stripe_fixtures import unique_email
from tests.support.stripe_sdk import stripe_sdk

__all__ = ["stripe_sdk"]


@pytest.fixture
def free_server(tmp_path: Path) -> Iterator[LiveServer]:
    """``create_app`` over SQLite with no provider: free subscriptions are kept here."""
    billing = Billing(f"sqlite:///{tmp_path / 'subscriptions.db'}")
    app = create_app(billing, auth=APIKeyAuth(API_KEY))
    with serving(app, billing) as live:
        yield live


async def _free_price(billing: Billing, key: str = "free") -> Price:
    plan = await billing.plans.create(
        key, "Free", entitlements=["reports", "api"], limits={"projects": 3}
    )
    return await billing.prices.create(plan.id, currency="USD", unit_amount=0, interval="month")


def _fields(page: Any) -> str:
    text: str = page.locator("dl.fields").inner_text()
    return text


def test_customer_subscription_changes_through_confirmations(
    page: Any, free_server: LiveServer, shoot: Any
) -> None:
    billing = free_server.billing
    assert billing is not None
    run = free_server.run
    price = run(_free_price(billing))
    customer = run(billing.customers.create(email="subscriber@example.com"))
    sub = run(billing.subscriptions.create(customer.id, price.id, metadata={"team": "core"}))
    other = run(billing.customers.create(email="other@example.com"))
    kept = run(billing.subscriptions.create(other.id, price.id))
    base = free_server.base_url
    sign_in(page, base)

    # the customer page: its subscriptions and what it may use now
    page.goto(f"{base}/admin/customers/{customer.id}")
    section = page.locator("table", has_text="Subscriptions of this customer")
    row = section.locator("tbody tr")
    assert row.count() == 1
    for text in (sub.id, "active", price.plan_id, price.id, "No"):
        assert text in row.inner_text(), text
    assert page.locator("#access").inner_text() == "Access: api, reports"
    assert_accessible(page)
    shoot(page, "customer")

    # the subscription: every field, links to its customer, plan and price
    section.get_by_role("link", name=sub.id).click()
    assert page.get_by_role("heading", level=1).inner_text() == f"Subscription {sub.id}"
    fields = _fields(page)
    for text in ("active", "subscriber@example.com", "Free", "0.00 USD every month", "team"):
        assert text in fields, text
    assert page.locator(f'a[href="/admin/plans/{price.plan_id}"]').count() == 1
    assert page.locator(f'a[href="/admin/prices/{price.id}"]').count() == 1
    assert page.get_by_role("link", name="Undo cancellation").count() == 0
    assert page.get_by_role("link", name="Resume").count() == 0
    assert_accessible(page)
    shoot(page, "subscription")

    # cancel at period end, through its confirmation page
    page.get_by_role("link", name="Cancel at period end").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Cancel at period end"
    assert_accessible(page)
    shoot(page, "confirm-cancel")
    page.get_by_role("button", name="Yes, cancel at period end").click()
    assert "canceled at the end of its period" in page.get_by_role("status").inner_text()
    assert "Cancels at period end\tYes" in _fields(page).replace("\n", "\t")
    stored = run(billing.subscriptions.get(sub.id))
    assert stored is not None
    assert stored.cancel_at_period_end
    assert stored.status == "active"
    assert_accessible(page)

    # undo it
    page.get_by_role("link", name="Undo cancellation").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Undo cancellation"
    page.get_by_role("button", name="Yes, keep the subscription").click()
    assert page.get_by_role("status").inner_text() == "The cancellation was undone."
    stored = run(billing.subscriptions.get(sub.id))
    assert stored is not None
    assert not stored.cancel_at_period_end
    assert page.get_by_role("link", name="Undo cancellation").count() == 0

    # pause (access stops), then resume
    page.get_by_role("link", name="Pause").click()
    page.get_by_role("button", name="Yes, pause").click()
    assert page.get_by_role("status").inner_text() == "The subscription was paused."
    assert "paused" in _fields(page)
    assert run(billing.entitlements.list(customer.id)) == []
    assert page.get_by_role("link", name="Pause").count() == 0
    assert_accessible(page)
    shoot(page, "paused")
    page.get_by_role("link", name="Resume").click()
    assert_accessible(page)
    page.get_by_role("button", name="Yes, resume").click()
    assert page.get_by_role("status").inner_text() == "The subscription was resumed."
    assert run(billing.entitlements.list(customer.id)) == ["api", "reports"]

    # cancel now: canceled, nothing more to do, and no access left
    page.get_by_role("link", name="Cancel now").click()
    assert_accessible(page)
    page.get_by_role("button", name="Yes, cancel now").click()
    assert page.get_by_role("status").inner_text() == "The subscription was canceled."
    assert "canceled" in _fields(page)
    for label in ("Cancel at period end", "Cancel now", "Pause", "Resume"):
        assert page.get_by_role("link", name=label).count() == 0, label
    assert_accessible(page)
    shoot(page, "canceled")
    page.locator("dl.fields").get_by_role("link", name="subscriber@example.com").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Customer subscriber@example.com"
    assert "canceled" in page.locator("table", has_text="Subscriptions of this").inner_text()
    assert page.locator("#access").inner_text() == "Access: none now"
    assert "customer.entitlements_changed" in page.locator(".timeline").inner_text()

    # the list, newest first, filtered by status and by customer
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Subscriptions").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Subscriptions"
    rows = page.locator("tbody tr")
    assert rows.count() == 2
    assert kept.id in rows.first.inner_text()  # newest first
    assert_accessible(page)
    page.get_by_label("Status").select_option("canceled")
    page.get_by_role("button", name="Show").click()
    assert rows.count() == 1
    assert sub.id in rows.first.inner_text()
    shoot(page, "list-canceled")
    page.get_by_label("Status").select_option("active")
    page.get_by_role("button", name="Show").click()
    assert rows.count() == 1
    assert kept.id in rows.first.inner_text()
    page.get_by_label("Status").select_option("")
    page.get_by_label("Customer id").fill(customer.id)
    page.get_by_role("button", name="Show").click()
    assert rows.count() == 1
    assert sub.id in rows.first.inner_text()
    page.get_by_label("Customer id").fill("x" * (MAX_ID_LENGTH + 1))
    page.get_by_role("button", name="Show").click()
    assert page.locator("#customer_id-error").is_visible()
    assert page.get_by_label("Customer id").get_attribute("aria-invalid") == "true"
    assert_accessible(page)
    page.get_by_label("Customer id").fill("")
    page.get_by_label("Status").select_option("active")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("link", name=kept.id).click()
    assert page.get_by_role("heading", level=1).inner_text() == f"Subscription {kept.id}"


# -- plain HTTP ---------------------------------------------------------------------------


@pytest.fixture
async def http_billing() -> AsyncIterator[tuple[httpx.AsyncClient, Billing]]:
    billing = Billing("memory://")
    app = create_app(billing, auth=APIKeyAuth(API_KEY), manage_billing=False)
    async with billing:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.21", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as http:
            yield http, billing


async def _subscribed(billing: Billing, email: str = "who@example.com") -> Subscription:
    price = await _free_price(billing, f"free-{email.partition('@')[0]}")
    customer = await billing.customers.create(email=email)
    return await billing.subscriptions.create(customer.id, price.id)


def _alert(text: str) -> str:
    start = text.index('role="alert">') + len('role="alert">')
    return html.unescape(text[start : text.index("</p>", start)])


async def test_new_routes_need_a_session(http_billing) -> None:
    http, billing = http_billing
    sub = await _subscribed(billing)
    router = create_admin_router(Billing("memory://"), auth=APIKeyAuth(API_KEY))
    paths = {r.path for r in router.routes if isinstance(r, APIRoute)}
    assert {
        "/subscriptions",
        "/subscriptions/{subscription_id}",
        "/subscriptions/{subscription_id}/{action}",
    } <= paths
    for method, path in (
        ("GET", "/admin/subscriptions"),
        ("GET", f"/admin/subscriptions/{sub.id}"),
        ("GET", f"/admin/subscriptions/{sub.id}/cancel-now"),
        ("POST", f"/admin/subscriptions/{sub.id}/cancel-now"),
    ):
        response = await http.request(method, path, data={"csrf_token": "x"})
        assert response.status_code in (303, 401), (method, path)
        assert "who@example.com" not in response.text
        if response.status_code == 303:
            assert response.headers["location"].startswith("/admin/sign-in?next=")
    stored = await billing.subscriptions.get(sub.id)
    assert stored is not None
    assert stored.status == "active"


async def test_actions_need_the_csrf_token(http_billing) -> None:
    http, billing = http_billing
    sub = await _subscribed(billing)
    token = await http_sign_in(http)
    path = f"/admin/subscriptions/{sub.id}/cancel-now"
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token[:-1]}):
        refused = await http.post(path, data=data)
        assert refused.status_code == 403
        assert "not sent by this console" in refused.text
    foreign = await http.post(
        path, data={"csrf_token": token}, headers={"Origin": "https://x.test"}
    )
    assert foreign.status_code == 403
    stored = await billing.subscriptions.get(sub.id)
    assert stored is not None
    assert stored.status == "active"
    confirm = await http.get(path)
    assert confirm.status_code == 200
    assert f'value="{token}"' in confirm.text
    assert "content-security-policy" in confirm.headers
    done = await http.post(path, data={"csrf_token": token})
    assert done.status_code == 303
    assert done.headers["location"] == f"/admin/subscriptions/{sub.id}?done=cancel-now"
    ended = await billing.subscriptions.get(sub.id)
    assert ended is not None
    assert ended.status == "canceled"


async def test_service_errors_are_shown_not_500(http_billing) -> None:
    http, billing = http_billing
    sub = await _subscribed(billing)
    token = await http_sign_in(http)
    await billing.subscriptions.cancel(sub.id, at_period_end=False)
    # another admin's open confirmation: pausing an ended subscription is a ConflictError
    conflict = await http.post(f"/admin/subscriptions/{sub.id}/pause", data={"csrf_token": token})
    assert conflict.status_code == 409
    assert "has ended" in _alert(conflict.text)
    assert "This does not apply to it now." in conflict.text


async def test_unknown_subscription_and_action_are_404(http_billing) -> None:
    http, billing = http_billing
    sub = await _subscribed(billing)
    token = await http_sign_in(http)
    for path in (
        "/admin/subscriptions/sub_missing",
        "/admin/subscriptions/not%20an%20id",
        "/admin/subscriptions/sub_missing/pause",
        f"/admin/subscriptions/{sub.id}/delete",
    ):
        response = await http.get(path)
        assert response.status_code == 404, path
        assert "There is no" in _alert(response.text)
    posted = await http.post(f"/admin/subscriptions/{sub.id}/delete", data={"csrf_token": token})
    assert posted.status_code == 404


async def test_list_pages_by_keyset(http_billing, monkeypatch) -> None:
    http, billing = http_billing
    monkeypatch.setattr(admin_subscriptions, "PAGE_SIZE", 2)
    price = await _free_price(billing)
    made = []
    for n in range(3):
        customer = await billing.customers.create(email=f"c{n}@example.com")
        made.append(await billing.subscriptions.create(customer.id, price.id))
    await http_sign_in(http)
    first = await http.get("/admin/subscriptions", params={"status": "active"})
    assert first.status_code == 200
    assert made[2].id in first.text
    assert made[1].id in first.text
    assert made[0].id not in first.text
    older = f"/admin/subscriptions?status=active&amp;before={made[1].id}"
    assert f'href="{older}" rel="next"' in first.text
    second = await http.get(html.unescape(older))
    body = second.text.split("<tbody>", 1)[-1]
    assert made[0].id in body
    assert made[1].id not in body
    assert 'rel="next"' not in second.text
    assert ">Newest</a>" in second.text
    bad = await http.get("/admin/subscriptions", params={"before": "x" * (MAX_ID_LENGTH + 1)})
    assert bad.status_code == 422


async def test_customer_page_reads_subscriptions_at_most_twice(http_billing, monkeypatch) -> None:
    http, billing = http_billing
    sub = await _subscribed(billing)
    await http_sign_in(http)
    calls: list[str] = []
    storage = billing.storage

    def counting(name: str) -> Any:
        real = getattr(storage, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        return counted

    for name in ("scan_subscriptions", "list_subscriptions", "get_subscription", "grants"):
        monkeypatch.setattr(storage, name, counting(name))
    path = f"/admin/customers/{sub.customer_id}"
    shown = html.unescape((await http.get(path)).text)
    assert calls == ["scan_subscriptions", "grants"]
    assert "<strong>Access:</strong> <code>api</code>, <code>reports</code>" in shown
    await billing.subscriptions.cancel(sub.id, at_period_end=False)
    calls.clear()
    shown = html.unescape((await http.get(path)).text)
    assert calls == ["scan_subscriptions"]  # nothing it has grants anything: no second read
    assert '<span class="hint">none now</span>' in shown


async def test_a_provider_failure_is_shown_as_502_and_changes_nothing(
    make_stripe_provider: Any, fault_proxy: FaultProxy, stripe_sdk: Any
) -> None:
    """A Stripe-billed subscription paused while Stripe answers 500 (through the fault
    proxy, in front of localstripe): the confirmation page shows the provider's failure, and
    the subscription is as it was, here and at Stripe."""
    provider = make_stripe_provider(api_base=fault_proxy.url)
    billing = Billing("memory://", provider=provider)
    app = create_app(billing, auth=APIKeyAuth(API_KEY), manage_billing=False)
    async with billing:
        plan = await billing.plans.create("admin-paid", "Paid", entitlements=["api"])
        price = await billing.prices.create(
            plan.id, currency="usd", unit_amount=900, interval="month"
        )
        customer = await billing.customers.create(email=unique_email("admin-paid"))
        await give_card(stripe_sdk, customer.provider_customer_ids["stripe"])
        live = await billing.subscriptions.create(customer.id, price.id)
        assert live.status == "active"
        transport = httpx.ASGITransport(app=app, client=("203.0.113.22", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as http:
            token = await http_sign_in(http)
            fault_proxy.inject(Fault.server_error(), method="POST", times=2)
            path = f"/admin/subscriptions/{live.id}/pause"
            failed = await http.post(path, data={"csrf_token": token})
        assert failed.status_code == 502
        assert "stripe" in _alert(failed.text).lower()
        assert '<button type="submit" class="danger">Yes, pause</button>' in failed.text
        assert await billing.subscriptions.get(live.id) == live
        remote = await stripe_sdk.v1.subscriptions.retrieve_async(live.provider_subscription_id)
        assert remote.to_dict().get("pause_collection") in (None, {})
