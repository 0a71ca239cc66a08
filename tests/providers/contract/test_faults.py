"""Failure classification, the same for every provider: each failure is a ProviderSyncError
whose ``ambiguous`` flag says whether the provider may have applied the request. The SDK must
never resend on its own: the proxy must see exactly one matching request."""

from __future__ import annotations

import asyncio
import time

import pytest

from qzpay.errors import ProviderSyncError
from tests.factories import changed, idempotency_key, stored_customer
from tests.providers.contract.kit import SDK_WARNING, ProviderKit
from tests.support.fault_proxy import Fault

pytestmark = pytest.mark.filterwarnings(SDK_WARNING)

FaultSpec = str | int
"""``"reset"``, ``"drop"``, or an HTTP status answered in the provider's error shape."""


def fault(kit: ProviderKit, spec: FaultSpec) -> Fault:
    if spec == "reset":
        return Fault.reset()
    if spec == "drop":
        return Fault.drop()
    assert isinstance(spec, int)
    return kit.answer(spec)


# (fault, ambiguous, applied)
CREATE_FAULTS = [
    pytest.param("reset", True, False, id="reset-before-forwarding"),
    pytest.param("drop", True, True, id="response-dropped"),
    pytest.param(500, True, False, id="500"),
    pytest.param(503, True, False, id="503"),
    pytest.param(429, False, False, id="429"),
    pytest.param(400, False, False, id="400"),
]
WRITE_FAULTS = [
    pytest.param("drop", True, True, id="response-dropped"),
    pytest.param(500, True, False, id="500"),
    pytest.param(429, False, False, id="429"),
]


@pytest.mark.parametrize(("spec", "ambiguous", "applied"), CREATE_FAULTS)
async def test_a_create_fault_is_classified_and_an_applied_create_is_found(
    provider_kit: ProviderKit, spec: FaultSpec, ambiguous: bool, applied: bool
) -> None:
    kit = provider_kit
    customer = stored_customer()
    kit.proxy.inject(fault(kit, spec), method="POST", path=kit.create_path)

    with pytest.raises(ProviderSyncError) as caught:
        await kit.proxied.customers.create(customer, idempotency_key=idempotency_key())

    error = caught.value
    assert (error.provider, error.operation, error.ambiguous) == (
        kit.name,
        "create_customer",
        ambiguous,
    )
    assert error.cause is not None
    assert len(kit.proxy.matching("POST", kit.create_path)) == 1
    found = await kit.provider.customers.find(customer)
    assert (found is not None) == applied
    assert await kit.copies(customer.email) == ([found.id] if found is not None else [])


async def test_a_refused_connection_is_not_ambiguous(provider_kit: ProviderKit) -> None:
    kit = provider_kit
    async with kit.proxy.refusing():
        with pytest.raises(ProviderSyncError) as caught:
            await kit.proxied.customers.create(stored_customer(), idempotency_key=idempotency_key())

    assert caught.value.ambiguous is False
    assert kit.proxy.requests == []


async def test_a_timeout_is_ambiguous_and_may_still_apply(provider_kit: ProviderKit) -> None:
    kit = provider_kit
    impatient = kit.make(proxied=True, timeout=0.3)
    customer = stored_customer()
    kit.proxy.inject(Fault.delay(0.8), method="POST", path=kit.create_path)

    started = time.monotonic()
    with pytest.raises(ProviderSyncError) as caught:
        await impatient.customers.create(customer, idempotency_key=idempotency_key())

    assert time.monotonic() - started < 0.8
    assert caught.value.ambiguous is True
    assert len(kit.proxy.matching("POST", kit.create_path)) == 1
    async with asyncio.timeout(5):  # the slow request still lands: hence "ambiguous"
        # Polling: the test servers offer nothing to wait on for "this request was applied".
        while await kit.provider.customers.find(customer) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


@pytest.mark.parametrize(("spec", "ambiguous", "applied"), WRITE_FAULTS)
async def test_an_update_fault_is_classified(
    provider_kit: ProviderKit, spec: FaultSpec, ambiguous: bool, applied: bool
) -> None:
    kit = provider_kit
    before = stored_customer()
    created = await kit.create(before)
    path = kit.customer_path(created.id)
    kit.proxy.inject(fault(kit, spec), method=kit.update_method, path=path)

    with pytest.raises(ProviderSyncError) as caught:
        await kit.proxied.customers.update(
            created.id, before, changed(before, name="Changed"), idempotency_key=idempotency_key()
        )

    assert (caught.value.operation, caught.value.ambiguous) == ("update_customer", ambiguous)
    assert len(kit.proxy.matching(kit.update_method, path)) == 1
    current = await kit.provider.customers.retrieve(created.id)
    assert current is not None
    assert (current.name == "Changed") == applied


@pytest.mark.parametrize(("spec", "ambiguous", "applied"), WRITE_FAULTS)
async def test_a_delete_fault_is_classified(
    provider_kit: ProviderKit, spec: FaultSpec, ambiguous: bool, applied: bool
) -> None:
    kit = provider_kit
    created = await kit.create()
    path = kit.customer_path(created.id)
    kit.proxy.inject(fault(kit, spec), method="DELETE", path=path)

    with pytest.raises(ProviderSyncError) as caught:
        await kit.proxied.customers.delete(created.id, idempotency_key=idempotency_key())

    assert (caught.value.operation, caught.value.ambiguous) == ("delete_customer", ambiguous)
    assert len(kit.proxy.matching("DELETE", path)) == 1
    assert await kit.exists(created.id) is not applied


async def test_a_post_is_not_resent_on_a_reused_connection(provider_kit: ProviderKit) -> None:
    kit = provider_kit
    await kit.proxied.customers.retrieve(kit.unknown_id)  # pools a connection
    kit.proxy.inject(Fault.drop(), method="POST", path=kit.create_path)

    with pytest.raises(ProviderSyncError) as caught:
        await kit.proxied.customers.create(stored_customer(), idempotency_key=idempotency_key())

    assert caught.value.ambiguous is True
    assert len(kit.proxy.matching("POST", kit.create_path)) == 1


@pytest.mark.parametrize("spec", ["drop", 500], ids=["drop", "500"])
async def test_a_read_fault_fails_the_read_without_resending(
    provider_kit: ProviderKit, spec: FaultSpec
) -> None:
    kit = provider_kit
    await kit.proxied.customers.retrieve(kit.unknown_id)  # pools a connection
    wanted = f"{kit.unknown_id}x"
    path = kit.customer_path(wanted)
    kit.proxy.inject(fault(kit, spec), method="GET", path=path)

    with pytest.raises(ProviderSyncError) as caught:
        await kit.proxied.customers.retrieve(wanted)

    assert caught.value.operation == "retrieve_customer"
    assert len(kit.proxy.matching("GET", path)) == 1
