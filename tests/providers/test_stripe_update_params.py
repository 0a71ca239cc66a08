"""The update parameters Stripe receives, pinned field by field and in order: built by one
helper for customers, products and prices (``qzpay.providers.stripe.fields``), so a change to
it shows here before it changes what any adapter sends."""

from __future__ import annotations

from qzpay.providers.base import QZPAY_PLAN_ID_KEY, ProviderPlan, merge_plan_remote
from qzpay.providers.stripe.catalog_mapping import price_update_params, product_update_params
from qzpay.providers.stripe.mapping import update_params
from tests.factories import changed, stored_customer
from tests.providers.catalog_factories import changed as changed_record
from tests.providers.catalog_factories import stored_plan, stored_price


def test_a_customer_update_sends_changes_and_clears_with_empty_strings() -> None:
    before = stored_customer()
    after = changed(
        before, email="new@example.com", name=None, address=None, metadata={"plan": "team"}
    )

    assert list(update_params(before, after).items()) == [
        ("email", "new@example.com"),
        ("name", ""),
        ("address", ""),
        ("metadata", {"plan": "team", "team": ""}),
    ]


def test_an_unchanged_customer_sends_nothing() -> None:
    customer = stored_customer()

    assert update_params(customer, changed(customer)) == {}


def test_a_product_update_never_sends_our_id_and_keeps_false() -> None:
    before = stored_plan(metadata={QZPAY_PLAN_ID_KEY: "plan_x", "tier": "gold"})
    after = changed_record(before, description=None, active=False, metadata={})

    assert list(product_update_params(before, after).items()) == [
        ("description", ""),
        ("active", False),
        ("metadata", {"tier": ""}),
    ]


def test_a_price_lookup_key_is_transferred_or_cleared() -> None:
    before = stored_price(stored_plan())
    given = changed_record(before, lookup_key="pro-monthly", active=False)
    cleared = changed_record(given, lookup_key=None)

    assert list(price_update_params(before, given).items()) == [
        ("lookup_key", "pro-monthly"),
        ("transfer_lookup_key", True),
        ("active", False),
    ]
    assert price_update_params(given, cleared) == {"lookup_key": ""}


def test_a_merge_takes_the_provider_metadata_without_our_id() -> None:
    local = stored_plan()
    remote = ProviderPlan(
        id="prod_1",
        name=None,
        description=None,
        active=False,
        metadata={QZPAY_PLAN_ID_KEY: local.id, "tier": "silver"},
        qzpay_plan_id=local.id,
    )

    merged = merge_plan_remote(local, remote)

    assert (merged.name, merged.description, merged.active) == (local.name, None, False)
    assert merged.metadata == {"tier": "silver"}
