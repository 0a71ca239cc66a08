"""MercadoPagoProvider against the fake MercadoPago server, through the official SDK.

Faults are injected by a real loopback proxy (tests.support.fault_proxy), so every case below
is observed on the wire: what was sent, how often, and what the provider made of the answer.
The fake itself is pinned to MercadoPago's documented behaviour by TestFakeMercadoPago.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import aiohttp
import phonenumbers
import pytest

from qzpay import Billing
from qzpay.customers.models import Address, Customer
from qzpay.customers.sync import ProviderSet, create_key
from qzpay.errors import ConflictError, ProviderSyncError, QZPayError, WebhookSignatureError
from qzpay.ids import customer_ids
from qzpay.providers import QZPAY_CUSTOMER_ID_KEY, PaymentProvider
from qzpay.providers.base import replace_all_fields
from qzpay.providers.mercadopago import (
    MercadoPagoEmailTaken,
    MercadoPagoProvider,
    _Transport,
    idempotency_key,
    split_name,
)
from tests.support.fake_mercadopago import (
    ACCESS_TOKEN,
    WEBHOOK_SECRET,
    FakeMercadoPago,
    NotificationReceiver,
    running,
    unique_email,
)
from tests.support.fault_proxy import Fault, FaultProxy

if TYPE_CHECKING:
    from tests.support.mercadopago_fixtures import MercadoPagoFactory

# The fixtures, until tests/conftest.py registers the plugin for the whole suite.

ADDRESS = Address(
    line1="Av. Paulista 1000", line2="Apto 12", city="São Paulo", state="SP",
    postal_code="01310-100", country="BR",
)  # fmt: skip
HELD_ADDRESS = Address(line1="Av. Paulista 1000", postal_code="01310-100")


def make_customer(**fields: Any) -> Customer:
    """A stored-looking qzpay customer with every field set unless overridden."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": customer_ids.new(),
        "email": unique_email(),
        "name": "Ana Souza",
        "phone": "+5511912345678",
        "address": ADDRESS,
        "metadata": {"plan": "pro", "team": "core"},
        "provider_customer_ids": {},
        "created_at": now,
        "updated_at": now,
    }
    values.update(fields)
    return Customer(**values)


def changed(customer: Customer, **fields: Any) -> Customer:
    return customer.model_copy(update=fields)


def key() -> str:
    return f"idem-{os.urandom(8).hex()}"


def mp_error(status: int, message: str, error: str) -> bytes:
    """A MercadoPago-shaped error body for injected answers."""
    return json.dumps({"message": message, "error": error, "status": status, "cause": []}).encode()


def body_of(request: Any) -> Any:
    return json.loads(request.body)


def test_mercadopago_provider_satisfies_the_protocol(
    mercadopago_provider: MercadoPagoProvider,
) -> None:
    provider: PaymentProvider = mercadopago_provider  # checked by mypy
    assert provider.name == "mercadopago"


class TestMapping:
    @pytest.mark.parametrize(
        ("name", "first", "last"),
        [
            ("Ana Souza", "Ana", "Souza"),
            ("María José García", "María", "José García"),
            ("Cher", "Cher", ""),
            ("Jean-Luc Picard", "Jean-Luc", "Picard"),
            ("Ana  Souza", "Ana  Souza", ""),  # the rest would lose its leading space
        ],
    )
    def test_split_name(self, name: str, first: str, last: str) -> None:
        assert split_name(name) == (first, last)

    def test_idempotency_key_is_deterministic_and_fits_the_sdk(self) -> None:
        long_id = "cus_" + "x" * 251

        first = idempotency_key("create", long_id, create_key(long_id))

        assert first == idempotency_key("create", long_id, create_key(long_id))
        assert len(first) <= 64
        assert first != idempotency_key("delete", long_id, create_key(long_id))
        assert first != idempotency_key("create", long_id + "y", create_key(long_id))
        assert first != idempotency_key("create", long_id, "another caller key")


class TestCreateCustomer:
    async def test_sends_the_mapped_fields_and_the_qzpay_id(
        self,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
    ) -> None:
        customer = make_customer()
        caller_key = key()

        created = await proxied_mercadopago_provider.create_customer(
            customer, idempotency_key=caller_key
        )

        assert re.fullmatch(r"\d+-\w+", created.id)
        assert (created.email, created.name, created.phone) == (
            customer.email,
            "Ana Souza",
            "+5511912345678",
        )
        assert created.address == HELD_ADDRESS
        assert created.metadata == {QZPAY_CUSTOMER_ID_KEY: customer.id}
        assert created.qzpay_customer_id == customer.id
        assert created.deleted is False
        [sent] = mercadopago_proxy.matching("POST", "/v1/customers")
        assert sent.headers["x-idempotency-key"] == idempotency_key(
            "create", customer.id, caller_key
        )
        assert sent.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
        assert body_of(sent) == {
            "email": customer.email,
            "description": f"qzpay_customer_id:{customer.id}",
            "first_name": "Ana",
            "last_name": "Souza",
            "phone": {"area_code": "55", "number": "11912345678"},
            "address": {"street_name": "Av. Paulista 1000", "zip_code": "01310-100"},
        }
        assert await mercadopago_provider.retrieve_customer(created.id) == created

    async def test_what_mercadopago_cannot_hold_is_exactly_what_is_documented(
        self, mercadopago_provider: MercadoPagoProvider
    ) -> None:
        customer = make_customer()

        created = await mercadopago_provider.create_customer(customer, idempotency_key=key())

        # Everything else round-trips: metadata and four address fields stay in qzpay.
        assert replace_all_fields(customer, created) == MercadoPagoProvider.held_view(customer)
        # and merging MercadoPago's copy back loses nothing qzpay keeps
        assert mercadopago_provider.merge_remote(customer, created) == customer
        assert MercadoPagoProvider.held_view(customer).metadata == {}
        assert MercadoPagoProvider.held_view(customer).address == HELD_ADDRESS

    async def test_unset_fields_are_not_sent(
        self,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
    ) -> None:
        customer = make_customer(
            name=None, phone=None, address=Address(city="Lisboa", country="PT"), metadata={}
        )

        created = await proxied_mercadopago_provider.create_customer(
            customer, idempotency_key=key()
        )

        assert (created.name, created.phone, created.address) == (None, None, None)
        assert created.metadata == {QZPAY_CUSTOMER_ID_KEY: customer.id}
        assert body_of(mercadopago_proxy.requests[0]) == {
            "email": customer.email,
            "description": f"qzpay_customer_id:{customer.id}",
        }

    @pytest.mark.parametrize(
        "name",
        ["Ana Souza", "María José García", "Cher", "Jean-Luc Picard", "Ana  Souza", None],
    )
    async def test_names_round_trip(
        self, mercadopago_provider: MercadoPagoProvider, name: str | None
    ) -> None:
        created = await mercadopago_provider.create_customer(
            make_customer(name=name), idempotency_key=key()
        )

        assert created.name == name
        retrieved = await mercadopago_provider.retrieve_customer(created.id)
        assert retrieved is not None
        assert retrieved.name == name

    @pytest.mark.parametrize(
        ("phone", "area_code", "number"),
        [
            ("+14155552671", "1", "4155552671"),
            ("+5511912345678", "55", "11912345678"),
            ("+5491123456789", "54", "91123456789"),
            ("+525512345678", "52", "5512345678"),
            ("+390612345678", "39", "0612345678"),  # Italy keeps its leading zero
            ("+442079460958", "44", "2079460958"),
        ],
    )
    async def test_phones_round_trip(
        self,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
        phone: str,
        area_code: str,
        number: str,
    ) -> None:
        assert phonenumbers.is_valid_number(phonenumbers.parse(phone))  # what qzpay accepts

        created = await proxied_mercadopago_provider.create_customer(
            make_customer(phone=phone), idempotency_key=key()
        )

        assert body_of(mercadopago_proxy.requests[0])["phone"] == {
            "area_code": area_code,
            "number": number,
        }
        assert created.phone == phone
        retrieved = await mercadopago_provider.retrieve_customer(created.id)
        assert retrieved is not None
        assert retrieved.phone == phone

    async def test_a_phone_in_another_convention_is_reported_as_stored(
        self, mercadopago_provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
    ) -> None:
        made = fake_mercadopago.add_customer(
            email=unique_email(), phone={"area_code": "11", "number": "912345678"}
        )

        found = await mercadopago_provider.retrieve_customer(made["id"])

        assert found is not None
        assert found.phone == "11 912345678"

    async def test_qzpay_id_wins_over_user_metadata(
        self, mercadopago_provider: MercadoPagoProvider
    ) -> None:
        customer = make_customer(metadata={QZPAY_CUSTOMER_ID_KEY: "spoofed"})

        created = await mercadopago_provider.create_customer(customer, idempotency_key=key())

        assert created.qzpay_customer_id == customer.id

    async def test_repeating_a_create_adopts_the_first(
        self,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        customer = make_customer()
        caller_key = create_key(customer.id)

        first = await proxied_mercadopago_provider.create_customer(
            customer, idempotency_key=caller_key
        )
        second = await proxied_mercadopago_provider.create_customer(
            customer, idempotency_key=caller_key
        )

        assert second == first
        assert len(fake_mercadopago.customers(customer.email)) == 1
        creates = mercadopago_proxy.matching("POST", "/v1/customers")
        assert len({r.headers["x-idempotency-key"] for r in creates}) == 1
        [search] = mercadopago_proxy.matching("GET", "/v1/customers/search")
        assert f"email={customer.email.replace('@', '%40')}" in search.query

    async def test_an_email_taken_by_another_qzpay_customer_is_a_conflict(
        self, mercadopago_provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
    ) -> None:
        email = unique_email("shared")
        theirs = await mercadopago_provider.create_customer(
            make_customer(email=email), idempotency_key=key()
        )
        mine = make_customer(email=email)

        with pytest.raises(MercadoPagoEmailTaken) as caught:
            await mercadopago_provider.create_customer(mine, idempotency_key=key())

        error = caught.value
        assert isinstance(error, ConflictError)
        assert isinstance(error, ProviderSyncError)
        assert error.code == "provider_email_taken"
        assert (error.provider, error.operation, error.ambiguous) == (
            "mercadopago",
            "create_customer",
            False,
        )
        assert error.existing == theirs
        assert [c["id"] for c in fake_mercadopago.customers(email)] == [theirs.id]

    async def test_an_email_taken_outside_qzpay_is_never_taken_over(
        self, mercadopago_provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
    ) -> None:
        email = unique_email("outsider")
        outsider = fake_mercadopago.add_customer(email=email, first_name="Someone")

        with pytest.raises(MercadoPagoEmailTaken) as caught:
            await mercadopago_provider.create_customer(
                make_customer(email=email), idempotency_key=key()
            )

        assert caught.value.existing is not None
        assert caught.value.existing.id == outsider["id"]
        assert caught.value.existing.qzpay_customer_id is None
        assert fake_mercadopago.get(outsider["id"]) == outsider  # untouched

    async def test_adopts_its_own_customer_whatever_the_email_case(
        self, mercadopago_provider: MercadoPagoProvider
    ) -> None:
        customer = make_customer(email=unique_email("Mixed.Case"))
        first = await mercadopago_provider.create_customer(customer, idempotency_key=key())

        again = await mercadopago_provider.create_customer(
            changed(customer, email=customer.email.lower()), idempotency_key=key()
        )

        assert again == first


class TestUpdateCustomer:
    async def test_sends_only_changed_fields(
        self,
        mercadopago_provider: MercadoPagoProvider,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
    ) -> None:
        before = make_customer()
        created = await mercadopago_provider.create_customer(before, idempotency_key=key())
        after = changed(before, name="María José García")
        caller_key = key()

        updated = await proxied_mercadopago_provider.update_customer(
            created.id, before, after, idempotency_key=caller_key
        )

        [sent] = mercadopago_proxy.matching("PUT", f"/v1/customers/{created.id}")
        assert body_of(sent) == {"first_name": "María", "last_name": "José García"}
        assert sent.headers["x-idempotency-key"] == idempotency_key("update", before.id, caller_key)
        assert updated.name == "María José García"
        assert (updated.email, updated.phone, updated.address) == (
            before.email,
            before.phone,
            HELD_ADDRESS,
        )

    async def test_shortening_a_name_clears_the_last_name(
        self, mercadopago_provider: MercadoPagoProvider
    ) -> None:
        before = make_customer(name="María José García")
        created = await mercadopago_provider.create_customer(before, idempotency_key=key())

        updated = await mercadopago_provider.update_customer(
            created.id, before, changed(before, name="Cher"), idempotency_key=key()
        )

        assert updated.name == "Cher"

    async def test_cleared_fields_are_cleared(
        self,
        mercadopago_provider: MercadoPagoProvider,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
    ) -> None:
        before = make_customer()
        created = await mercadopago_provider.create_customer(before, idempotency_key=key())
        after = changed(before, name=None, phone=None, address=None)

        updated = await proxied_mercadopago_provider.update_customer(
            created.id, before, after, idempotency_key=key()
        )

        assert body_of(mercadopago_proxy.requests[0]) == {
            "first_name": "",
            "last_name": "",
            "phone": {"area_code": "", "number": ""},
            "address": {"street_name": "", "zip_code": ""},
        }
        assert (updated.name, updated.phone, updated.address) == (None, None, None)
        assert await mercadopago_provider.retrieve_customer(created.id) == updated

    async def test_a_changed_held_address_is_sent_whole(
        self,
        mercadopago_provider: MercadoPagoProvider,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
    ) -> None:
        before = make_customer()
        created = await mercadopago_provider.create_customer(before, idempotency_key=key())
        moved = ADDRESS.model_copy(update={"line1": "Rua Augusta 5", "postal_code": None})

        updated = await proxied_mercadopago_provider.update_customer(
            created.id, before, changed(before, address=moved), idempotency_key=key()
        )

        assert body_of(mercadopago_proxy.requests[0]) == {
            "address": {"street_name": "Rua Augusta 5", "zip_code": ""}
        }
        assert updated.address == Address(line1="Rua Augusta 5")

    async def test_changes_kept_only_in_qzpay_only_read(
        self,
        mercadopago_provider: MercadoPagoProvider,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
    ) -> None:
        before = make_customer()
        created = await mercadopago_provider.create_customer(before, idempotency_key=key())
        after = changed(
            before,
            metadata={"plan": "enterprise"},
            address=ADDRESS.model_copy(update={"city": "Campinas", "line2": None}),
            provider_customer_ids={"mercadopago": created.id},
        )

        updated = await proxied_mercadopago_provider.update_customer(
            created.id, before, after, idempotency_key=key()
        )

        assert [r.method for r in mercadopago_proxy.requests] == ["GET"]
        assert updated == created

    async def test_email_changes_stay_local(
        self, mercadopago_provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
    ) -> None:
        """MercadoPago refuses to change an email once set (cause 126): it is not sent."""
        before = make_customer()
        created = await mercadopago_provider.create_customer(before, idempotency_key=key())
        after = changed(before, email=unique_email("moved"), name="Ana Lima")

        updated = await mercadopago_provider.update_customer(
            created.id, before, after, idempotency_key=key()
        )

        stored = fake_mercadopago.get(created.id)
        assert stored is not None
        assert (stored["email"], stored["last_name"]) == (before.email, "Lima")
        assert mercadopago_provider.merge_remote(after, updated) == after

    @pytest.mark.parametrize("with_changes", [True, False])
    async def test_unknown_customer_fails_unambiguously(
        self, mercadopago_provider: MercadoPagoProvider, with_changes: bool
    ) -> None:
        before = make_customer()
        after = changed(before, name="Other") if with_changes else before

        with pytest.raises(ProviderSyncError) as caught:
            await mercadopago_provider.update_customer(
                "1234567890-doesnotexist", before, after, idempotency_key=key()
            )

        assert (caught.value.operation, caught.value.ambiguous) == ("update_customer", False)


class TestDeleteCustomer:
    async def test_deleted_customer_is_gone(
        self,
        mercadopago_provider: MercadoPagoProvider,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
    ) -> None:
        created = await mercadopago_provider.create_customer(make_customer(), idempotency_key=key())
        caller_key = key()

        await proxied_mercadopago_provider.delete_customer(created.id, idempotency_key=caller_key)

        [sent] = mercadopago_proxy.matching("DELETE", f"/v1/customers/{created.id}")
        assert sent.headers["x-idempotency-key"] == idempotency_key(
            "delete", created.id, caller_key
        )
        assert await mercadopago_provider.retrieve_customer(created.id) is None

    async def test_deleting_twice_succeeds(self, mercadopago_provider: MercadoPagoProvider) -> None:
        created = await mercadopago_provider.create_customer(make_customer(), idempotency_key=key())

        await mercadopago_provider.delete_customer(created.id, idempotency_key=key())
        await mercadopago_provider.delete_customer(created.id, idempotency_key=key())

        assert await mercadopago_provider.retrieve_customer(created.id) is None

    async def test_retrieving_an_unknown_customer_is_none(
        self, mercadopago_provider: MercadoPagoProvider
    ) -> None:
        assert await mercadopago_provider.retrieve_customer("1234567890-doesnotexist") is None


class TestFindCustomer:
    async def test_finds_by_qzpay_id(
        self,
        mercadopago_provider: MercadoPagoProvider,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
    ) -> None:
        customer = make_customer()
        created = await mercadopago_provider.create_customer(customer, idempotency_key=key())

        assert await proxied_mercadopago_provider.find_customer(customer) == created
        [search] = mercadopago_proxy.matching("GET", "/v1/customers/search")
        assert "email=" in search.query

    async def test_none_when_never_created(self, mercadopago_provider: MercadoPagoProvider) -> None:
        assert await mercadopago_provider.find_customer(make_customer()) is None

    async def test_another_qzpay_customers_email_is_not_ours(
        self, mercadopago_provider: MercadoPagoProvider
    ) -> None:
        email = unique_email("shared")
        await mercadopago_provider.create_customer(
            make_customer(email=email), idempotency_key=key()
        )
        mine = make_customer(email=email)

        assert await mercadopago_provider.find_customer(mine) is None
        assert await mercadopago_provider.find_unmanaged(mine) is None

    async def test_a_customer_made_outside_qzpay_is_only_reported_as_unmanaged(
        self, mercadopago_provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
    ) -> None:
        email = unique_email("outsider")
        outsider = fake_mercadopago.add_customer(email=email, first_name="Ana")
        customer = make_customer(email=email)

        assert await mercadopago_provider.find_customer(customer) is None
        unmanaged = await mercadopago_provider.find_unmanaged(customer)
        assert unmanaged is not None
        assert (unmanaged.id, unmanaged.qzpay_customer_id) == (outsider["id"], None)
        assert await mercadopago_provider.find_unmanaged(make_customer()) is None


class TestListCustomers:
    async def test_pages_through_every_customer(
        self,
        make_mercadopago_provider: MercadoPagoFactory,
        isolated_mercadopago: FakeMercadoPago,
    ) -> None:
        direct = make_mercadopago_provider(api_base=isolated_mercadopago.url)
        created = [
            await direct.create_customer(make_customer(), idempotency_key=key()) for _ in range(5)
        ]
        async with FaultProxy(isolated_mercadopago.url) as proxy:
            paged = make_mercadopago_provider(api_base=proxy.url, page_size=2)

            listed = [customer async for customer in paged.list_customers()]

        assert listed == created
        pages = proxy.matching("GET", "/v1/customers/search")
        assert [dict(parse_qsl(p.query))["offset"] for p in pages] == ["0", "2", "4"]
        assert all("email" not in p.query for p in pages)

    async def test_a_failing_page_fails_the_listing(
        self,
        make_mercadopago_provider: MercadoPagoFactory,
        isolated_mercadopago: FakeMercadoPago,
    ) -> None:
        direct = make_mercadopago_provider(api_base=isolated_mercadopago.url)
        for _ in range(3):
            await direct.create_customer(make_customer(), idempotency_key=key())
        async with FaultProxy(isolated_mercadopago.url) as proxy:
            paged = make_mercadopago_provider(api_base=proxy.url, page_size=2)
            proxy.inject(
                Fault.respond(500, mp_error(500, "internal_error", "internal_error")),
                method="GET",
                path="/v1/customers/search",
                where=lambda r: "offset=2" in r.query,
            )

            with pytest.raises(ProviderSyncError) as caught:
                _ = [customer async for customer in paged.list_customers()]

        assert caught.value.operation == "list_customers"


SERVER_ERROR = Fault.respond(500, mp_error(500, "internal_error", "internal_error"))
UNAVAILABLE = Fault.respond(503, mp_error(503, "service unavailable", "service_unavailable"))
RATE_LIMITED = Fault.respond(429, mp_error(429, "too many requests", "too_many_requests"))
BAD_REQUEST = Fault.respond(400, mp_error(400, "invalid parameters", "bad_request"))
LOCKED = Fault.respond(423, mp_error(423, "idempotency key locked", "locked"))

CREATE_FAULTS = [
    pytest.param(Fault.reset(), True, False, id="reset-before-forwarding"),
    pytest.param(Fault.drop(), True, True, id="response-dropped"),
    pytest.param(SERVER_ERROR, True, False, id="500"),
    pytest.param(UNAVAILABLE, True, False, id="503"),
    pytest.param(LOCKED, True, False, id="423"),
    pytest.param(RATE_LIMITED, False, False, id="429"),
    pytest.param(BAD_REQUEST, False, False, id="400"),
    pytest.param(Fault.respond(200, b"<html>ok</html>"), True, False, id="unreadable-200"),
]


class TestFaults:
    """Each failure maps to ProviderSyncError; ``ambiguous`` says if MercadoPago may have
    applied it. The SDK must never resend on its own: the proxy sees exactly one request."""

    @pytest.mark.parametrize(("fault", "ambiguous", "applied"), CREATE_FAULTS)
    async def test_create_fault(
        self,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
        fault: Fault,
        ambiguous: bool,
        applied: bool,
    ) -> None:
        customer = make_customer()
        mercadopago_proxy.inject(fault, method="POST", path="/v1/customers")

        with pytest.raises(ProviderSyncError) as caught:
            await proxied_mercadopago_provider.create_customer(customer, idempotency_key=key())

        error = caught.value
        assert (error.provider, error.operation, error.ambiguous) == (
            "mercadopago",
            "create_customer",
            ambiguous,
        )
        assert error.cause is not None
        assert len(mercadopago_proxy.matching("POST", "/v1/customers")) == 1
        found = await mercadopago_provider.find_customer(customer)
        assert (found is not None) == applied

    @pytest.mark.parametrize("honour_idempotency", [False, True], ids=["no-idem", "idem"])
    @pytest.mark.parametrize(
        "fault",
        [Fault.reset(), Fault.drop(), SERVER_ERROR, Fault.delay(0.6)],
        ids=["reset", "response-dropped", "500", "timeout"],
    )
    async def test_ambiguous_creates_end_with_one_linked_customer(
        self,
        make_mercadopago_provider: MercadoPagoFactory,
        fault: Fault,
        honour_idempotency: bool,
    ) -> None:
        """The sync machinery's recovery (find, then create what is missing) converges:
        exactly one MercadoPago customer for the email, carrying our id, and it is the one
        linked. With or without idempotency-key support at MercadoPago."""
        customer = make_customer()
        with running(honour_idempotency=honour_idempotency) as fake:
            async with FaultProxy(fake.url) as proxy:
                provider = make_mercadopago_provider(api_base=proxy.url, timeout=0.3)
                providers = ProviderSet([provider])
                proxy.inject(fault, method="POST", path="/v1/customers")
                failure: ProviderSyncError | None = None
                try:
                    links = await providers.create_everywhere(customer)
                except ProviderSyncError as exc:
                    failure = exc
                if failure is not None:
                    assert failure.ambiguous
                    await asyncio.sleep(0.5)  # a slow request lands meanwhile, or not
                    links = await providers.find_or_create_everywhere(customer)
                    # and retrying once more changes nothing
                    assert await providers.find_or_create_everywhere(customer) == links

            stored = fake.customers(customer.email)
        assert len(stored) == 1
        assert stored[0]["description"] == f"qzpay_customer_id:{customer.id}"
        assert links == {"mercadopago": stored[0]["id"]}

    @pytest.mark.parametrize("honour_idempotency", [False, True], ids=["no-idem", "idem"])
    async def test_a_slow_create_landing_after_the_retry_makes_no_duplicate(
        self, make_mercadopago_provider: MercadoPagoFactory, honour_idempotency: bool
    ) -> None:
        """The retry creates the customer before the first attempt reaches MercadoPago; the
        late one is then refused (one customer per email) or replayed (same key)."""
        customer = make_customer()
        with running(honour_idempotency=honour_idempotency) as fake:
            async with FaultProxy(fake.url) as proxy:
                provider = make_mercadopago_provider(api_base=proxy.url, timeout=0.3)
                providers = ProviderSet([provider])
                proxy.inject(Fault.delay(0.6), method="POST", path="/v1/customers")
                with pytest.raises(ProviderSyncError) as caught:
                    await providers.create_everywhere(customer)
                assert caught.value.ambiguous

                links = await providers.find_or_create_everywhere(customer)
                async with asyncio.timeout(5):
                    while len(fake.matching("POST", "/v1/customers")) < 2:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)  # until the late attempt has been answered

            stored = fake.customers(customer.email)
            posts = fake.matching("POST", "/v1/customers")
        assert len(posts) == 2
        assert [c["id"] for c in stored] == [links["mercadopago"]]
        assert stored[0]["description"] == f"qzpay_customer_id:{customer.id}"

    async def test_a_failed_search_after_a_taken_email_is_ambiguous(
        self,
        mercadopago_provider: MercadoPagoProvider,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
    ) -> None:
        customer = make_customer()
        await mercadopago_provider.create_customer(customer, idempotency_key=key())
        mercadopago_proxy.inject(RATE_LIMITED, method="GET", path="/v1/customers/search")

        with pytest.raises(ProviderSyncError) as caught:
            await proxied_mercadopago_provider.create_customer(customer, idempotency_key=key())

        assert (caught.value.operation, caught.value.ambiguous) == ("create_customer", True)
        assert await proxied_mercadopago_provider.find_customer(customer) is not None

    async def test_refused_connection_is_not_ambiguous(
        self, proxied_mercadopago_provider: MercadoPagoProvider, mercadopago_proxy: FaultProxy
    ) -> None:
        async with mercadopago_proxy.refusing():
            with pytest.raises(ProviderSyncError) as caught:
                await proxied_mercadopago_provider.create_customer(
                    make_customer(), idempotency_key=key()
                )

        assert caught.value.ambiguous is False
        assert mercadopago_proxy.requests == []

    async def test_timeout_is_ambiguous_and_may_still_apply(
        self,
        make_mercadopago_provider: MercadoPagoFactory,
        mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
    ) -> None:
        impatient = make_mercadopago_provider(api_base=mercadopago_proxy.url, timeout=0.3)
        customer = make_customer()
        mercadopago_proxy.inject(Fault.delay(0.8), method="POST", path="/v1/customers")

        started = time.monotonic()
        with pytest.raises(ProviderSyncError) as caught:
            await impatient.create_customer(customer, idempotency_key=key())

        assert time.monotonic() - started < 0.8
        assert caught.value.ambiguous is True
        assert len(mercadopago_proxy.matching("POST", "/v1/customers")) == 1
        async with asyncio.timeout(5):  # the slow request still lands: hence "ambiguous"
            # Polling: the fake offers nothing to wait on for "this request was applied".
            while await mercadopago_provider.find_customer(customer) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.1)

    @pytest.mark.parametrize(
        ("fault", "ambiguous"),
        [(Fault.drop(), True), (SERVER_ERROR, True), (LOCKED, True), (RATE_LIMITED, False)],
        ids=["response-dropped", "500", "423", "429"],
    )
    async def test_update_fault(
        self,
        mercadopago_provider: MercadoPagoProvider,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
        fault: Fault,
        ambiguous: bool,
    ) -> None:
        before = make_customer()
        created = await mercadopago_provider.create_customer(before, idempotency_key=key())
        path = f"/v1/customers/{created.id}"
        mercadopago_proxy.inject(fault, method="PUT", path=path)

        with pytest.raises(ProviderSyncError) as caught:
            await proxied_mercadopago_provider.update_customer(
                created.id, before, changed(before, name="Changed"), idempotency_key=key()
            )

        assert (caught.value.operation, caught.value.ambiguous) == ("update_customer", ambiguous)
        assert len(mercadopago_proxy.matching("PUT", path)) == 1

    @pytest.mark.parametrize(
        ("fault", "ambiguous"),
        [(Fault.drop(), True), (SERVER_ERROR, True), (RATE_LIMITED, False)],
        ids=["response-dropped", "500", "429"],
    )
    async def test_delete_fault(
        self,
        mercadopago_provider: MercadoPagoProvider,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
        fault: Fault,
        ambiguous: bool,
    ) -> None:
        created = await mercadopago_provider.create_customer(make_customer(), idempotency_key=key())
        path = f"/v1/customers/{created.id}"
        mercadopago_proxy.inject(fault, method="DELETE", path=path)

        with pytest.raises(ProviderSyncError) as caught:
            await proxied_mercadopago_provider.delete_customer(created.id, idempotency_key=key())

        assert (caught.value.operation, caught.value.ambiguous) == ("delete_customer", ambiguous)
        assert len(mercadopago_proxy.matching("DELETE", path)) == 1

    @pytest.mark.parametrize("fault", [Fault.drop(), SERVER_ERROR], ids=["drop", "500"])
    async def test_read_fault(
        self,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
        fault: Fault,
    ) -> None:
        path = "/v1/customers/1234567890-whatever"
        mercadopago_proxy.inject(fault, method="GET", path=path)

        with pytest.raises(ProviderSyncError) as caught:
            await proxied_mercadopago_provider.retrieve_customer("1234567890-whatever")

        assert caught.value.operation == "retrieve_customer"
        assert len(mercadopago_proxy.matching("GET", path)) == 1

    async def test_a_wrong_access_token_fails_unambiguously(
        self, make_mercadopago_provider: MercadoPagoFactory
    ) -> None:
        provider = make_mercadopago_provider(access_token="TEST-wrong")

        with pytest.raises(ProviderSyncError) as caught:
            await provider.create_customer(make_customer(), idempotency_key=key())

        assert caught.value.ambiguous is False
        assert "HTTP 401" in caught.value.message


class TestFaultStorm:
    async def test_billing_ends_with_no_duplicates_and_no_unlinked_customers(
        self,
        make_mercadopago_provider: MercadoPagoFactory,
        mercadopago_proxy: FaultProxy,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        """The service's own recovery, unchanged, over this provider: creates through random
        faults (timeouts included), retries with the caller's key, then ``sync_pending``."""
        provider = make_mercadopago_provider(api_base=mercadopago_proxy.url, timeout=0.3)
        rng = random.Random(11)
        faults = [Fault.drop(), Fault.reset(), SERVER_ERROR, RATE_LIMITED, Fault.delay(0.5)]
        outcomes: Counter[str] = Counter()
        emails: list[str] = []
        async with Billing(storage="memory://", provider=provider) as billing:
            for i in range(60):
                if rng.random() < 0.4:
                    mercadopago_proxy.inject(
                        rng.choice(faults), method="POST", path="/v1/customers"
                    )
                if rng.random() < 0.15:  # the look-up after an ambiguous failure fails too
                    mercadopago_proxy.inject(
                        SERVER_ERROR, method="GET", path="/v1/customers/search"
                    )
                caller_key = f"storm-{i}-{os.urandom(4).hex()}" if i % 2 else None
                email = unique_email(f"storm{i}")
                emails.append(email)
                try:
                    await billing.customers.create(
                        email=email, name="Ana Souza", idempotency_key=caller_key
                    )
                    outcomes["ok"] += 1
                except ProviderSyncError:
                    outcomes["failed"] += 1
                    if caller_key is not None:  # the caller retries with its key
                        with contextlib.suppress(ProviderSyncError):
                            await billing.customers.create(
                                email=email, name="Ana Souza", idempotency_key=caller_key
                            )
            await asyncio.sleep(0.6)  # let delayed requests land before the final sweep
            mercadopago_proxy._rules.clear()
            await billing.customers.sync_pending()
            assert await billing.storage.list_sync_tasks(limit=10) == []
            local = {c.email: c async for c in billing.customers.iterate()}

        assert outcomes["failed"] > 0
        assert outcomes["ok"] > 0
        for email in emails:
            remote = fake_mercadopago.customers(email)
            assert len(remote) <= 1  # MercadoPago itself allows no duplicate
            if email in local:  # none unlinked, and linked to its own twin
                assert [r["id"] for r in remote] == [
                    local[email].provider_customer_ids["mercadopago"]
                ]
                assert remote[0]["description"] == f"qzpay_customer_id:{local[email].id}"
            else:  # no orphan at MercadoPago
                assert remote == []


class TestTransport:
    async def test_the_event_loop_keeps_running_during_a_call(
        self, proxied_mercadopago_provider: MercadoPagoProvider, mercadopago_proxy: FaultProxy
    ) -> None:
        mercadopago_proxy.inject(
            Fault.delay(0.5), method="GET", path="/v1/customers/1234567890-slow"
        )
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            await proxied_mercadopago_provider.retrieve_customer("1234567890-slow")
        finally:
            ticker.cancel()

        assert ticks >= 10

    async def test_environment_proxies_are_ignored(
        self, mercadopago_provider: MercadoPagoProvider, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.setenv(name, "http://127.0.0.1:9")  # discard port: nothing answers
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        assert await mercadopago_provider.retrieve_customer("1234567890-none") is None

    def test_urls_outside_the_sdk_base_are_refused(self) -> None:
        transport = _Transport("http://127.0.0.1:9", (1.0, 1.0))

        with pytest.raises(ValueError, match="refusing"):
            transport.request("GET", "https://api.mercadopago.com.evil.example/v1/customers")

    def test_without_api_base_the_sdk_base_is_kept(self) -> None:
        transport = _Transport(None, (1.0, 1.0))

        assert transport._api_base == "https://api.mercadopago.com"

    async def test_close_is_idempotent_and_refuses_new_calls(
        self, make_mercadopago_provider: MercadoPagoFactory
    ) -> None:
        provider = make_mercadopago_provider()
        await provider.close()
        await provider.close()

        with pytest.raises(RuntimeError):
            await provider.retrieve_customer("1234567890-none")


# -- webhooks ---------------------------------------------------------------------------------


def signature(
    *,
    data_id: str | None,
    request_id: str | None,
    ts: int | None = None,
    secret: str = WEBHOOK_SECRET,
) -> str:
    """An x-signature header, computed here independently of the code under test."""
    ts = int(time.time()) if ts is None else ts
    manifest = ""
    if data_id is not None:
        manifest += f"id:{data_id};"
    if request_id is not None:
        manifest += f"request-id:{request_id};"
    manifest += f"ts:{ts};"
    digest = hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()
    return f"ts={ts},v1={digest}"


PAYMENT = json.dumps(
    {
        "id": 12345,
        "live_mode": True,
        "type": "payment",
        "date_created": "2015-03-25T10:04:58.396-04:00",
        "user_id": 44444,
        "api_version": "v1",
        "action": "payment.created",
        "data": {"id": "999999999"},
    }
).encode()
PAYMENT_QUERY = {"data.id": "999999999", "type": "payment"}
REQUEST_ID = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"


def payment_headers(**overrides: Any) -> dict[str, str]:
    options: dict[str, Any] = {"data_id": "999999999", "request_id": REQUEST_ID}
    options.update(overrides)
    return {"x-signature": signature(**options), "x-request-id": REQUEST_ID}


class TestWebhooks:
    async def test_real_delivery_verifies_and_parses(
        self,
        make_mercadopago_provider: MercadoPagoFactory,
        fake_mercadopago: FakeMercadoPago,
        notification_receiver: NotificationReceiver,
    ) -> None:
        provider = make_mercadopago_provider()
        created = await provider.create_customer(make_customer(), idempotency_key=key())
        notification = fake_mercadopago.notification(
            action="card.updated",
            type="automatic-payments",
            data={"customer_id": created.id, "new_card_id": 50000102202, "old_card_id": 1},
        )

        status = await fake_mercadopago.deliver(notification_receiver.url, notification)
        async with asyncio.timeout(10):
            delivery = await notification_receiver.next()

        assert status == 200
        event = provider.parse_webhook(delivery.body, delivery.headers, query=delivery.query)
        assert (event.type, event.provider_customer_id) == ("card.updated", created.id)
        assert event.id == str(json.loads(notification.body)["id"])
        assert event.raw == json.loads(notification.body)
        shouting = {name.upper(): value for name, value in delivery.headers.items()}
        assert provider.parse_webhook(delivery.body, shouting, query=delivery.query) == event
        stranger = make_mercadopago_provider(webhook_secret="someone-elses-secret")
        with pytest.raises(WebhookSignatureError):
            stranger.parse_webhook(delivery.body, delivery.headers, query=delivery.query)

    async def test_real_delivery_with_data_id_in_the_query(
        self,
        mercadopago_provider: MercadoPagoProvider,
        fake_mercadopago: FakeMercadoPago,
        notification_receiver: NotificationReceiver,
    ) -> None:
        notification = fake_mercadopago.notification(
            action="payment.updated", type="payment", data={"id": "123456789"}
        )

        await fake_mercadopago.deliver(
            notification_receiver.url + "?source_news=webhooks", notification
        )
        async with asyncio.timeout(10):
            delivery = await notification_receiver.next()

        assert delivery.query["data.id"] == "123456789"
        assert delivery.query["source_news"] == "webhooks"
        event = mercadopago_provider.parse_webhook(
            delivery.body, delivery.headers, query=delivery.query
        )
        assert (event.type, event.provider_customer_id) == ("payment.updated", None)
        with pytest.raises(WebhookSignatureError):  # data.id is signed: it must be given
            mercadopago_provider.parse_webhook(delivery.body, delivery.headers)

    def test_the_sdk_validator_agrees(self, fake_mercadopago: FakeMercadoPago) -> None:
        validator = pytest.importorskip("mercadopago.webhook").WebhookSignatureValidator
        notification = fake_mercadopago.notification(
            action="payment.created", type="payment", data={"id": "42"}
        )

        validator.validate(
            notification.headers["x-signature"],
            notification.headers["x-request-id"],
            notification.query["data.id"],
            WEBHOOK_SECRET,
        )

    def test_valid_signature_parses(self, mercadopago_provider: MercadoPagoProvider) -> None:
        event = mercadopago_provider.parse_webhook(PAYMENT, payment_headers(), query=PAYMENT_QUERY)

        assert (event.id, event.type, event.provider_customer_id) == (
            "12345",
            "payment.created",
            None,
        )
        assert event.raw == json.loads(PAYMENT)

    def test_absent_values_are_left_out_of_the_manifest(
        self, mercadopago_provider: MercadoPagoProvider
    ) -> None:
        payload = json.dumps(
            {
                "id": "a47fc06844bf4e418a03aeab1479c496",
                "type": "automatic-payments",
                "action": "card.updated",
                "data": {"customer_id": "12345678-aluyasdhfyt", "new_card_id": 1},
            }
        ).encode()
        headers = {"x-signature": signature(data_id=None, request_id=None)}

        event = mercadopago_provider.parse_webhook(payload, headers)

        assert (event.id, event.type, event.provider_customer_id) == (
            "a47fc06844bf4e418a03aeab1479c496",
            "card.updated",
            "12345678-aluyasdhfyt",
        )

    def test_a_customer_notification_names_its_customer(
        self, mercadopago_provider: MercadoPagoProvider
    ) -> None:
        # No customer topic is documented today; should one appear, data.id is the customer.
        payload = json.dumps(
            {"id": 7, "type": "customer", "action": "customer.updated", "data": {"id": "1-abc"}}
        ).encode()
        headers = {"x-signature": signature(data_id="1-abc", request_id=None)}

        event = mercadopago_provider.parse_webhook(payload, headers, query={"data.id": "1-abc"})

        assert (event.type, event.provider_customer_id) == ("customer.updated", "1-abc")

    @pytest.mark.parametrize(
        ("headers", "query"),
        [
            pytest.param({}, PAYMENT_QUERY, id="missing"),
            pytest.param({"x-signature": ""}, PAYMENT_QUERY, id="empty"),
            pytest.param({"x-signature": "garbage"}, PAYMENT_QUERY, id="malformed"),
            pytest.param({"x-signature": "v1=" + "0" * 64}, PAYMENT_QUERY, id="no-ts"),
            pytest.param({"x-signature": f"ts={int(time.time())}"}, PAYMENT_QUERY, id="no-v1"),
            pytest.param(
                {"x-signature": f"ts={int(time.time())},v1={'0' * 64}", "x-request-id": REQUEST_ID},
                PAYMENT_QUERY,
                id="forged",
            ),
            pytest.param(payment_headers(secret="wrong"), PAYMENT_QUERY, id="wrong-secret"),
            pytest.param(
                payment_headers(), {**PAYMENT_QUERY, "data.id": "999999998"}, id="other-data-id"
            ),
            pytest.param(payment_headers(), {"type": "payment"}, id="data-id-left-out"),
            pytest.param(
                {**payment_headers(), "x-request-id": "another-request"},
                PAYMENT_QUERY,
                id="other-request-id",
            ),
            pytest.param(
                {"x-signature": payment_headers()["x-signature"]}, PAYMENT_QUERY, id="no-request-id"
            ),
        ],
    )
    def test_bad_signature_is_rejected(
        self,
        mercadopago_provider: MercadoPagoProvider,
        headers: dict[str, str],
        query: dict[str, str],
    ) -> None:
        with pytest.raises(WebhookSignatureError):
            mercadopago_provider.parse_webhook(PAYMENT, headers, query=query)

    def test_a_body_about_another_object_is_rejected(
        self, mercadopago_provider: MercadoPagoProvider
    ) -> None:
        """The body is not signed: its data.id must be the signed one."""
        other = PAYMENT.replace(b'"999999999"', b'"111111111"')

        with pytest.raises(WebhookSignatureError, match=r"data\.id"):
            mercadopago_provider.parse_webhook(other, payment_headers(), query=PAYMENT_QUERY)

    def test_tolerance_is_off_by_default_and_can_be_set(
        self, make_mercadopago_provider: MercadoPagoFactory
    ) -> None:
        default = make_mercadopago_provider()
        strict = make_mercadopago_provider(webhook_tolerance=300)
        now = int(time.time())
        stale = payment_headers(ts=now - 301)
        recent = payment_headers(ts=now - 250)
        in_milliseconds = payment_headers(ts=now * 1000 - 5000)

        assert default.parse_webhook(PAYMENT, stale, query=PAYMENT_QUERY).id == "12345"
        assert strict.parse_webhook(PAYMENT, recent, query=PAYMENT_QUERY).id == "12345"
        assert strict.parse_webhook(PAYMENT, in_milliseconds, query=PAYMENT_QUERY).id == "12345"
        with pytest.raises(WebhookSignatureError):
            strict.parse_webhook(PAYMENT, stale, query=PAYMENT_QUERY)

    @pytest.mark.parametrize(
        "payload",
        [b"not json", b"[]", b'{"id": 1}', b'{"id": true, "type": "payment"}', b"\xff\xfe"],
    )
    def test_signed_non_notification_is_rejected(
        self, mercadopago_provider: MercadoPagoProvider, payload: bytes
    ) -> None:
        headers = {"x-signature": signature(data_id=None, request_id=None)}

        with pytest.raises(WebhookSignatureError):
            mercadopago_provider.parse_webhook(payload, headers)

    def test_without_a_secret_it_refuses_to_verify(
        self, make_mercadopago_provider: MercadoPagoFactory
    ) -> None:
        provider = make_mercadopago_provider(webhook_secret=None)

        with pytest.raises(QZPayError) as caught:
            provider.parse_webhook(PAYMENT, payment_headers(), query=PAYMENT_QUERY)

        assert caught.value.code == "configuration_error"
        assert not isinstance(caught.value, WebhookSignatureError)


# -- the fake itself ----------------------------------------------------------------------------

RawCall = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
async def raw(isolated_mercadopago: FakeMercadoPago) -> AsyncIterator[RawCall]:
    """Plain HTTP to a private fake, bypassing the SDK, to pin what it answers."""
    headers = {"Authorization": f"Bearer {ACCESS_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
            url = isolated_mercadopago.url + path
            async with session.request(method, url, **kwargs) as response:
                return response.status, await response.json(content_type=None)

        yield call


class TestFakeMercadoPago:
    """Pins the fake's documented behaviour and its assumptions (see its docstring)."""

    async def test_one_customer_per_email(self, raw: RawCall) -> None:
        email = unique_email()
        status, _ = await raw("POST", "/v1/customers", json={"email": email})
        assert status == 200

        status, error = await raw("POST", "/v1/customers", json={"email": email.upper()})

        assert status == 400
        assert error["error"] == "bad_request"
        assert [cause["code"] for cause in error["cause"]] == ["101"]
        assert error["message"] == "the customer already exist."

    async def test_email_cannot_be_changed_once_set(self, raw: RawCall) -> None:
        email = unique_email()
        _, created = await raw("POST", "/v1/customers", json={"email": email})
        path = f"/v1/customers/{created['id']}"

        status, error = await raw("PUT", path, json={"email": unique_email()})
        assert (status, error["cause"][0]["code"]) == (400, "126")
        status, same = await raw("PUT", path, json={"email": email, "first_name": "Ana"})
        assert (status, same["first_name"]) == (200, "Ana")

    async def test_undocumented_fields_are_refused(self, raw: RawCall) -> None:
        body = {"email": unique_email(), "metadata": {"a": "1"}}

        status, error = await raw("POST", "/v1/customers", json=body)

        assert (status, error["cause"][0]["code"]) == (400, "125")

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({"email": "not-an-email"}, "106"),
            ({"first_name": 5}, "107"),
            ({"phone": {"area_code": "+55", "number": "1"}}, "109"),
            ({"phone": {"area_code": "55", "number": "12-34"}}, "110"),
            ({"address": {"zip_code": 1}}, "113"),
            ({"description": ["x"]}, "116"),
        ],
    )
    async def test_invalid_fields(self, raw: RawCall, body: dict[str, Any], code: str) -> None:
        status, error = await raw("POST", "/v1/customers", json={"email": unique_email(), **body})

        assert (status, error["cause"][0]["code"]) == (400, code)

    async def test_body_must_be_a_json_object(self, raw: RawCall) -> None:
        status, error = await raw("POST", "/v1/customers", data=b"[1]")

        assert (status, error["cause"][0]["code"]) == (400, "118")

    async def test_needs_the_access_token(self, isolated_mercadopago: FakeMercadoPago) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.get(isolated_mercadopago.url + "/v1/customers/search") as response,
        ):
            assert response.status == 401
            assert (await response.json())["error"] == "unauthorized"

    async def test_deleted_customer_is_404(self, raw: RawCall) -> None:
        _, created = await raw("POST", "/v1/customers", json={"email": unique_email()})
        path = f"/v1/customers/{created['id']}"

        status, deleted = await raw("DELETE", path)
        assert (status, deleted["id"]) == (200, created["id"])
        for method in ("GET", "PUT", "DELETE"):
            status, error = await raw(method, path, json={})
            assert (status, error["error"]) == (404, "not_found")

    async def test_search_pages_oldest_first(self, raw: RawCall) -> None:
        ids = [
            (await raw("POST", "/v1/customers", json={"email": unique_email()}))[1]["id"]
            for _ in range(3)
        ]

        _, first = await raw("GET", "/v1/customers/search", params={"limit": "2"})
        _, second = await raw("GET", "/v1/customers/search", params={"limit": "2", "offset": "2"})
        status, _ = await raw("GET", "/v1/customers/search", params={"limit": "101"})

        assert first["paging"] == {"limit": 2, "offset": 0, "total": 3}
        assert [c["id"] for c in first["results"] + second["results"]] == ids
        assert status == 400

    async def test_search_by_email_ignores_case(self, raw: RawCall) -> None:
        email = unique_email("Mixed")
        _, created = await raw("POST", "/v1/customers", json={"email": email})

        _, found = await raw("GET", "/v1/customers/search", params={"email": email.lower()})

        assert [c["id"] for c in found["results"]] == [created["id"]]

    async def test_idempotency_keys_are_replayed_when_honoured(self) -> None:
        for honour, expected in ((True, 200), (False, 400)):
            with running(honour_idempotency=honour) as fake:
                headers = {
                    "Authorization": f"Bearer {ACCESS_TOKEN}",
                    "X-Idempotency-Key": "same-key",
                }
                body = {"email": unique_email()}
                async with aiohttp.ClientSession(headers=headers) as session:
                    for _ in range(2):
                        url = fake.url + "/v1/customers"
                        async with session.post(url, json=body) as response:
                            status = response.status
                assert status == expected
                assert len(fake.customers()) == 1

    def test_listens_on_loopback_only(self, isolated_mercadopago: FakeMercadoPago) -> None:
        port = int(isolated_mercadopago.url.rsplit(":", 1)[1])
        listening = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            if not os.path.exists(table):
                pytest.skip("needs Linux /proc/net")
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.partition(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    listening.append(address)

        assert listening == ["0100007F"]  # 127.0.0.1, and nothing on IPv6

    def test_signs_as_documented(self, isolated_mercadopago: FakeMercadoPago) -> None:
        notification = isolated_mercadopago.notification(
            action="payment.created", type="payment", data={"id": "999"}, request_id="r-1", ts=10
        )

        expected = hmac.new(
            WEBHOOK_SECRET.encode(), b"id:999;request-id:r-1;ts:10;", hashlib.sha256
        ).hexdigest()
        assert notification.headers["x-signature"] == f"ts=10,v1={expected}"
        assert notification.query == {"type": "payment", "data.id": "999"}

    async def test_delivers_to_loopback_only(self, isolated_mercadopago: FakeMercadoPago) -> None:
        notification = isolated_mercadopago.notification(
            action="payment.created", type="payment", data={"id": "1"}
        )

        with pytest.raises(ValueError, match="loopback"):
            await isolated_mercadopago.deliver("http://192.0.2.1/webhooks", notification)
