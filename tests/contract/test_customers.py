"""The customers contract: every test runs against memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from qzpay import Address, Billing, Customer, Event, Page
from qzpay.errors import ConflictError, NotFoundError, QZPayError, ValidationError
from tests.factories import create_customer, customer_args


class TestCreate:
    async def test_returns_the_stored_customer(self, billing: Billing) -> None:
        customer = await billing.customers.create(
            email="user@example.com",
            name="John Doe",
            phone=None,
            address=None,
            metadata={"userId": "usr_123"},
        )
        assert customer.id.startswith("cus_")
        assert customer.email == "user@example.com"
        assert customer.name == "John Doe"
        assert customer.metadata == {"userId": "usr_123"}
        assert customer.provider_customer_ids == {}
        assert customer.deleted_at is None
        assert customer.created_at == customer.updated_at
        assert customer.created_at.tzinfo is not None
        assert customer.created_at.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - customer.created_at) < timedelta(minutes=1)
        assert await billing.customers.get(customer.id) == customer

    async def test_every_field_round_trips_exactly(self, billing: Billing) -> None:
        customer = await billing.customers.create(
            email="Ana.Souza@Example.COM.br",
            name="  Ana Souza ",
            phone="+55 11 91234-5678",
            address=Address(line1="Av. Paulista, 1000", city="São Paulo", country="BR"),
            metadata={"userId": "usr_ß", "emoji": "🚀", "spaces": "  "},
        )
        assert customer.email == "Ana.Souza@Example.COM.br"  # stored as given
        assert customer.name == "Ana Souza"  # trimmed
        assert customer.phone == "+5511912345678"  # E.164
        assert customer.address == Address(
            line1="Av. Paulista, 1000", city="São Paulo", country="BR"
        )
        stored = await billing.customers.get(customer.id)
        assert stored == customer
        assert stored is not None
        assert stored.created_at.microsecond == customer.created_at.microsecond

    async def test_address_accepts_a_plain_dict_and_normalizes_country(
        self, billing: Billing
    ) -> None:
        customer = await create_customer(billing, address={"city": "Lima", "country": "pe"})
        assert customer.address == Address(city="Lima", country="PE")

    async def test_ids_increase_in_creation_order(self, billing: Billing) -> None:
        ids = [(await create_customer(billing)).id for _ in range(20)]
        assert ids == sorted(ids)
        assert len(set(ids)) == 20

    async def test_metadata_defaults_to_empty(self, billing: Billing) -> None:
        customer = await billing.customers.create(email="plain@example.com")
        assert customer.metadata == {}
        assert customer.name is None


class TestValidation:
    async def test_reports_every_problem_at_once_and_stores_nothing(self, billing: Billing) -> None:
        with pytest.raises(ValidationError) as caught:
            await billing.customers.create(
                email="not-an-email",
                name="   ",
                phone="12",
                address={"country": "XX", "planet": "Mars"},
                metadata={"n": 1, "x" * 41: "v", "a[b]": "v"},  # type: ignore[dict-item]
            )
        fields = {e["field"] for e in caught.value.errors}
        assert {"email", "name", "phone", "address.country", "address.planet"} <= fields
        assert "metadata.n" in fields
        assert f"metadata.{'x' * 41}" in fields
        assert "metadata.a[b]" in fields
        assert caught.value.code == "validation_error"
        assert (await billing.customers.list()).total == 0
        assert await billing.events.list() == []

    @pytest.mark.parametrize(
        "email", ["", "plain", "a@", "@example.com", "a b@example.com", "user@exa mple.com"]
    )
    async def test_rejects_bad_email(self, billing: Billing, email: str) -> None:
        with pytest.raises(ValidationError) as caught:
            await billing.customers.create(email=email)
        assert caught.value.errors[0]["field"] == "email"

    async def test_metadata_values_are_never_coerced(self, billing: Billing) -> None:
        with pytest.raises(ValidationError) as caught:
            await create_customer(billing, metadata={"count": 3, "flag": True, "none": None})
        assert {e["field"] for e in caught.value.errors} == {
            "metadata.count",
            "metadata.flag",
            "metadata.none",
        }

    async def test_metadata_rejects_empty_values_and_the_reserved_key(
        self, billing: Billing
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            await create_customer(billing, metadata={"blank": "", "qzpay_customer_id": "x"})
        assert {e["code"] for e in caught.value.errors} == {"empty_value", "reserved_key"}

    async def test_metadata_limits(self, billing: Billing) -> None:
        ok = {f"k{i}": "v" * 500 for i in range(50)}
        ok["k" * 40] = ok.pop("k0")
        assert (await create_customer(billing, metadata=ok)).metadata == ok
        with pytest.raises(ValidationError) as too_many:
            await create_customer(billing, metadata={f"k{i}": "v" for i in range(51)})
        assert too_many.value.errors[0]["code"] == "too_many_keys"
        with pytest.raises(ValidationError):
            await create_customer(billing, metadata={"k": "v" * 501})
        with pytest.raises(ValidationError):
            await create_customer(billing, metadata={"": "v"})

    async def test_unknown_keyword_is_an_error(self, billing: Billing) -> None:
        with pytest.raises(ValidationError) as caught:
            await billing.customers.create(email="a@example.com", nmae="typo")  # type: ignore[arg-type]
        assert caught.value.errors[0] == {
            "field": "nmae",
            "code": "unknown_argument",
            "message": "unexpected keyword argument 'nmae'",
        }
        assert isinstance(caught.value, TypeError)

    async def test_non_string_email_is_a_validation_error(self, billing: Billing) -> None:
        with pytest.raises(ValidationError):
            await billing.customers.create(email=42)  # type: ignore[arg-type]

    async def test_errors_share_one_base_with_stable_codes(self) -> None:
        assert issubclass(ValidationError, QZPayError)
        assert NotFoundError("x").code == "not_found"
        assert ConflictError("x").code == "conflict"


class TestGet:
    async def test_unknown_id_is_none(self, billing: Billing) -> None:
        assert await billing.customers.get("cus_unknown") is None

    async def test_deleted_customer_is_returned_with_deleted_at(self, billing: Billing) -> None:
        customer = await create_customer(billing)
        await billing.customers.delete(customer.id)
        stored = await billing.customers.get(customer.id)
        assert stored is not None
        assert stored.deleted_at is not None
        assert stored.deleted_at >= customer.created_at

    async def test_returned_dicts_are_copies(self, billing: Billing) -> None:
        customer = await create_customer(billing, metadata={"a": "1"})
        customer.metadata["a"] = "changed"
        stored = await billing.customers.get(customer.id)
        assert stored is not None
        assert stored.metadata == {"a": "1"}

    async def test_customer_is_immutable(self, billing: Billing) -> None:
        customer = await create_customer(billing)
        with pytest.raises(Exception, match="frozen"):
            customer.name = "other"  # type: ignore[misc]


class TestProviderLinks:
    async def test_get_by_external_id(self, billing: Billing) -> None:
        customer = await create_customer(billing)
        linked = await billing.customers.link(
            customer.id, provider="stripe", provider_customer_id="cus_xyz"
        )
        assert linked.provider_customer_ids == {"stripe": "cus_xyz"}
        assert await billing.customers.get_by_external_id("cus_xyz") == linked
        assert await billing.customers.get_by_external_id("cus_xyz", provider="stripe") == linked
        assert await billing.customers.get_by_external_id("cus_xyz", provider="mercadopago") is None
        assert await billing.customers.get_by_external_id("cus_nope") is None

    async def test_link_emits_updated_and_unlink_reverts(self, billing: Billing) -> None:
        customer = await create_customer(billing)
        events: list[Event] = []
        billing.on("customer.updated", events.append)
        await billing.customers.link(customer.id, provider="stripe", provider_customer_id="cus_1")
        unlinked = await billing.customers.unlink(customer.id, provider="stripe")
        assert unlinked.provider_customer_ids == {}
        assert await billing.customers.get_by_external_id("cus_1") is None
        assert [e.previous for e in events] == [
            {"provider_customer_ids": {}},
            {"provider_customer_ids": {"stripe": "cus_1"}},
        ]

    async def test_provider_id_of_another_customer_conflicts(self, billing: Billing) -> None:
        first = await create_customer(billing)
        second = await create_customer(billing)
        await billing.customers.link(first.id, provider="stripe", provider_customer_id="cus_1")
        with pytest.raises(ConflictError) as caught:
            await billing.customers.link(second.id, provider="stripe", provider_customer_id="cus_1")
        assert caught.value.code == "provider_id_taken"
        stored = await billing.customers.get(second.id)
        assert stored is not None
        assert stored.provider_customer_ids == {}

    async def test_same_id_at_two_providers_needs_provider(self, billing: Billing) -> None:
        first = await create_customer(billing)
        second = await create_customer(billing)
        await billing.customers.link(first.id, provider="stripe", provider_customer_id="42")
        await billing.customers.link(second.id, provider="mercadopago", provider_customer_id="42")
        with pytest.raises(ConflictError):
            await billing.customers.get_by_external_id("42")
        found = await billing.customers.get_by_external_id("42", provider="mercadopago")
        assert found is not None
        assert found.id == second.id

    async def test_relinking_needs_unlink_first(self, billing: Billing) -> None:
        customer = await create_customer(billing)
        await billing.customers.link(customer.id, provider="stripe", provider_customer_id="cus_a")
        again = await billing.customers.link(
            customer.id, provider="stripe", provider_customer_id="cus_a"
        )
        assert again.provider_customer_ids == {"stripe": "cus_a"}
        with pytest.raises(ConflictError):
            await billing.customers.link(
                customer.id, provider="stripe", provider_customer_id="cus_b"
            )
        await billing.customers.unlink(customer.id, provider="stripe")
        moved = await billing.customers.link(
            customer.id, provider="stripe", provider_customer_id="cus_b"
        )
        assert moved.provider_customer_ids == {"stripe": "cus_b"}
        # The released id can now go to somebody else.
        other = await create_customer(billing)
        await billing.customers.link(other.id, provider="stripe", provider_customer_id="cus_a")

    async def test_unknown_customer(self, billing: Billing) -> None:
        with pytest.raises(NotFoundError):
            await billing.customers.link("cus_nope", provider="stripe", provider_customer_id="x")


class TestList:
    async def test_newest_first_with_paging(self, billing: Billing) -> None:
        created = [await create_customer(billing) for _ in range(5)]
        page = await billing.customers.list(limit=2, offset=1)
        assert isinstance(page, Page)
        assert [c.id for c in page] == [created[3].id, created[2].id]
        assert (page.total, page.limit, page.offset, page.has_more) == (5, 2, 1, True)
        last = await billing.customers.list(limit=2, offset=4)
        assert [c.id for c in last.data] == [created[0].id]
        assert last.has_more is False
        assert len(last) == 1

    async def test_email_filter_is_case_insensitive_and_exact(self, billing: Billing) -> None:
        match = await create_customer(billing, email="Someone@Example.com")
        await create_customer(billing, email="someone@example.com.br")
        await create_customer(billing, email="other@example.com")
        page = await billing.customers.list(email="someone@EXAMPLE.com")
        assert [c.id for c in page] == [match.id]
        assert page.total == 1

    async def test_email_filter_has_no_wildcards(self, billing: Billing) -> None:
        await create_customer(billing, email="a_b@example.com")
        await create_customer(billing, email="axb@example.com")
        assert (await billing.customers.list(email="a%@example.com")).total == 0
        assert (await billing.customers.list(email="a_b@example.com")).total == 1

    async def test_metadata_filter_needs_every_pair(self, billing: Billing) -> None:
        both = await create_customer(billing, metadata={"plan": "pro", "region": "br"})
        await create_customer(billing, metadata={"plan": "pro", "region": "us"})
        await create_customer(billing, metadata={"plan": "free", "region": "br"})
        page = await billing.customers.list(metadata={"plan": "pro", "region": "br"})
        assert [c.id for c in page] == [both.id]
        assert (await billing.customers.list(metadata={"plan": "pro"})).total == 2

    async def test_deleted_are_excluded_unless_asked(self, billing: Billing) -> None:
        kept = await create_customer(billing)
        gone = await create_customer(billing)
        await billing.customers.delete(gone.id)
        assert [c.id for c in await billing.customers.list()] == [kept.id]
        everyone = await billing.customers.list(include_deleted=True)
        assert [c.id for c in everyone] == [gone.id, kept.id]

    @pytest.mark.parametrize(
        ("limit", "offset"), [(0, 0), (101, 0), (10, -1), (True, 0), (10, 2**63), (10, 10**40)]
    )
    async def test_bad_paging(self, billing: Billing, limit: int, offset: int) -> None:
        with pytest.raises(ValidationError):
            await billing.customers.list(limit=limit, offset=offset)

    async def test_offset_past_the_end_is_an_empty_page(self, billing: Billing) -> None:
        """Regression: an offset too big for SQLite's INTEGER raised OverflowError (a 500)."""
        await create_customer(billing)
        page = await billing.customers.list(offset=2**63 - 1)
        assert (page.data, page.total, page.has_more) == ([], 1, False)

    async def test_total_counts_beyond_the_page(self, billing: Billing) -> None:
        for _ in range(12):
            await create_customer(billing, metadata={"batch": "x"})
        page = await billing.customers.list(limit=10, metadata={"batch": "x"})
        assert (len(page.data), page.total, page.has_more) == (10, 12, True)


class TestIterate:
    async def test_walks_every_match_by_keyset(self, billing: Billing) -> None:
        created = [await create_customer(billing, metadata={"t": "walk"}) for _ in range(7)]
        await create_customer(billing, metadata={"t": "other"})
        seen = [c.id async for c in billing.customers.iterate(metadata={"t": "walk"}, page_size=3)]
        assert seen == [c.id for c in reversed(created)]

    async def test_checks_arguments_eagerly(self, billing: Billing) -> None:
        with pytest.raises(ValidationError):
            billing.customers.iterate(page_size=0)


class TestUpdate:
    async def test_changes_fields_and_merges_metadata(self, billing: Billing) -> None:
        customer = await create_customer(billing, metadata={"userId": "usr_1", "plan": "free"})
        updated = await billing.customers.update(
            customer.id, name="Jane Doe", metadata={"plan": "pro"}
        )
        assert updated.name == "Jane Doe"
        assert updated.metadata == {"userId": "usr_1", "plan": "pro"}
        assert updated.updated_at > customer.updated_at
        assert updated.created_at == customer.created_at
        assert await billing.customers.get(customer.id) == updated

    async def test_none_removes_a_metadata_key_and_clears_fields(self, billing: Billing) -> None:
        customer = await create_customer(
            billing, phone="+14155552671", metadata={"a": "1", "b": "2"}, address={"city": "X"}
        )
        updated = await billing.customers.update(
            customer.id, phone=None, address=None, name=None, metadata={"a": None}
        )
        assert (updated.phone, updated.address, updated.name) == (None, None, None)
        assert updated.metadata == {"b": "2"}
        assert (await billing.customers.list(metadata={"a": "1"})).total == 0

    async def test_email_change_moves_the_filter(self, billing: Billing) -> None:
        customer = await create_customer(billing, email="old@example.com")
        await billing.customers.update(customer.id, email="New@example.com")
        assert (await billing.customers.list(email="old@example.com")).total == 0
        assert (await billing.customers.list(email="new@example.com")).total == 1

    async def test_no_change_writes_nothing(self, billing: Billing) -> None:
        customer = await create_customer(billing, metadata={"a": "1"})
        same = await billing.customers.update(customer.id, metadata={"a": "1"}, name=customer.name)
        assert same == customer
        assert len(await billing.events.list()) == 1

    async def test_merged_metadata_over_limit_is_rejected(self, billing: Billing) -> None:
        customer = await create_customer(billing, metadata={f"k{i}": "v" for i in range(50)})
        with pytest.raises(ValidationError):
            await billing.customers.update(customer.id, metadata={"one_more": "v"})
        assert await billing.customers.get(customer.id) == customer

    async def test_invalid_input_changes_nothing(self, billing: Billing) -> None:
        customer = await create_customer(billing)
        with pytest.raises(ValidationError) as caught:
            await billing.customers.update(customer.id, email=None, phone="nope")  # type: ignore[arg-type]
        assert {e["field"] for e in caught.value.errors} == {"email", "phone"}
        assert await billing.customers.get(customer.id) == customer

    async def test_unknown_and_deleted(self, billing: Billing) -> None:
        with pytest.raises(NotFoundError):
            await billing.customers.update("cus_nope", name="x")
        customer = await create_customer(billing)
        await billing.customers.delete(customer.id)
        with pytest.raises(ConflictError) as caught:
            await billing.customers.update(customer.id, name="x")
        assert caught.value.code == "customer_deleted"


class TestDelete:
    async def test_soft_delete_emits_snapshot_once(self, billing: Billing) -> None:
        customer = await create_customer(billing)
        events: list[Event] = []
        billing.on("customer.deleted", events.append)
        await billing.customers.delete(customer.id)
        await billing.customers.delete(customer.id)
        assert len(events) == 1
        assert events[0].data.id == customer.id
        assert events[0].data.deleted_at is not None
        assert events[0].data == await billing.customers.get(customer.id)

    async def test_unknown_id(self, billing: Billing) -> None:
        with pytest.raises(NotFoundError):
            await billing.customers.delete("cus_nope")


class TestIdempotency:
    async def test_retry_returns_the_first_customer_without_a_second_event(
        self, billing: Billing
    ) -> None:
        args = customer_args()
        first = await billing.customers.create(**args, idempotency_key="signup-1")
        again = await billing.customers.create(**args, idempotency_key="signup-1")
        assert again == first
        assert (await billing.customers.list()).total == 1
        assert [e.type for e in await billing.events.list()] == ["customer.created"]

    async def test_same_key_different_arguments_conflicts(self, billing: Billing) -> None:
        args = customer_args()
        await billing.customers.create(**args, idempotency_key="signup-2")
        with pytest.raises(ConflictError) as caught:
            await billing.customers.create(**{**args, "name": "Other"}, idempotency_key="signup-2")
        assert caught.value.code == "idempotency_key_reused"
        assert (await billing.customers.list()).total == 1

    async def test_concurrent_retries_make_one_customer(self, billing: Billing) -> None:
        args = customer_args()
        results = await asyncio.gather(
            *(billing.customers.create(**args, idempotency_key="burst") for _ in range(8))
        )
        assert len({c.id for c in results}) == 1
        assert (await billing.customers.list()).total == 1
        assert len(await billing.events.list()) == 1

    async def test_key_length_is_checked(self, billing: Billing) -> None:
        with pytest.raises(ValidationError):
            await create_customer(billing, idempotency_key="k" * 256)
        assert (await create_customer(billing, idempotency_key="k" * 255)).id


class TestCustomerModel:
    def test_exports(self) -> None:
        fields = set(Customer.model_fields)
        assert fields == {
            "id",
            "email",
            "name",
            "phone",
            "address",
            "metadata",
            "provider_customer_ids",
            "created_at",
            "updated_at",
            "deleted_at",
        }
        assert set(Address.model_fields) == {
            "line1",
            "line2",
            "city",
            "state",
            "postal_code",
            "country",
        }
