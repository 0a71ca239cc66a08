"""Prices, the same for every provider: a round trip, archiving, find by qzpay id, and the
failure classification of the customers' contract — with no duplicate after an ambiguous
create, because the caller looks (``find``) before it would resend. Plans exist only at Stripe
and are tested in ``tests/providers/test_stripe_catalog.py``."""

from __future__ import annotations

import pytest

from qzpay.errors import ProviderSyncError
from qzpay.providers.base import PriceUpdate, prices_of, same_terms
from tests.factories import idempotency_key
from tests.providers.catalog_factories import changed, stored_price
from tests.providers.contract.kit import SDK_WARNING, ProviderKit
from tests.providers.contract.test_faults import CREATE_FAULTS, WRITE_FAULTS, FaultSpec, fault

pytestmark = pytest.mark.filterwarnings(SDK_WARNING)


async def test_a_price_round_trips_and_is_found_by_its_qzpay_id(provider_kit: ProviderKit) -> None:
    kit = provider_kit
    plan = await kit.catalog_plan()
    price = stored_price(plan, currency=kit.price_currency, unit_amount=4990, trial_days=14)

    created = await kit.provider.prices.create(price, plan=plan, idempotency_key=idempotency_key())

    assert created is not None
    assert (created.qzpay_price_id, created.active) == (price.id, True)
    assert same_terms(price, created)
    assert await kit.provider.prices.retrieve(created.id) == created
    assert await kit.provider.prices.find(price, plan=plan) == created
    assert await kit.price_copies(price) == [created.id]
    assert created.id in [listed.id async for listed in kit.provider.prices.list()]


async def test_every_provider_exposes_prices(provider_kit: ProviderKit) -> None:
    assert prices_of(provider_kit.provider) is provider_kit.provider.prices


async def test_archiving_makes_it_inactive_and_merge_remote_archives_here(
    provider_kit: ProviderKit,
) -> None:
    kit = provider_kit
    plan = await kit.catalog_plan()
    price = stored_price(plan, currency=kit.price_currency)
    created = await kit.provider.prices.create(price, plan=plan, idempotency_key=idempotency_key())
    assert created is not None

    await kit.provider.prices.archive(created.id, idempotency_key=idempotency_key())

    remote = await kit.provider.prices.retrieve(created.id)
    assert remote is not None
    assert remote.active is False
    assert kit.provider.prices.merge_remote(price, remote).active is False
    # Archiving again (or undoing the create, which archives) is harmless.
    await kit.provider.prices.delete(created.id, idempotency_key=idempotency_key())


async def test_an_update_to_inactive_archives_and_a_no_op_update_only_reads(
    provider_kit: ProviderKit,
) -> None:
    kit = provider_kit
    plan = await kit.catalog_plan()
    price = stored_price(plan, currency=kit.price_currency)
    created = await kit.provider.prices.create(price, plan=plan, idempotency_key=idempotency_key())
    assert created is not None
    proxied = kit.proxied.prices

    same = await proxied.update(
        created.id, PriceUpdate(price, price, plan), idempotency_key=idempotency_key()
    )
    assert same == created
    assert [r.method for r in kit.proxy.requests] == ["GET"]

    archived = changed(price, active=False)
    updated = await proxied.update(
        created.id, PriceUpdate(price, archived, plan), idempotency_key=idempotency_key()
    )
    assert updated.active is False
    assert same_terms(price, updated)  # amount, currency and period never change


async def test_an_unknown_price_is_none(provider_kit: ProviderKit) -> None:
    kit = provider_kit
    unknown = "price_doesnotexist" if kit.name == "stripe" else "0" * 32
    assert await kit.provider.prices.retrieve(unknown) is None
    await kit.provider.prices.archive(unknown, idempotency_key=idempotency_key())  # gone: done


@pytest.mark.parametrize(("spec", "ambiguous", "applied"), CREATE_FAULTS)
async def test_a_price_create_fault_is_classified_and_never_duplicated(
    provider_kit: ProviderKit, spec: FaultSpec, ambiguous: bool, applied: bool
) -> None:
    kit = provider_kit
    plan = await kit.catalog_plan()
    price = stored_price(plan, currency=kit.price_currency)
    kit.proxy.inject(fault(kit, spec), method="POST", path=kit.price_create_path)

    with pytest.raises(ProviderSyncError) as caught:
        await kit.proxied.prices.create(price, plan=plan, idempotency_key=idempotency_key())

    error = caught.value
    assert (error.provider, error.operation, error.ambiguous) == (
        kit.name,
        "create_price",
        ambiguous,
    )
    assert len(kit.proxy.matching("POST", kit.price_create_path)) == 1
    # What the sync machinery does next: look before any resend.
    found = await kit.provider.prices.find(price, plan=plan)
    assert (found is not None) == applied
    if found is None and ambiguous:
        await kit.provider.prices.create(price, plan=plan, idempotency_key=idempotency_key())
    copies = await kit.price_copies(price)
    assert len(copies) == (1 if applied or ambiguous else 0)
    if found is not None:
        assert copies == [found.id]


@pytest.mark.parametrize(("spec", "ambiguous", "applied"), WRITE_FAULTS)
async def test_a_price_update_fault_is_classified(
    provider_kit: ProviderKit, spec: FaultSpec, ambiguous: bool, applied: bool
) -> None:
    kit = provider_kit
    plan = await kit.catalog_plan()
    price = stored_price(plan, currency=kit.price_currency)
    created = await kit.provider.prices.create(price, plan=plan, idempotency_key=idempotency_key())
    assert created is not None
    path = kit.price_path(created.id)
    kit.proxy.inject(fault(kit, spec), method=kit.price_update_method, path=path)

    with pytest.raises(ProviderSyncError) as caught:
        await kit.proxied.prices.update(
            created.id,
            PriceUpdate(price, changed(price, active=False), plan),
            idempotency_key=idempotency_key(),
        )

    assert (caught.value.operation, caught.value.ambiguous) == ("update_price", ambiguous)
    assert len(kit.proxy.matching(kit.price_update_method, path)) == 1
    current = await kit.provider.prices.retrieve(created.id)
    assert current is not None
    assert (current.active is False) == applied


async def test_a_price_read_fault_fails_the_read(provider_kit: ProviderKit) -> None:
    kit = provider_kit
    plan = await kit.catalog_plan()
    price = stored_price(plan, currency=kit.price_currency)
    created = await kit.provider.prices.create(price, plan=plan, idempotency_key=idempotency_key())
    assert created is not None
    path = kit.price_path(created.id)
    kit.proxy.inject(fault(kit, 500), method="GET", path=path)

    with pytest.raises(ProviderSyncError) as caught:
        await kit.proxied.prices.retrieve(created.id)

    assert (caught.value.operation, caught.value.ambiguous) == ("retrieve_price", True)
