"""Input rules that need no storage."""

from __future__ import annotations

import pytest

from qzpay import Address, Billing
from qzpay.errors import ValidationError


@pytest.fixture
async def billing():
    async with Billing(storage="memory://") as instance:
        yield instance


class TestPhone:
    @pytest.mark.parametrize(
        ("given", "stored"),
        [
            ("+1 415 555 2671", "+14155552671"),
            ("+14155552671", "+14155552671"),
            ("+44 20 7946 0958", "+442079460958"),
            ("+54 9 11 2345-6789", "+5491123456789"),
        ],
    )
    async def test_stored_in_e164(self, billing: Billing, given: str, stored: str) -> None:
        customer = await billing.customers.create(email="p@example.com", phone=given)
        assert customer.phone == stored

    @pytest.mark.parametrize("given", ["415 555 2671", "+1 555", "phone", "", "+999 1234"])
    async def test_rejects(self, billing: Billing, given: str) -> None:
        with pytest.raises(ValidationError) as caught:
            await billing.customers.create(email="p@example.com", phone=given)
        assert caught.value.errors[0]["code"] == "invalid_phone"


class TestAddress:
    async def test_address_object_and_blank_fields(self, billing: Billing) -> None:
        customer = await billing.customers.create(
            email="a@example.com", address=Address(line1=" 1 Main St ", line2="", country="us")
        )
        assert customer.address == Address(line1="1 Main St", country="US")

    async def test_all_blank_means_no_address(self, billing: Billing) -> None:
        customer = await billing.customers.create(email="a@example.com", address={"line1": " "})
        assert customer.address is None

    @pytest.mark.parametrize(
        ("address", "field"),
        [
            ({"country": "USA"}, "address.country"),
            ({"country": "ZZ"}, "address.country"),
            ({"city": 5}, "address.city"),
            ({"city": "x" * 201}, "address.city"),
            ({"zip": "123"}, "address.zip"),
            ("1 Main St", "address"),
        ],
    )
    async def test_rejects(self, billing: Billing, address: object, field: str) -> None:
        with pytest.raises(ValidationError) as caught:
            await billing.customers.create(email="a@example.com", address=address)  # type: ignore[arg-type]
        assert [e["field"] for e in caught.value.errors] == [field]


class TestName:
    async def test_length_limit(self, billing: Billing) -> None:
        assert (await billing.customers.create(email="a@example.com", name="n" * 256)).name
        with pytest.raises(ValidationError):
            await billing.customers.create(email="a@example.com", name="n" * 257)


class TestLinkArguments:
    @pytest.mark.parametrize(
        ("provider", "provider_customer_id"),
        [("Stripe", "cus_1"), ("", "cus_1"), ("stripe", ""), ("stripe", 5)],
    )
    async def test_rejects(
        self, billing: Billing, provider: str, provider_customer_id: object
    ) -> None:
        customer = await billing.customers.create(email="a@example.com")
        with pytest.raises(ValidationError):
            await billing.customers.link(
                customer.id,
                provider=provider,
                provider_customer_id=provider_customer_id,  # type: ignore[arg-type]
            )

    async def test_non_string_id(self, billing: Billing) -> None:
        with pytest.raises(ValidationError):
            await billing.customers.get(123)  # type: ignore[arg-type]


class TestListArguments:
    async def test_filters_are_checked(self, billing: Billing) -> None:
        with pytest.raises(ValidationError) as caught:
            await billing.customers.list(email=5, metadata={"k": 1}, include_deleted="yes")  # type: ignore[arg-type, dict-item]
        assert {e["field"] for e in caught.value.errors} == {
            "email",
            "metadata.k",
            "include_deleted",
        }

    async def test_events_limit(self, billing: Billing) -> None:
        with pytest.raises(ValidationError):
            await billing.events.list(limit=0)


class TestNulCharacter:
    """PostgreSQL text cannot hold NUL: it must be a 422-style error on every backend."""

    async def test_rejected_in_every_text_field(self, billing: Billing) -> None:
        with pytest.raises(ValidationError) as caught:
            await billing.customers.create(
                email="a\x00@example.com",
                name="N\x00",
                address={"city": "C\x00"},
                metadata={"k\x00": "v", "k": "v\x00"},
                idempotency_key="i\x00",
            )
        fields = {e["field"] for e in caught.value.errors}
        assert fields == {
            "email",
            "name",
            "address.city",
            "metadata.k\x00",
            "metadata.k",
            "idempotency_key",
        }

    async def test_rejected_in_ids_and_filters(self, billing: Billing) -> None:
        for call in (
            billing.customers.get("cus_\x00"),
            billing.customers.get_by_external_id("x\x00"),
            billing.customers.list(email="a\x00"),
            billing.customers.list(metadata={"k": "\x00"}),
            billing.events.list(after="evt_\x00"),
        ):
            with pytest.raises(ValidationError):
                await call
