"""End-to-end journeys through the admin console in headless Chromium, axe-checked."""

from __future__ import annotations

import time
from typing import Any

import pytest

from qzpay.admin.session import COOKIE_NAME, Sessions, secret_from
from qzpay.api import APIKeyAuth
from tests.admin.conftest import assert_accessible
from tests.api.live import API_KEY, LiveServer
from tests.support.stripe_fixtures import unique_email

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the Stripe SDK's


def sign_in(page: Any, base: str, key: str = API_KEY) -> None:
    page.goto(f"{base}/admin/")
    assert "/admin/sign-in" in page.url
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_search_edit_delete_timeline_sign_out(
    page: Any, admin_server: LiveServer, shoot: Any
) -> None:
    billing = admin_server.billing
    assert billing is not None
    email = unique_email("journey")
    target = admin_server.run(
        billing.customers.create(email=email, name="Ada", metadata={"plan": "pro"})
    )
    for _ in range(3):
        admin_server.run(billing.customers.create(email=unique_email("other")))
    base = admin_server.base_url

    page.goto(f"{base}/admin/customers")  # no session: sent to sign in, then back
    assert "/admin/sign-in" in page.url
    assert_accessible(page)
    page.get_by_label("API key").fill("wrong-key-0123456789abcdef")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "That API key is not valid."
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/admin/customers")
    assert page.get_by_role("heading", level=1).inner_text() == "Customers"
    assert_accessible(page)

    # search by email, then by metadata, then by provider id
    page.get_by_label("Email").fill(email.upper())
    page.get_by_role("button", name="Search").click()
    assert page.locator("tbody tr").count() == 1
    page.get_by_label("Email").fill("")
    page.get_by_label("Metadata (key=value)").fill("plan=pro")
    page.get_by_role("button", name="Search").click()
    assert page.locator("tbody tr").count() == 1
    stripe_id = target.provider_customer_ids["stripe"]
    page.goto(f"{base}/admin/customers?provider_id={stripe_id}")
    assert page.locator("tbody tr").count() == 1
    shoot(page, "search")

    # open the customer: fields, the Stripe dashboard link, the timeline
    page.get_by_role("link", name=email).click()
    assert page.get_by_role("heading", level=1).inner_text() == f"Customer {email}"
    link = page.locator(f'a[href="https://dashboard.stripe.com/customers/{stripe_id}"]')
    assert link.count() == 1
    assert "customer.created" in page.locator(".timeline").inner_text()
    assert_accessible(page)

    # edit: a validation error shown next to its field, then fixed
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_label("Phone").fill("not a phone")
    page.get_by_label("Country").fill("ZZ")
    page.get_by_label("Metadata").fill("plan=enterprise\nteam=core")
    page.get_by_role("button", name="Save").click()
    assert page.locator("#phone-error").is_visible()
    assert page.locator("#address-country-error").is_visible()
    assert page.get_by_label("Phone").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Name").input_value() == "Ada Lovelace"  # what was typed stays
    assert_accessible(page)
    shoot(page, "validation")
    page.get_by_label("Phone").fill("+14155552671")
    page.get_by_label("Country").fill("US")
    page.get_by_role("button", name="Save").click()
    assert page.get_by_role("status").inner_text() == "The customer was saved."
    stored = admin_server.run(billing.customers.get(target.id))
    assert stored is not None
    assert stored.name == "Ada Lovelace"
    assert stored.phone == "+14155552671"
    assert stored.metadata == {"plan": "enterprise", "team": "core"}
    timeline = page.locator(".timeline").inner_text()
    assert "customer.updated" in timeline
    assert "name" in timeline

    # delete, with a confirmation step; the event is in the timeline and the Events page
    page.get_by_role("link", name="Delete").click()
    assert_accessible(page)
    page.get_by_role("button", name="Delete this customer").click()
    assert page.get_by_role("status").inner_text() == "The customer was deleted."
    assert "customer.deleted" in page.locator(".timeline li").first.inner_text()
    deleted = admin_server.run(billing.customers.get(target.id))
    assert deleted is not None
    assert deleted.deleted_at is not None
    shoot(page, "customer")
    page.get_by_role("link", name="Events").click()
    page.get_by_label("Type").select_option("customer.deleted")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("tbody tr").count() == 1
    assert_accessible(page)

    # deleted customers only on request
    page.goto(f"{base}/admin/customers?email={email}")
    assert page.locator("tbody tr").count() == 0
    page.get_by_label("Include deleted customers").check()
    page.get_by_role("button", name="Search").click()
    assert page.locator("tbody tr").count() == 1

    page.get_by_role("link", name="Sync").click()
    assert_accessible(page)
    page.get_by_role("button", name="Retry now").click()
    assert "completed" in page.get_by_role("status").inner_text()

    page.get_by_role("button", name="Sign out").click()
    assert "/admin/sign-in" in page.url
    assert page.get_by_role("status").inner_text() == "You are signed out."
    page.goto(f"{base}/admin/customers")
    assert "/admin/sign-in" in page.url
    shoot(page, "signed-out")


def test_reconcile_against_stripe_with_confirmed_fix(
    page: Any, admin_server: LiveServer, shoot: Any
) -> None:
    billing = admin_server.billing
    assert billing is not None
    linked = admin_server.run(billing.customers.create(email=unique_email("rc")))
    admin_server.run(billing.customers.unlink(linked.id, provider="stripe"))
    base = admin_server.base_url
    sign_in(page, base)
    page.get_by_role("link", name="Reconcile").click()
    assert_accessible(page)
    page.get_by_label("Provider").select_option("stripe")
    page.get_by_role("button", name="Run a report").click()
    assert "differences found" in page.get_by_role("status").inner_text()
    assert page.locator("#unlinked").is_visible()
    assert linked.id in page.locator("#unlinked + p + ul").inner_text()
    assert_accessible(page)
    shoot(page, "report")
    page.get_by_role("button", name="Fix what is safe…").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Confirm the fix"
    assert_accessible(page)
    page.get_by_role("button", name="Yes, fix stripe").click()
    assert page.get_by_role("heading", name="Fixed at stripe").is_visible()
    assert linked.id in page.locator("#fixed + p + ul").inner_text()
    stored = admin_server.run(billing.customers.get(linked.id))
    assert stored is not None
    assert "stripe" in stored.provider_customer_ids
    shoot(page, "fixed")


def test_forged_csrf_token_is_refused(page: Any, admin_server: LiveServer, shoot: Any) -> None:
    billing = admin_server.billing
    assert billing is not None
    customer = admin_server.run(billing.customers.create(email=unique_email("csrf"), name="Kept"))
    base = admin_server.base_url
    sign_in(page, base)
    page.goto(f"{base}/admin/customers/{customer.id}/edit")
    page.locator('#main input[name="csrf_token"]').evaluate("input => { input.value = 'forged' }")
    page.get_by_label("Name").fill("Changed")
    page.get_by_role("button", name="Save").click()
    assert "not sent by this console" in page.get_by_role("alert").inner_text()
    assert_accessible(page)
    shoot(page, "refused")
    stored = admin_server.run(billing.customers.get(customer.id))
    assert stored is not None
    assert stored.name == "Kept"


def test_expired_session_is_refused(page: Any, admin_server: LiveServer, shoot: Any) -> None:
    base = admin_server.base_url
    sessions = Sessions(secret_from(APIKeyAuth(API_KEY), None))
    cookie, _ = sessions.issue(expires=int(time.time()) - 1)  # correctly signed, but expired
    page.context.add_cookies(
        [{"name": COOKIE_NAME, "value": cookie, "domain": "127.0.0.1", "path": "/admin"}]
    )
    page.goto(f"{base}/admin/customers")
    assert "/admin/sign-in" in page.url
    assert not [c for c in page.context.cookies() if c["name"] == COOKIE_NAME]
    shoot(page, "expired")
    live, _ = sessions.issue()  # the same secret, not expired: accepted
    page.context.add_cookies(
        [{"name": COOKIE_NAME, "value": live, "domain": "127.0.0.1", "path": "/admin"}]
    )
    page.goto(f"{base}/admin/customers")
    assert page.url.endswith("/admin/customers")
