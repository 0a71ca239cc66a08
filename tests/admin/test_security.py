"""The admin console over plain HTTP: nothing without a session, CSRF, rate limits, cookies."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from qzpay import Billing
from qzpay.admin import COOKIE_NAME, create_admin_router
from qzpay.api import APIKeyAuth, create_app
from tests.api.live import API_KEY


@pytest.fixture
async def app_and_client() -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, str]]:
    billing = Billing("memory://")
    app = create_app(billing, auth=APIKeyAuth(API_KEY), manage_billing=False)
    async with billing:
        customer = await billing.customers.create(email="who@example.com")
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as http:
            yield app, http, customer.id


async def sign_in(http: httpx.AsyncClient) -> str:
    """Sign in; the CSRF token of the new session."""
    response = await http.post("/admin/sign-in", data={"api_key": API_KEY})
    assert response.status_code == 303
    page = await http.get("/admin/customers")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


async def test_every_admin_route_needs_a_session(app_and_client) -> None:
    _, http, customer_id = app_and_client
    # The routes of the router create_app mounts at /admin (the same function, same routes).
    admin = create_admin_router(Billing("memory://"), auth=APIKeyAuth(API_KEY))
    routes = [r for r in admin.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 22
    paths = {route.path for route in routes}
    assert {"/plans", "/plans/{plan_id}/archive", "/prices/{price_id}/archive"} <= paths
    checked = 0
    for route in routes:
        path = "/admin" + route.path.replace("{customer_id}", customer_id)
        path = path.replace("{plan_id}", "plan_x").replace("{price_id}", "price_x")
        for method in route.methods or ():
            response = await http.request(method, path, data={"csrf_token": "x"})
            if path == "/admin/sign-in":
                assert response.status_code in (200, 401), (method, path)  # the way in
                continue
            checked += 1
            assert response.status_code in (303, 401, 403), (method, path, response.status_code)
            if response.status_code == 303:
                assert response.headers["location"].startswith("/admin/sign-in?next=")
            assert "who@example.com" not in response.text
    assert checked >= 21


async def test_session_cookie_attributes_and_headers(app_and_client) -> None:
    _, http, _ = app_and_client
    response = await http.post("/admin/sign-in", data={"api_key": API_KEY})
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    for attribute in ("HttpOnly", "Path=/admin", "SameSite=strict", "Max-Age=28800"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    page = await http.get("/admin/customers")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    css = await http.get("/admin/static/admin.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


async def test_changes_need_the_csrf_token(app_and_client) -> None:
    _, http, customer_id = app_and_client
    token = await sign_in(http)
    path = f"/admin/customers/{customer_id}/edit"
    for data in ({"name": "X"}, {"name": "X", "csrf_token": "forged"}, {"csrf_token": token[:-1]}):
        assert (await http.post(path, data=data)).status_code == 403
    foreign = await http.post(
        path, data={"name": "X", "csrf_token": token}, headers={"Origin": "https://evil.test"}
    )
    assert foreign.status_code == 403
    ok = await http.post(path, data={"name": "Y", "csrf_token": token})
    assert ok.status_code == 303


async def test_wrong_keys_are_rate_limited_per_client(app_and_client) -> None:
    _, http, _ = app_and_client
    for _ in range(5):
        wrong = await http.post("/admin/sign-in", data={"api_key": "nope-0123456789abcdef"})
        assert wrong.status_code == 401
    limited = await http.post("/admin/sign-in", data={"api_key": API_KEY})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert COOKIE_NAME not in limited.headers.get("set-cookie", "")


async def test_sign_out_revokes_the_cookie(app_and_client) -> None:
    _, http, _ = app_and_client
    token = await sign_in(http)
    kept = http.cookies.get(COOKIE_NAME)
    out = await http.post("/admin/sign-out", data={"csrf_token": token})
    assert out.status_code == 303
    http.cookies.set(COOKIE_NAME, kept or "", domain="admin.test", path="/admin")
    assert (await http.get("/admin/customers")).status_code == 303  # a copy is dead too


async def test_next_never_leaves_the_console(app_and_client) -> None:
    _, http, _ = app_and_client
    for target in ("https://evil.test/", "//evil.test/admin/", "/elsewhere", "/admin\\x"):
        response = await http.post("/admin/sign-in", data={"api_key": API_KEY, "next": target})
        assert response.headers["location"] == "/admin/"
        http.cookies.clear()


async def test_archiving_needs_the_csrf_token() -> None:
    billing = Billing("memory://")
    app = create_app(billing, auth=APIKeyAuth(API_KEY), manage_billing=False)
    async with billing:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as http:
            await _archive_needs_csrf(billing, http)


async def _archive_needs_csrf(billing: Billing, http: httpx.AsyncClient) -> None:
    plan = await billing.plans.create("csrf-plan", "CSRF plan")
    price = await billing.prices.create(plan.id, currency="usd", unit_amount=500, interval="month")
    token = await sign_in(http)
    for path in (f"/admin/prices/{price.id}/archive", f"/admin/plans/{plan.id}/archive"):
        for data in ({}, {"csrf_token": "forged"}):
            assert (await http.post(path, data=data)).status_code == 403
    stored = await billing.prices.get(price.id)
    assert stored is not None
    assert stored.active
    done = await http.post(f"/admin/plans/{plan.id}/archive", data={"csrf_token": token})
    assert done.status_code == 303
    archived = await billing.prices.get(price.id)
    assert archived is not None
    assert not archived.active


async def test_events_page_shows_new_events_at_once_and_pages_back() -> None:
    billing = Billing("memory://")
    app = create_app(billing, auth=APIKeyAuth(API_KEY), manage_billing=False)
    async with billing:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as http:
            await sign_in(http)
            first = await billing.customers.create(email="one@example.com")
            shown = await http.get("/admin/events")
            assert _event_ids(shown.text) == [e.id for e in await billing.events.list()]
            await billing.customers.create(email="two@example.com")
            log = [e.id for e in await billing.events.list()]
            assert len(log) == 2
            shown = await http.get("/admin/events")  # read from storage: current at once
            assert _event_ids(shown.text) == log[::-1]
            older = await http.get("/admin/events", params={"before": log[1]})
            assert _event_ids(older.text) == [log[0]]
            assert first.id in older.text
            typed = await http.get("/admin/events", params={"type": "customer.updated"})
            assert _event_ids(typed.text) == []


def _event_ids(html: str) -> list[str]:
    return re.findall(r"<td><code>(evt_[^<]+)</code></td>", html)
