"""The customer adapter contract: what every provider's ``provider.customers`` does, observed
through the protocol, on the wire (the fault proxy's log) and in the server's own copy."""

from __future__ import annotations

import re
from typing import Any

import pytest

from qzpay.customers.models import Address
from qzpay.customers.sync import create_key
from qzpay.errors import ProviderSyncError
from qzpay.providers import QZPAY_CUSTOMER_ID_KEY, PaymentProvider, ProviderCustomer
from tests.factories import ADDRESS, changed, idempotency_key, stored_customer, unique_email
from tests.providers.contract.kit import SDK_WARNING, ProviderKit

pytestmark = pytest.mark.filterwarnings(SDK_WARNING)


def test_the_provider_satisfies_the_protocol(provider_kit: ProviderKit) -> None:
    provider: PaymentProvider = provider_kit.provider  # checked by mypy
    assert provider.name == provider_kit.name


def test_a_provider_customer_is_immutable() -> None:
    customer = ProviderCustomer("cus_1", None, None, None, None, {}, None, False)
    with pytest.raises(AttributeError):
        customer.id = "cus_2"  # type: ignore[misc]


class TestCreate:
    async def test_returns_every_held_field_marks_the_copy_and_sends_its_key(
        self, provider_kit: ProviderKit
    ) -> None:
        kit = provider_kit
        customer = stored_customer()
        caller_key = idempotency_key()

        created = await kit.proxied.customers.create(customer, idempotency_key=caller_key)

        held = kit.held(customer)
        assert re.fullmatch(kit.id_pattern, created.id)
        assert (created.email, created.name, created.phone, created.address) == (
            held.email,
            held.name,
            held.phone,
            held.address,
        )
        assert created.metadata == {**held.metadata, QZPAY_CUSTOMER_ID_KEY: customer.id}
        assert (created.qzpay_customer_id, created.deleted) == (customer.id, False)
        [sent] = kit.proxy.matching("POST", kit.create_path)
        assert sent.headers[kit.key_header] == kit.sent_key("create", customer.id, caller_key)
        assert await kit.stored_qzpay_id(created.id) == customer.id
        assert await kit.provider.customers.retrieve(created.id) == created
        # and merging the provider's copy back loses nothing qzpay keeps
        assert kit.provider.customers.merge_remote(customer, created) == customer

    async def test_unset_fields_come_back_unset(self, provider_kit: ProviderKit) -> None:
        customer = stored_customer(
            name=None, phone=None, address=Address(city="Lisbon", country="PT"), metadata={}
        )

        created = await provider_kit.create(customer)

        assert (created.name, created.phone) == (None, None)
        assert created.address == provider_kit.held(customer).address
        assert created.metadata == {QZPAY_CUSTOMER_ID_KEY: customer.id}

    async def test_the_qzpay_id_wins_over_user_metadata(self, provider_kit: ProviderKit) -> None:
        customer = stored_customer(metadata={QZPAY_CUSTOMER_ID_KEY: "spoofed"})

        created = await provider_kit.create(customer)

        assert created.qzpay_customer_id == customer.id
        assert await provider_kit.stored_qzpay_id(created.id) == customer.id

    async def test_repeating_a_create_with_its_key_returns_the_first_and_makes_one_copy(
        self, provider_kit: ProviderKit
    ) -> None:
        kit = provider_kit
        # The proxy replays a repeated Idempotency-Key as Stripe does (localstripe ignores
        # keys); MercadoPago's header is another one, and the fake honours none by default.
        kit.proxy.replay_idempotency = True
        customer = stored_customer()
        caller_key = create_key(customer.id)

        first = await kit.proxied.customers.create(customer, idempotency_key=caller_key)
        second = await kit.proxied.customers.create(customer, idempotency_key=caller_key)

        assert second == first
        assert await kit.copies(customer.email) == [first.id]
        creates = kit.proxy.matching("POST", kit.create_path)
        assert len(creates) == 2
        assert {r.headers[kit.key_header] for r in creates} == {
            kit.sent_key("create", customer.id, caller_key)
        }


FIELD_CHANGES = [
    pytest.param({"name": "Grace Hopper"}, id="name"),
    pytest.param({"phone": "+442079460958"}, id="phone"),
    pytest.param(
        {"address": ADDRESS.model_copy(update={"line1": "2 Side St", "postal_code": "10001"})},
        id="address",
    ),
    pytest.param({"name": None, "phone": None, "address": None}, id="cleared"),
    pytest.param({"email": "moved"}, id="email"),
    pytest.param({"metadata": {"plan": "team", "new": "1"}}, id="metadata"),
]


class TestUpdate:
    async def test_sends_one_keyed_write_and_returns_the_change(
        self, provider_kit: ProviderKit
    ) -> None:
        kit = provider_kit
        before = stored_customer()
        created = await kit.create(before)
        caller_key = idempotency_key()

        updated = await kit.proxied.customers.update(
            created.id, before, changed(before, name="Ada King"), idempotency_key=caller_key
        )

        [sent] = kit.proxy.matching(kit.update_method, kit.customer_path(created.id))
        assert sent.headers[kit.key_header] == kit.sent_key("update", before.id, caller_key)
        held = kit.held(before)
        assert updated.name == "Ada King"
        assert (updated.email, updated.phone, updated.address) == (
            held.email,
            held.phone,
            held.address,
        )
        assert await kit.provider.customers.retrieve(created.id) == updated

    @pytest.mark.parametrize("change", FIELD_CHANGES)
    async def test_each_field_ends_as_the_provider_holds_it(
        self, provider_kit: ProviderKit, change: dict[str, Any]
    ) -> None:
        """After an update the provider's copy agrees with ``after`` on every field it
        holds: merging it into ``after`` changes nothing (an email MercadoPago may not
        change stays local; Stripe takes it)."""
        if change.get("email") == "moved":
            change = {"email": unique_email("moved")}
        customers = provider_kit.provider.customers
        before = stored_customer()
        created = await customers.create(before, idempotency_key=idempotency_key())
        after = changed(before, **change)

        updated = await customers.update(
            created.id, before, after, idempotency_key=idempotency_key()
        )

        assert customers.merge_remote(after, updated) == after
        assert await customers.retrieve(created.id) == updated

    async def test_changing_only_what_the_provider_does_not_hold_only_reads(
        self, provider_kit: ProviderKit
    ) -> None:
        kit = provider_kit
        before = stored_customer()
        created = await kit.create(before)
        after = changed(before, **kit.local_only_changes())

        updated = await kit.proxied.customers.update(
            created.id, before, after, idempotency_key=idempotency_key()
        )

        assert [r.method for r in kit.proxy.requests] == ["GET"]
        assert updated == created

    @pytest.mark.parametrize("with_changes", [True, False])
    async def test_an_unknown_customer_fails_unambiguously(
        self, provider_kit: ProviderKit, with_changes: bool
    ) -> None:
        before = stored_customer()
        after = changed(before, name="Other") if with_changes else before

        with pytest.raises(ProviderSyncError) as caught:
            await provider_kit.provider.customers.update(
                provider_kit.unknown_id, before, after, idempotency_key=idempotency_key()
            )

        assert (caught.value.operation, caught.value.ambiguous) == ("update_customer", False)


class TestDelete:
    async def test_sends_its_key_and_the_customer_is_gone(self, provider_kit: ProviderKit) -> None:
        kit = provider_kit
        created = await kit.create()
        caller_key = idempotency_key()

        await kit.proxied.customers.delete(created.id, idempotency_key=caller_key)

        [sent] = kit.proxy.matching("DELETE", kit.customer_path(created.id))
        assert sent.headers[kit.key_header] == kit.sent_key("delete", created.id, caller_key)
        assert await kit.provider.customers.retrieve(created.id) is None
        assert not await kit.exists(created.id)

    async def test_deleting_twice_succeeds(self, provider_kit: ProviderKit) -> None:
        customers = provider_kit.provider.customers
        created = await customers.create(stored_customer(), idempotency_key=idempotency_key())

        await customers.delete(created.id, idempotency_key=idempotency_key())
        await customers.delete(created.id, idempotency_key=idempotency_key())

        assert await customers.retrieve(created.id) is None

    async def test_retrieving_an_unknown_customer_is_none(self, provider_kit: ProviderKit) -> None:
        assert await provider_kit.provider.customers.retrieve(provider_kit.unknown_id) is None


class TestFind:
    async def test_finds_the_customer_carrying_the_qzpay_id_by_one_email_lookup(
        self, provider_kit: ProviderKit
    ) -> None:
        kit = provider_kit
        customer = stored_customer()
        created = await kit.create(customer)

        assert await kit.proxied.customers.find(customer) == created
        [lookup] = kit.proxy.matching("GET", kit.list_path)
        assert f"email={customer.email.replace('@', '%40')}" in lookup.query

    async def test_none_when_never_created(self, provider_kit: ProviderKit) -> None:
        assert await provider_kit.provider.customers.find(stored_customer()) is None


class TestList:
    async def test_pages_through_every_customer_once(self, provider_kit: ProviderKit) -> None:
        kit = provider_kit
        created = [await kit.create() for _ in range(5)]
        paged = kit.make(proxied=True, page_size=2)

        listed = [customer async for customer in paged.customers.list()]

        by_id = {customer.id: customer for customer in listed}
        assert len(by_id) == len(listed)  # no customer twice
        assert all(by_id[c.id] == c for c in created)
        pages = kit.proxy.matching("GET", kit.list_path)
        assert len(pages) == -(-len(listed) // 2)
        assert all(kit.is_later_page(page.query) for page in pages[1:])
        assert all("email" not in page.query for page in pages)

    async def test_a_failing_page_fails_the_listing(self, provider_kit: ProviderKit) -> None:
        kit = provider_kit
        for _ in range(3):
            await kit.create()
        paged = kit.make(proxied=True, page_size=2)
        kit.proxy.inject(
            kit.answer(500),
            method="GET",
            path=kit.list_path,
            where=lambda r: kit.is_later_page(r.query),
        )

        with pytest.raises(ProviderSyncError) as caught:
            _ = [customer async for customer in paged.customers.list()]

        assert caught.value.operation == "list_customers"


class TestMergeRemote:
    async def test_takes_the_held_fields_and_keeps_what_only_qzpay_has(
        self, provider_kit: ProviderKit
    ) -> None:
        kit = provider_kit
        customer = stored_customer()
        remote = await kit.create(customer)
        local_only = kit.local_only_changes()
        local = changed(customer, name="Edited Locally", **local_only)

        merged = kit.provider.customers.merge_remote(local, remote)

        assert merged.name == customer.name  # the provider's value of a field it holds
        assert {field: getattr(merged, field) for field in local_only} == local_only
        assert (merged.id, merged.created_at, merged.updated_at) == (
            local.id,
            local.created_at,
            local.updated_at,
        )
