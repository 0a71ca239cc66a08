"""The catalog pages in headless Chromium: plans, a plan, a price, archiving; axe-checked."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.conftest import assert_accessible
from tests.admin.test_journeys import sign_in
from tests.api.live import LiveServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the Stripe SDK's


def test_plans_plan_price_archive_with_confirmation(
    page: Any, admin_server: LiveServer, shoot: Any
) -> None:
    billing = admin_server.billing
    assert billing is not None
    run = admin_server.run
    old = run(billing.plans.create("starter", "Starter"))
    run(billing.plans.archive(old.id))
    plan = run(
        billing.plans.create(
            "pro",
            "Pro",
            description="For teams",
            entitlements=["api", "sso"],
            limits={"seats": 5},
            metadata={"tier": "2"},
        )
    )
    price = run(
        billing.prices.create(
            plan.id, currency="usd", unit_amount=1999, interval="month", lookup_key="pro_monthly"
        )
    )
    run(billing.prices.create(plan.id, currency="jpy", unit_amount=2000, interval="year"))
    base = admin_server.base_url
    sign_in(page, base)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Plans").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Plans"
    assert page.locator("tbody tr").count() == 2
    assert page.locator("tbody tr").first.inner_text().startswith("Pro")  # newest first
    assert_accessible(page)
    page.get_by_label("Status").select_option("archived")
    page.get_by_role("button", name="Show").click()
    assert page.locator("tbody tr").count() == 1
    assert "Starter" in page.locator("tbody").inner_text()
    page.get_by_label("Status").select_option("active")
    page.get_by_role("button", name="Show").click()
    shoot(page, "plans")

    # the plan: every field, entitlements, limits, the Stripe product link, its prices
    page.get_by_role("link", name="Pro").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Plan Pro"
    main = page.locator("main").inner_text()
    for text in ("For teams", "api", "sso", "seats", "tier", "19.99 USD", "2000 JPY"):
        assert text in main, text
    product = plan.provider_plan_ids["stripe"]
    link = page.locator(f'a[href="https://dashboard.stripe.com/products/{product}"]')
    assert link.count() == 1
    assert_accessible(page)
    shoot(page, "plan")

    # the price: amount with currency, interval, the Stripe price link
    page.get_by_role("link", name="19.99 USD").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Price 19.99 USD every month"
    assert "pro_monthly" in page.locator("main").inner_text()
    stripe_price = price.provider_price_ids["stripe"]
    link = page.locator(f'a[href="https://dashboard.stripe.com/prices/{stripe_price}"]')
    assert link.count() == 1
    assert_accessible(page)

    # archive it: a confirmation page first, then archived
    page.get_by_role("link", name="Archive").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Archive price"
    assert_accessible(page)
    shoot(page, "confirm")
    page.get_by_role("button", name="Archive this price").click()
    assert page.get_by_role("status").inner_text() == "The price was archived."
    assert "Archived" in page.locator("dl.fields").inner_text()
    assert page.get_by_role("link", name="Archive").count() == 0
    assert_accessible(page)
    stored = run(billing.prices.get(price.id))
    assert stored is not None
    assert not stored.active
    page.get_by_role("link", name="Its plan (Pro)").click()
    rows = page.locator("tbody tr")
    assert "Archived" in rows.filter(has_text="19.99 USD").inner_text()
    assert "Active" in rows.filter(has_text="2000 JPY").inner_text()
    shoot(page, "archived")


def test_archive_without_csrf_is_refused(page: Any, admin_server: LiveServer, shoot: Any) -> None:
    billing = admin_server.billing
    assert billing is not None
    plan = admin_server.run(billing.plans.create("kept", "Kept"))
    base = admin_server.base_url
    sign_in(page, base)
    page.goto(f"{base}/admin/plans/{plan.id}/archive")
    page.locator('#main input[name="csrf_token"]').evaluate("input => input.remove()")
    page.get_by_role("button", name="Archive this plan").click()
    assert "not sent by this console" in page.get_by_role("alert").inner_text()
    assert_accessible(page)
    shoot(page, "refused")
    stored = admin_server.run(billing.plans.get(plan.id))
    assert stored is not None
    assert stored.active
