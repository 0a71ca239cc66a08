"""``qzpay subscriptions reconcile``: a Stripe subscription paid behind qzpay's back is drift
(exit 3 with --check), --fix takes Stripe's copy, and Stripe is never changed."""

from __future__ import annotations

import os
import re

import aiohttp
import pytest

from qzpay import Billing
from qzpay.providers.stripe import StripeProvider
from tests.support.stripe_fixtures import unique_email
from tests.test_cli import at_stripe, db_env, no_provider_env, qzpay, qzpay_json, stripe_env

__all__ = ["db_env", "no_provider_env", "stripe_env"]


def test_reports_drift_then_fix_takes_stripes_copy(stripe_env: str, localstripe_url: str) -> None:
    async def setup(billing: Billing, _: StripeProvider) -> tuple[str, str]:
        plan = await billing.plans.create(f"cli-{os.urandom(3).hex()}", "CLI", entitlements=["x"])
        price = await billing.prices.create(
            plan.id, currency="usd", unit_amount=500, interval="month"
        )
        customer = await billing.customers.create(email=unique_email("cli-sub"))
        sub = await billing.subscriptions.create(customer.id, price.id)
        assert sub.status == "incomplete"
        assert sub.payment_url is not None
        # Paid on the hosted page; the deliveries never arrive.
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{sub.payment_url}/pay") as paid,
        ):
            assert paid.status == 200
        return sub.id, str(sub.provider_subscription_id)

    sub_id, remote_id = at_stripe(stripe_env, localstripe_url, setup)

    report = qzpay_json("subscriptions", "reconcile", "stripe")
    assert report["in_sync"] is False
    assert report["local_subscriptions"] == 1
    drift = [d for d in report["drift"] if d["subscription_id"] == sub_id]
    assert drift[0]["provider_subscription_id"] == remote_id
    assert drift[0]["fields"]["status"] == {"local": "incomplete", "provider": "active"}

    human = qzpay("subscriptions", "reconcile", "stripe", "--check")
    assert human.exit_code == 3
    assert re.search(rf"fields differ .*{sub_id} \(.*status", human.stdout)

    fixed = qzpay_json("subscriptions", "reconcile", "stripe", "--fix")
    assert sub_id in fixed["fixed"]
    assert qzpay_json("subscriptions", "get", sub_id)["status"] == "active"
    after = qzpay_json("subscriptions", "reconcile", "stripe")
    assert not [d for d in after["drift"] if d["subscription_id"] == sub_id]
    assert qzpay("subscriptions", "reconcile", "stripe", "--fix", "--check").exit_code == 2


def test_reconcile_table_prints_labels_and_ids_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: the catalog and subscription tables once printed their labels and ids as
    Rich markup, so "[stripe ids]" vanished and a provider id holding brackets was misread."""
    from qzpay.cli.subscription_reconcile import RECONCILIATION
    from qzpay.subscriptions.reconcile import SubscriptionReconcileReport

    hostile = "sub_[bold]x[/bold]"
    report = SubscriptionReconcileReport(
        provider="stripe", missing_locally=[hostile], unmanaged=[hostile]
    )
    RECONCILIATION.show(report, fixed_now=False)
    out = capsys.readouterr().out
    assert "cannot be adopted [stripe ids]" in out
    assert hostile in out


def test_reconcile_tables_count_each_side(capsys: pytest.CaptureFixture[str]) -> None:
    """Above each reconcile table, how many records of each kind are here and at the provider
    (the provider's kinds named only when there are several); the ids column is headed with
    the kinds counted."""
    from qzpay.catalog.reconcile import CatalogReconcileReport
    from qzpay.cli.catalog import RECONCILIATION as CATALOG
    from qzpay.cli.reports import show_reconcile
    from qzpay.cli.subscription_reconcile import RECONCILIATION as SUBSCRIPTIONS
    from qzpay.customers.reconcile import ReconcileReport
    from qzpay.subscriptions.reconcile import SubscriptionReconcileReport

    CATALOG.show(
        CatalogReconcileReport(
            provider="stripe", local_plans=3, local_prices=5, provider_plans=2, provider_prices=4
        ),
        fixed_now=False,
    )
    catalog = capsys.readouterr().out
    assert "stripe: 3 plans and 5 prices here, 2 plans and 4 prices at stripe" in catalog
    assert "plans and prices" in catalog.splitlines()[2]
    SUBSCRIPTIONS.show(
        SubscriptionReconcileReport(
            provider="stripe", local_subscriptions=7, provider_subscriptions=8
        ),
        fixed_now=False,
    )
    subscriptions = capsys.readouterr().out
    assert "stripe: 7 subscriptions here, 8 at stripe" in subscriptions
    assert "subscriptions" in subscriptions.splitlines()[2]
    show_reconcile(
        ReconcileReport(provider="stripe", local_customers=1, provider_customers=2),
        fixed_now=False,
    )
    customers = capsys.readouterr().out
    assert "stripe: 1 customers here, 2 at stripe" in customers
    assert "customers" in customers.splitlines()[2]
