"""Reconcile and the provider copies of a customer deleted locally.

Contract: ``reconcile(fix=True)`` deletes every provider copy carrying a locally deleted
customer's qzpay id (``qzpay_customer_id`` metadata at Stripe, the description at MercadoPago)
as well as the copy it was linked to, so that the next reconcile reports nothing for it. The
copies are made outside qzpay, through the official SDKs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import stripe

from qzpay import Billing
from qzpay.customers.models import Customer
from qzpay.customers.reconcile import ReconcileReport
from tests.support.fake_mercadopago import FakeMercadoPago, unique_email
from tests.support.stripe_sdk import live_at_stripe, stripe_copy

if TYPE_CHECKING:
    from tests.support.mercadopago_fixtures import MercadoPagoFactory
    from tests.support.stripe_fixtures import ProviderFactory

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def nothing_for(report: ReconcileReport, customer: Customer, copies: list[str]) -> bool:
    """True when ``report`` mentions neither the customer nor any of its copies."""
    mentioned = [
        *report.unlinked,
        *report.missing_at_provider,
        *report.missing_locally,
        *report.unmanaged,
        *report.duplicates,
        *(i for ids in report.duplicates.values() for i in ids),
        *report.deleted_locally_live_at_provider,
        *(d.customer_id for d in report.drift),
        *report.pending,
        *report.conflicts,
    ]
    fixed = " ".join(report.fixed)
    return not ({customer.id, *copies} & set(mentioned)) and customer.id not in fixed


@pytest.mark.parametrize("deleted", ["here-only", "with-its-copy"])
async def test_reconcile_fix_deletes_every_copy_of_a_deleted_customer(
    storage_url: str,
    make_stripe_provider: ProviderFactory,
    stripe_sdk: stripe.StripeClient,
    deleted: str,
) -> None:
    """``here-only``: deleted without telling Stripe, so the linked copy is live too;
    ``with-its-copy``: the delete removed the linked copy and left the others."""
    if deleted == "here-only" and storage_url == "memory://":
        pytest.skip("needs two Billing instances on one store")
    provider = make_stripe_provider()
    async with (
        Billing(storage=storage_url, provider=provider) as synced,
        Billing(storage=storage_url) as offline,
    ):
        customer = await synced.customers.create(email=unique_email("copied"))
        linked = customer.provider_customer_ids["stripe"]
        copies = [
            await stripe_copy(stripe_sdk, customer.email, customer.id),
            await stripe_copy(stripe_sdk, unique_email("elsewhere"), customer.id),
        ]
        if deleted == "here-only":
            await offline.customers.delete(customer.id)
            live = [linked, *copies]
        else:
            await synced.customers.delete(customer.id)
            live = copies
        assert [await live_at_stripe(stripe_sdk, c) for c in live] == [True] * len(live)

        report = await synced.customers.reconcile("stripe")
        assert report.deleted_locally_live_at_provider.count(customer.id) == 1
        assert customer.id not in report.duplicates  # all of them go: none is to be chosen
        assert not {linked, *copies} & set(report.missing_locally + report.unmanaged)

        fixed = await synced.customers.reconcile("stripe", fix=True)
        assert [await live_at_stripe(stripe_sdk, c) for c in [linked, *copies]] == [False] * 3
        assert customer.id in fixed.deleted_locally_live_at_provider
        assert sorted(f for f in fixed.fixed if customer.id in f) == sorted(
            f"deleted stripe customer {c} of deleted {customer.id}" for c in live
        )

        again = await synced.customers.reconcile("stripe", fix=True)
        assert nothing_for(again, customer, [linked, *copies])


async def test_reconcile_fix_deletes_every_mercadopago_copy_of_a_deleted_customer(
    storage_url: str,
    make_mercadopago_provider: MercadoPagoFactory,
    isolated_mercadopago: FakeMercadoPago,
) -> None:
    """MercadoPago allows one customer per email, so the copies have other emails; they
    carry the qzpay id in their description. A private fake: the report covers all of it."""
    fake = isolated_mercadopago
    provider = make_mercadopago_provider(api_base=fake.url)
    outside = make_mercadopago_provider(api_base=fake.url)  # another system, same account
    async with Billing(storage=storage_url, provider=provider) as billing:
        kept = await billing.customers.create(email=unique_email("kept"))
        customer = await billing.customers.create(email=unique_email("copied"))
        linked = customer.provider_customer_ids["mercadopago"]
        copies = [
            (await outside.customers.create(c, idempotency_key=f"copy-{c.email}")).id
            for c in (
                customer.model_copy(update={"email": unique_email("copy1")}),
                customer.model_copy(update={"email": unique_email("copy2")}),
            )
        ]
        await billing.customers.delete(customer.id)
        assert fake.get(linked) is None
        assert [fake.get(c) is not None for c in copies] == [True, True]

        fixed = await billing.customers.reconcile("mercadopago", fix=True)

        assert fixed.deleted_locally_live_at_provider == [customer.id]
        assert [fake.get(c) for c in copies] == [None, None]
        assert [c["id"] for c in fake.customers()] == [kept.provider_customer_ids["mercadopago"]]
        again = await billing.customers.reconcile("mercadopago")
        assert again.in_sync
        assert nothing_for(again, customer, [linked, *copies])
