"""What only MercadoPagoProvider does, against the fake MercadoPago server: its field mapping
(name split, phone area code, the held address, the qzpay id in ``description``), one customer
per email (adoption of its own earlier attempt, conflicts, recovery from ambiguous creates),
an email that cannot change (cause 126), its SDK on a thread pool, its ``x-signature``
manifest, and what the fake is pinned to do (TestFakeMercadoPago).

Everything both providers must do alike is in ``tests/providers/contract``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import aiohttp
import phonenumbers
import pytest

from qzpay import Billing
from qzpay.customers.models import Address, Customer
from qzpay.customers.sync import ProviderSet, create_key
from qzpay.errors import ConflictError, ProviderSyncError, WebhookSignatureError
from qzpay.providers.base import ProviderCustomer, replace_all_fields
from qzpay.providers.mercadopago import (
    MercadoPagoCustomers,
    MercadoPagoEmailTaken,
    MercadoPagoProvider,
    idempotency_key,
    split_name,
)
from qzpay.providers.mercadopago.transport import SdkHttpClient
from tests.factories import changed, stored_customer
from tests.factories import idempotency_key as key
from tests.providers.contract.kit import (
    MERCADOPAGO_PAYMENT,
    MERCADOPAGO_PAYMENT_QUERY,
    MERCADOPAGO_REQUEST_ID,
    SDK_WARNING,
    mercadopago_fault,
    mercadopago_signature,
    update_on_the_wire,
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

pytestmark = pytest.mark.filterwarnings(SDK_WARNING)

ADDRESS = Address(
    line1="Av. Paulista 1000", line2="Apto 12", city="São Paulo", state="SP",
    postal_code="01310-100", country="BR",
)  # fmt: skip
HELD_ADDRESS = Address(line1="Av. Paulista 1000", postal_code="01310-100")


def make_customer(**fields: Any) -> Customer:
    """A stored-looking Brazilian customer with every field set unless overridden."""
    defaults = {"name": "Ana Souza", "phone": "+5511912345678", "address": ADDRESS}
    return stored_customer(**{**defaults, **fields})


def body_of(request: Any) -> Any:
    return json.loads(request.body)


NAME_SPLITS = [
    ("Ana Souza", "Ana", "Souza"),
    ("María José García", "María", "José García"),
    ("Cher", "Cher", ""),
    ("Jean-Luc Picard", "Jean-Luc", "Picard"),
    ("Ana  Souza", "Ana  Souza", ""),  # the rest would lose its leading space
]


class TestMapping:
    @pytest.mark.parametrize(("name", "first", "last"), NAME_SPLITS)
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
    async def test_sends_the_mapped_fields_and_the_qzpay_id_in_the_description(
        self,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
    ) -> None:
        customer = make_customer()

        created = await proxied_mercadopago_provider.customers.create(
            customer, idempotency_key=key()
        )

        assert created.address == HELD_ADDRESS
        [sent] = mercadopago_proxy.matching("POST", "/v1/customers")
        assert sent.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
        assert body_of(sent) == {
            "email": customer.email,
            "description": f"qzpay_customer_id:{customer.id}",
            "first_name": "Ana",
            "last_name": "Souza",
            "phone": {"area_code": "55", "number": "11912345678"},
            "address": {"street_name": "Av. Paulista 1000", "zip_code": "01310-100"},
        }

    async def test_what_mercadopago_cannot_hold_is_exactly_what_is_documented(
        self, mercadopago_provider: MercadoPagoProvider
    ) -> None:
        customer = make_customer()

        created = await mercadopago_provider.customers.create(customer, idempotency_key=key())

        # Everything else round-trips: metadata and four address fields stay in qzpay.
        assert replace_all_fields(customer, created) == MercadoPagoCustomers.held_view(customer)
        # and merging MercadoPago's copy back loses nothing qzpay keeps
        assert mercadopago_provider.customers.merge_remote(customer, created) == customer
        assert MercadoPagoCustomers.held_view(customer).metadata == {}
        assert MercadoPagoCustomers.held_view(customer).address == HELD_ADDRESS

    async def test_unset_fields_are_left_out(
        self,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
    ) -> None:
        customer = make_customer(
            name=None, phone=None, address=Address(city="Lisboa", country="PT"), metadata={}
        )

        await proxied_mercadopago_provider.customers.create(customer, idempotency_key=key())

        assert body_of(mercadopago_proxy.requests[0]) == {
            "email": customer.email,
            "description": f"qzpay_customer_id:{customer.id}",
        }

    @pytest.mark.parametrize("name", [*(name for name, _, _ in NAME_SPLITS), None])
    async def test_names_round_trip(
        self, mercadopago_provider: MercadoPagoProvider, name: str | None
    ) -> None:
        created = await mercadopago_provider.customers.create(
            make_customer(name=name), idempotency_key=key()
        )

        assert created.name == name
        retrieved = await mercadopago_provider.customers.retrieve(created.id)
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

        created = await proxied_mercadopago_provider.customers.create(
            make_customer(phone=phone), idempotency_key=key()
        )

        assert body_of(mercadopago_proxy.requests[0])["phone"] == {
            "area_code": area_code,
            "number": number,
        }
        assert created.phone == phone
        retrieved = await mercadopago_provider.customers.retrieve(created.id)
        assert retrieved is not None
        assert retrieved.phone == phone

    async def test_a_phone_in_another_convention_is_reported_as_stored(
        self, mercadopago_provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
    ) -> None:
        made = fake_mercadopago.add_customer(
            email=unique_email(), phone={"area_code": "11", "number": "912345678"}
        )

        found = await mercadopago_provider.customers.retrieve(made["id"])

        assert found is not None
        assert found.phone == "11 912345678"

    async def test_a_repeated_create_adopts_the_first_found_by_one_email_search(
        self,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        customer = make_customer()
        caller_key = create_key(customer.id)

        first = await proxied_mercadopago_provider.customers.create(
            customer, idempotency_key=caller_key
        )
        second = await proxied_mercadopago_provider.customers.create(
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
        theirs = await mercadopago_provider.customers.create(
            make_customer(email=email), idempotency_key=key()
        )
        mine = make_customer(email=email)

        with pytest.raises(MercadoPagoEmailTaken) as caught:
            await mercadopago_provider.customers.create(mine, idempotency_key=key())

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
            await mercadopago_provider.customers.create(
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
        first = await mercadopago_provider.customers.create(customer, idempotency_key=key())

        again = await mercadopago_provider.customers.create(
            changed(customer, email=customer.email.lower()), idempotency_key=key()
        )

        assert again == first


SentUpdate = Callable[[Customer, Customer], Awaitable[tuple[Any, ProviderCustomer]]]


@pytest.fixture
def sent_update(
    mercadopago_provider: MercadoPagoProvider,
    proxied_mercadopago_provider: MercadoPagoProvider,
    mercadopago_proxy: FaultProxy,
) -> SentUpdate:
    """Update ``before`` to ``after`` at the fake: the JSON body sent, and the result."""

    async def update(before: Customer, after: Customer) -> tuple[Any, ProviderCustomer]:
        sent, updated = await update_on_the_wire(
            mercadopago_provider, proxied_mercadopago_provider, mercadopago_proxy, before, after
        )
        assert sent.method == "PUT"
        return body_of(sent), updated

    return update


class TestUpdateCustomer:
    async def test_a_name_change_sends_only_the_split_name(self, sent_update: SentUpdate) -> None:
        before = make_customer()

        body, updated = await sent_update(before, changed(before, name="María José García"))

        assert body == {"first_name": "María", "last_name": "José García"}
        assert updated.name == "María José García"

    async def test_shortening_a_name_clears_the_last_name(
        self, mercadopago_provider: MercadoPagoProvider
    ) -> None:
        before = make_customer(name="María José García")
        created = await mercadopago_provider.customers.create(before, idempotency_key=key())

        updated = await mercadopago_provider.customers.update(
            created.id, before, changed(before, name="Cher"), idempotency_key=key()
        )

        assert updated.name == "Cher"

    async def test_cleared_fields_are_sent_blank(self, sent_update: SentUpdate) -> None:
        before = make_customer()

        body, updated = await sent_update(
            before, changed(before, name=None, phone=None, address=None)
        )

        assert body == {
            "first_name": "",
            "last_name": "",
            "phone": {"area_code": "", "number": ""},
            "address": {"street_name": "", "zip_code": ""},
        }
        assert (updated.name, updated.phone, updated.address) == (None, None, None)

    async def test_a_changed_held_address_is_sent_whole_the_rest_stays_local(
        self, sent_update: SentUpdate
    ) -> None:
        before = make_customer()
        moved = ADDRESS.model_copy(update={"line1": "Rua Augusta 5", "postal_code": None})

        body, updated = await sent_update(before, changed(before, address=moved))

        assert body == {"address": {"street_name": "Rua Augusta 5", "zip_code": ""}}
        assert updated.address == Address(line1="Rua Augusta 5")

    async def test_an_email_change_is_not_sent(
        self, mercadopago_provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
    ) -> None:
        """MercadoPago refuses to change an email once set (cause 126): it is not sent."""
        before = make_customer()
        created = await mercadopago_provider.customers.create(before, idempotency_key=key())
        after = changed(before, email=unique_email("moved"), name="Ana Lima")

        updated = await mercadopago_provider.customers.update(
            created.id, before, after, idempotency_key=key()
        )

        stored = fake_mercadopago.get(created.id)
        assert stored is not None
        assert (stored["email"], stored["last_name"]) == (before.email, "Lima")
        assert mercadopago_provider.customers.merge_remote(after, updated) == after


class TestFindWithOneCustomerPerEmail:
    async def test_another_qzpay_customers_email_is_not_ours(
        self, mercadopago_provider: MercadoPagoProvider
    ) -> None:
        email = unique_email("shared")
        await mercadopago_provider.customers.create(
            make_customer(email=email), idempotency_key=key()
        )
        mine = make_customer(email=email)

        assert await mercadopago_provider.customers.find(mine) is None
        assert await mercadopago_provider.customers.find_unmanaged(mine) is None

    async def test_a_customer_made_outside_qzpay_is_only_reported_as_unmanaged(
        self, mercadopago_provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
    ) -> None:
        email = unique_email("outsider")
        outsider = fake_mercadopago.add_customer(email=email, first_name="Ana")
        customer = make_customer(email=email)

        assert await mercadopago_provider.customers.find(customer) is None
        unmanaged = await mercadopago_provider.customers.find_unmanaged(customer)
        assert unmanaged is not None
        assert (unmanaged.id, unmanaged.qzpay_customer_id) == (outsider["id"], None)
        assert await mercadopago_provider.customers.find_unmanaged(make_customer()) is None


class TestListCustomers:
    async def test_lists_everything_oldest_first_by_offset(
        self,
        make_mercadopago_provider: MercadoPagoFactory,
        isolated_mercadopago: FakeMercadoPago,
    ) -> None:
        direct = make_mercadopago_provider(api_base=isolated_mercadopago.url)
        created = [
            await direct.customers.create(make_customer(), idempotency_key=key()) for _ in range(5)
        ]
        async with FaultProxy(isolated_mercadopago.url) as proxy:
            paged = make_mercadopago_provider(api_base=proxy.url, page_size=2)

            listed = [customer async for customer in paged.customers.list()]

        assert listed == created
        pages = proxy.matching("GET", "/v1/customers/search")
        assert [dict(parse_qsl(p.query))["offset"] for p in pages] == ["0", "2", "4"]
        assert all("email" not in p.query for p in pages)


SERVER_ERROR = mercadopago_fault(500)
RATE_LIMITED = mercadopago_fault(429)
LOCKED = mercadopago_fault(423)

# The classification shared with Stripe is in the contract suite; these answers are
# MercadoPago's own.
CREATE_FAULTS = [
    pytest.param(LOCKED, True, False, id="423"),
    pytest.param(Fault.respond(200, b"<html>ok</html>"), True, False, id="unreadable-200"),
]


class TestFaults:
    """MercadoPago's own failures, and recovering from ambiguous creates with one customer
    per email."""

    @pytest.mark.parametrize(("fault", "ambiguous", "applied"), CREATE_FAULTS)
    async def test_a_mercadopago_create_fault_is_classified(
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
            await proxied_mercadopago_provider.customers.create(customer, idempotency_key=key())

        error = caught.value
        assert (error.provider, error.operation, error.ambiguous) == (
            "mercadopago",
            "create_customer",
            ambiguous,
        )
        assert error.cause is not None
        assert len(mercadopago_proxy.matching("POST", "/v1/customers")) == 1
        found = await mercadopago_provider.customers.find(customer)
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
        await mercadopago_provider.customers.create(customer, idempotency_key=key())
        mercadopago_proxy.inject(RATE_LIMITED, method="GET", path="/v1/customers/search")

        with pytest.raises(ProviderSyncError) as caught:
            await proxied_mercadopago_provider.customers.create(customer, idempotency_key=key())

        assert (caught.value.operation, caught.value.ambiguous) == ("create_customer", True)
        assert await proxied_mercadopago_provider.customers.find(customer) is not None

    @pytest.mark.parametrize(
        ("fault", "ambiguous"),
        [(LOCKED, True)],
        ids=["423"],
    )
    async def test_a_mercadopago_update_fault_is_classified(
        self,
        mercadopago_provider: MercadoPagoProvider,
        proxied_mercadopago_provider: MercadoPagoProvider,
        mercadopago_proxy: FaultProxy,
        fault: Fault,
        ambiguous: bool,
    ) -> None:
        before = make_customer()
        created = await mercadopago_provider.customers.create(before, idempotency_key=key())
        path = f"/v1/customers/{created.id}"
        mercadopago_proxy.inject(fault, method="PUT", path=path)

        with pytest.raises(ProviderSyncError) as caught:
            await proxied_mercadopago_provider.customers.update(
                created.id, before, changed(before, name="Changed"), idempotency_key=key()
            )

        assert (caught.value.operation, caught.value.ambiguous) == ("update_customer", ambiguous)
        assert len(mercadopago_proxy.matching("PUT", path)) == 1

    async def test_a_wrong_access_token_fails_unambiguously(
        self, make_mercadopago_provider: MercadoPagoFactory
    ) -> None:
        provider = make_mercadopago_provider(access_token="TEST-wrong")

        with pytest.raises(ProviderSyncError) as caught:
            await provider.customers.create(make_customer(), idempotency_key=key())

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
            await proxied_mercadopago_provider.customers.retrieve("1234567890-slow")
        finally:
            ticker.cancel()

        assert ticks >= 10

    def test_urls_outside_the_sdk_base_are_refused(self) -> None:
        transport = SdkHttpClient("http://127.0.0.1:9", (1.0, 1.0))

        with pytest.raises(ValueError, match="refusing"):
            transport.request("GET", "https://api.mercadopago.com.evil.example/v1/customers")

    def test_without_api_base_the_sdk_base_is_kept(self) -> None:
        transport = SdkHttpClient(None, (1.0, 1.0))

        assert transport._api_base == "https://api.mercadopago.com"


# -- webhooks ---------------------------------------------------------------------------------


def signature(
    *,
    data_id: str | None,
    request_id: str | None,
    ts: int | None = None,
    secret: str = WEBHOOK_SECRET,
) -> str:
    """An x-signature header, computed independently of the code under test."""
    ts = int(time.time()) if ts is None else ts
    return mercadopago_signature(secret, data_id=data_id, request_id=request_id, ts=ts)


PAYMENT = MERCADOPAGO_PAYMENT
PAYMENT_QUERY = MERCADOPAGO_PAYMENT_QUERY
REQUEST_ID = MERCADOPAGO_REQUEST_ID


def payment_headers(**overrides: Any) -> dict[str, str]:
    options: dict[str, Any] = {"data_id": "999999999", "request_id": REQUEST_ID}
    options.update(overrides)
    return {"x-signature": signature(**options), "x-request-id": REQUEST_ID}


class TestWebhooks:
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
            pytest.param({"x-signature": "v1=" + "0" * 64}, PAYMENT_QUERY, id="no-ts"),
            pytest.param({"x-signature": f"ts={int(time.time())}"}, PAYMENT_QUERY, id="no-v1"),
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
    def test_a_signature_not_over_the_documented_manifest_is_rejected(
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

    def test_tolerance_is_off_by_default_and_reads_milliseconds(
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
