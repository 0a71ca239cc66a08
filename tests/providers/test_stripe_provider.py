"""StripeProvider against a real localstripe, through the official SDK.

Faults are injected by a real loopback proxy (tests.support.fault_proxy), so every case below
is observed on the wire: what was sent, how often, and what the provider made of the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from qzpay.customers.models import Address, Customer
from qzpay.errors import ProviderSyncError, QZPayError, WebhookSignatureError
from qzpay.ids import customer_ids
from qzpay.providers import QZPAY_CUSTOMER_ID_KEY, PaymentProvider, ProviderCustomer
from qzpay.providers.stripe import StripeProvider
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.localstripe import API_KEY, LocalStripe, mute_webhook, register_webhook
from tests.support.stripe_fixtures import WEBHOOK_SECRET, ProviderFactory, unique_email
from tests.support.webhook_receiver import WebhookReceiver

# stripe 16's HTTPXClient passes the form body as ``data=<str>``, which httpx 0.28 deprecates
# in favour of ``content=``: one warning per POST, from the SDK's code, not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content:DeprecationWarning"
)

ADDRESS = Address(
    line1="1 Main St", line2="Apt 2", city="Springfield", state="IL", postal_code="62701",
    country="US",
)  # fmt: skip


def make_customer(**fields: Any) -> Customer:
    """A stored-looking qzpay customer with every field set unless overridden."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": customer_ids.new(),
        "email": unique_email(),
        "name": "Ada Lovelace",
        "phone": "+14155552671",
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


RawCall = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
async def raw(localstripe_url: str) -> AsyncIterator[RawCall]:
    """Plain HTTP to localstripe, bypassing the provider, to see what it really stores."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:

        async def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
            async with session.request(method, localstripe_url + path, **kwargs) as response:
                return response.status, await response.json()

        yield call


def test_stripe_provider_satisfies_the_protocol(stripe_provider: StripeProvider) -> None:
    provider: PaymentProvider = stripe_provider  # checked by mypy
    assert provider.name == "stripe"


class TestCreateCustomer:
    async def test_sends_every_field_and_the_qzpay_id(
        self,
        proxied_stripe_provider: StripeProvider,
        stripe_provider: StripeProvider,
        fault_proxy: FaultProxy,
    ) -> None:
        customer = make_customer()
        idempotency_key = key()

        created = await proxied_stripe_provider.create_customer(
            customer, idempotency_key=idempotency_key
        )

        assert created.id.startswith("cus_")
        assert (created.email, created.name, created.phone) == (
            customer.email,
            customer.name,
            customer.phone,
        )
        assert created.address == ADDRESS
        assert created.metadata == {**customer.metadata, QZPAY_CUSTOMER_ID_KEY: customer.id}
        assert created.qzpay_customer_id == customer.id
        assert created.deleted is False
        [sent] = fault_proxy.matching("POST", "/v1/customers")
        assert sent.headers["idempotency-key"] == idempotency_key
        assert sent.form() == {
            "email": customer.email,
            "name": "Ada Lovelace",
            "phone": "+14155552671",
            "address[line1]": "1 Main St",
            "address[line2]": "Apt 2",
            "address[city]": "Springfield",
            "address[state]": "IL",
            "address[postal_code]": "62701",
            "address[country]": "US",
            "metadata[plan]": "pro",
            "metadata[team]": "core",
            "metadata[qzpay_customer_id]": customer.id,
        }
        assert await stripe_provider.retrieve_customer(created.id) == created

    async def test_unset_fields_are_not_sent(
        self, proxied_stripe_provider: StripeProvider, fault_proxy: FaultProxy
    ) -> None:
        customer = make_customer(
            name=None, phone=None, address=Address(city="Lisbon", country="PT"), metadata={}
        )

        created = await proxied_stripe_provider.create_customer(customer, idempotency_key=key())

        assert (created.name, created.phone) == (None, None)
        assert created.address == Address(city="Lisbon", country="PT")
        assert created.metadata == {QZPAY_CUSTOMER_ID_KEY: customer.id}
        assert fault_proxy.requests[0].form() == {
            "email": customer.email,
            "address[city]": "Lisbon",
            "address[country]": "PT",
            "metadata[qzpay_customer_id]": customer.id,
        }

    async def test_qzpay_id_wins_over_user_metadata(self, stripe_provider: StripeProvider) -> None:
        customer = make_customer(metadata={QZPAY_CUSTOMER_ID_KEY: "spoofed"})

        created = await stripe_provider.create_customer(customer, idempotency_key=key())

        assert created.qzpay_customer_id == customer.id


class TestUpdateCustomer:
    async def test_sends_only_changed_fields(
        self,
        stripe_provider: StripeProvider,
        proxied_stripe_provider: StripeProvider,
        fault_proxy: FaultProxy,
    ) -> None:
        before = make_customer()
        created = await stripe_provider.create_customer(before, idempotency_key=key())
        after = changed(before, name="Ada King")
        idempotency_key = key()

        updated = await proxied_stripe_provider.update_customer(
            created.id, before, after, idempotency_key=idempotency_key
        )

        [sent] = fault_proxy.matching("POST", f"/v1/customers/{created.id}")
        assert sent.form() == {"name": "Ada King"}
        assert sent.headers["idempotency-key"] == idempotency_key
        assert updated.name == "Ada King"
        assert (updated.email, updated.phone, updated.address) == (
            before.email,
            before.phone,
            ADDRESS,
        )

    async def test_removed_metadata_key_is_removed(
        self,
        stripe_provider: StripeProvider,
        proxied_stripe_provider: StripeProvider,
        fault_proxy: FaultProxy,
    ) -> None:
        before = make_customer(metadata={"keep": "1", "drop": "2", "edit": "3"})
        created = await stripe_provider.create_customer(before, idempotency_key=key())
        after = changed(before, metadata={"keep": "1", "edit": "33", "new": "4"})

        updated = await proxied_stripe_provider.update_customer(
            created.id, before, after, idempotency_key=key()
        )

        assert fault_proxy.requests[0].form() == {
            "metadata[drop]": "",
            "metadata[edit]": "33",
            "metadata[new]": "4",
        }
        assert updated.metadata == {
            "keep": "1",
            "edit": "33",
            "new": "4",
            QZPAY_CUSTOMER_ID_KEY: before.id,
        }
        assert await stripe_provider.retrieve_customer(created.id) == updated

    async def test_cleared_fields_are_cleared(
        self,
        stripe_provider: StripeProvider,
        proxied_stripe_provider: StripeProvider,
        fault_proxy: FaultProxy,
    ) -> None:
        before = make_customer()
        created = await stripe_provider.create_customer(before, idempotency_key=key())
        after = changed(before, name=None, phone=None, address=None)

        updated = await proxied_stripe_provider.update_customer(
            created.id, before, after, idempotency_key=key()
        )

        assert fault_proxy.requests[0].form() == {"name": "", "phone": "", "address": ""}
        assert (updated.name, updated.phone, updated.address) == (None, None, None)

    async def test_changed_address_is_sent_whole(
        self,
        stripe_provider: StripeProvider,
        proxied_stripe_provider: StripeProvider,
        fault_proxy: FaultProxy,
    ) -> None:
        before = make_customer()
        created = await stripe_provider.create_customer(before, idempotency_key=key())
        moved = ADDRESS.model_copy(update={"line1": "2 Side St", "line2": None})
        after = changed(before, address=moved, email=unique_email("moved"))

        updated = await proxied_stripe_provider.update_customer(
            created.id, before, after, idempotency_key=key()
        )

        assert fault_proxy.requests[0].form() == {
            "email": after.email,
            "address[line1]": "2 Side St",
            "address[line2]": "",
            "address[city]": "Springfield",
            "address[state]": "IL",
            "address[postal_code]": "62701",
            "address[country]": "US",
        }
        assert (updated.email, updated.address) == (after.email, moved)

    async def test_no_change_only_reads(
        self,
        stripe_provider: StripeProvider,
        proxied_stripe_provider: StripeProvider,
        fault_proxy: FaultProxy,
    ) -> None:
        before = make_customer()
        created = await stripe_provider.create_customer(before, idempotency_key=key())
        after = changed(before, provider_customer_ids={"stripe": created.id})  # not at Stripe

        updated = await proxied_stripe_provider.update_customer(
            created.id, before, after, idempotency_key=key()
        )

        assert [r.method for r in fault_proxy.requests] == ["GET"]
        assert updated == created

    @pytest.mark.parametrize("with_changes", [True, False])
    async def test_unknown_customer_fails_unambiguously(
        self, stripe_provider: StripeProvider, with_changes: bool
    ) -> None:
        before = make_customer()
        after = changed(before, name="Other") if with_changes else before

        with pytest.raises(ProviderSyncError) as caught:
            await stripe_provider.update_customer(
                "cus_doesnotexist", before, after, idempotency_key=key()
            )

        assert (caught.value.operation, caught.value.ambiguous) == ("update_customer", False)


class TestDeleteCustomer:
    async def test_deleted_customer_is_gone(
        self,
        stripe_provider: StripeProvider,
        proxied_stripe_provider: StripeProvider,
        fault_proxy: FaultProxy,
    ) -> None:
        created = await stripe_provider.create_customer(make_customer(), idempotency_key=key())
        idempotency_key = key()

        await proxied_stripe_provider.delete_customer(created.id, idempotency_key=idempotency_key)

        [sent] = fault_proxy.matching("DELETE", f"/v1/customers/{created.id}")
        assert sent.headers["idempotency-key"] == idempotency_key
        assert await stripe_provider.retrieve_customer(created.id) is None

    async def test_deleting_twice_succeeds(self, stripe_provider: StripeProvider) -> None:
        created = await stripe_provider.create_customer(make_customer(), idempotency_key=key())

        await stripe_provider.delete_customer(created.id, idempotency_key=key())
        await stripe_provider.delete_customer(created.id, idempotency_key=key())

        assert await stripe_provider.retrieve_customer(created.id) is None

    async def test_retrieving_an_unknown_customer_is_none(
        self, stripe_provider: StripeProvider
    ) -> None:
        assert await stripe_provider.retrieve_customer("cus_doesnotexist") is None


class TestFindCustomer:
    async def test_finds_by_qzpay_id_among_customers_sharing_the_email(
        self, stripe_provider: StripeProvider, raw: RawCall
    ) -> None:
        email = unique_email("shared")
        mine, theirs = make_customer(email=email), make_customer(email=email)
        await raw("POST", "/v1/customers", data={"email": email})  # no qzpay id at all
        created_theirs = await stripe_provider.create_customer(theirs, idempotency_key=key())
        created_mine = await stripe_provider.create_customer(mine, idempotency_key=key())

        assert await stripe_provider.find_customer(mine) == created_mine
        assert await stripe_provider.find_customer(theirs) == created_theirs

    async def test_email_must_match_exactly(self, stripe_provider: StripeProvider) -> None:
        customer = make_customer(email=unique_email("Mixed.Case"))
        await stripe_provider.create_customer(customer, idempotency_key=key())

        lowered = changed(customer, email=customer.email.lower())

        assert await stripe_provider.find_customer(lowered) is None

    async def test_none_when_never_created(self, stripe_provider: StripeProvider) -> None:
        assert await stripe_provider.find_customer(make_customer()) is None

    async def test_duplicates_resolve_to_the_oldest(
        self, stripe_provider: StripeProvider, raw: RawCall
    ) -> None:
        customer = make_customer()
        first = await stripe_provider.create_customer(customer, idempotency_key=key())
        await asyncio.sleep(1.05)  # Stripe's ``created`` has one-second resolution
        await stripe_provider.create_customer(customer, idempotency_key=key())

        assert await stripe_provider.find_customer(customer) == first

    async def test_pages_through_many_matches(
        self, make_stripe_provider: ProviderFactory, fault_proxy: FaultProxy
    ) -> None:
        email = unique_email("crowd")
        direct = make_stripe_provider()
        for _ in range(4):
            await direct.create_customer(make_customer(email=email), idempotency_key=key())
        wanted = make_customer(email=email)
        created = await direct.create_customer(wanted, idempotency_key=key())
        paged = make_stripe_provider(api_base=fault_proxy.url, page_size=2)

        assert await paged.find_customer(wanted) == created
        assert len(fault_proxy.matching("GET", "/v1/customers")) == 3


class TestListCustomers:
    async def test_pages_through_every_customer(
        self, make_stripe_provider: ProviderFactory, fault_proxy: FaultProxy
    ) -> None:
        direct = make_stripe_provider()
        created = [
            await direct.create_customer(make_customer(), idempotency_key=key()) for _ in range(5)
        ]
        paged = make_stripe_provider(api_base=fault_proxy.url, page_size=2)

        listed = [customer async for customer in paged.list_customers()]

        by_id = {customer.id: customer for customer in listed}
        assert len(by_id) == len(listed)  # no customer twice
        assert all(by_id[c.id] == c for c in created)
        pages = fault_proxy.matching("GET", "/v1/customers")
        assert len(pages) == -(-len(listed) // 2)
        assert all("starting_after=" in page.query for page in pages[1:])

    async def test_a_failing_page_fails_the_listing(
        self, make_stripe_provider: ProviderFactory, fault_proxy: FaultProxy
    ) -> None:
        direct = make_stripe_provider()
        for _ in range(3):
            await direct.create_customer(make_customer(), idempotency_key=key())
        paged = make_stripe_provider(api_base=fault_proxy.url, page_size=2)
        fault_proxy.inject(
            Fault.server_error(),
            method="GET",
            path="/v1/customers",
            where=lambda r: "starting_after" in r.query,
        )

        with pytest.raises(ProviderSyncError) as caught:
            _ = [customer async for customer in paged.list_customers()]

        assert caught.value.operation == "list_customers"


CREATE_FAULTS = [
    pytest.param(Fault.reset(), True, False, id="reset-before-forwarding"),
    pytest.param(Fault.drop(), True, True, id="response-dropped"),
    pytest.param(Fault.server_error(), True, False, id="500"),
    pytest.param(Fault.respond(503), True, False, id="503"),
    pytest.param(Fault.rate_limited(), False, False, id="429"),
    pytest.param(Fault.respond(400), False, False, id="400"),
]


class TestFaults:
    """Each failure maps to ProviderSyncError; ``ambiguous`` says if Stripe may have applied it.

    The SDK must never resend on its own: the proxy must see exactly one matching request.
    """

    @pytest.mark.parametrize(("fault", "ambiguous", "applied"), CREATE_FAULTS)
    async def test_create_fault(
        self,
        proxied_stripe_provider: StripeProvider,
        stripe_provider: StripeProvider,
        fault_proxy: FaultProxy,
        fault: Fault,
        ambiguous: bool,
        applied: bool,
    ) -> None:
        customer = make_customer()
        fault_proxy.inject(fault, method="POST", path="/v1/customers")

        with pytest.raises(ProviderSyncError) as caught:
            await proxied_stripe_provider.create_customer(customer, idempotency_key=key())

        error = caught.value
        assert (error.provider, error.operation, error.ambiguous) == (
            "stripe",
            "create_customer",
            ambiguous,
        )
        assert error.cause is not None
        assert len(fault_proxy.matching("POST", "/v1/customers")) == 1
        found = await stripe_provider.find_customer(customer)
        assert (found is not None) == applied

    async def test_refused_connection_is_not_ambiguous(
        self, proxied_stripe_provider: StripeProvider, fault_proxy: FaultProxy
    ) -> None:
        async with fault_proxy.refusing():
            with pytest.raises(ProviderSyncError) as caught:
                await proxied_stripe_provider.create_customer(
                    make_customer(), idempotency_key=key()
                )

        assert caught.value.ambiguous is False
        assert fault_proxy.requests == []

    async def test_timeout_is_ambiguous_and_may_still_apply(
        self,
        make_stripe_provider: ProviderFactory,
        stripe_provider: StripeProvider,
        fault_proxy: FaultProxy,
    ) -> None:
        impatient = make_stripe_provider(api_base=fault_proxy.url, timeout=0.3)
        customer = make_customer()
        fault_proxy.inject(Fault.delay(0.8), method="POST", path="/v1/customers")

        started = time.monotonic()
        with pytest.raises(ProviderSyncError) as caught:
            await impatient.create_customer(customer, idempotency_key=key())

        assert time.monotonic() - started < 0.8
        assert caught.value.ambiguous is True
        assert len(fault_proxy.matching("POST", "/v1/customers")) == 1
        async with asyncio.timeout(5):  # the slow request still lands: hence "ambiguous"
            # Polling: localstripe offers nothing to wait on for "this request was applied".
            while await stripe_provider.find_customer(customer) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.1)

    @pytest.mark.parametrize(
        ("fault", "ambiguous"),
        [(Fault.drop(), True), (Fault.server_error(), True), (Fault.rate_limited(), False)],
        ids=["response-dropped", "500", "429"],
    )
    async def test_update_fault(
        self,
        stripe_provider: StripeProvider,
        proxied_stripe_provider: StripeProvider,
        fault_proxy: FaultProxy,
        fault: Fault,
        ambiguous: bool,
    ) -> None:
        before = make_customer()
        created = await stripe_provider.create_customer(before, idempotency_key=key())
        path = f"/v1/customers/{created.id}"
        fault_proxy.inject(fault, method="POST", path=path)

        with pytest.raises(ProviderSyncError) as caught:
            await proxied_stripe_provider.update_customer(
                created.id, before, changed(before, name="Changed"), idempotency_key=key()
            )

        assert (caught.value.operation, caught.value.ambiguous) == ("update_customer", ambiguous)
        assert len(fault_proxy.matching("POST", path)) == 1

    @pytest.mark.parametrize(
        ("fault", "ambiguous"),
        [(Fault.drop(), True), (Fault.server_error(), True), (Fault.rate_limited(), False)],
        ids=["response-dropped", "500", "429"],
    )
    async def test_delete_fault(
        self,
        stripe_provider: StripeProvider,
        proxied_stripe_provider: StripeProvider,
        fault_proxy: FaultProxy,
        fault: Fault,
        ambiguous: bool,
    ) -> None:
        created = await stripe_provider.create_customer(make_customer(), idempotency_key=key())
        path = f"/v1/customers/{created.id}"
        fault_proxy.inject(fault, method="DELETE", path=path)

        with pytest.raises(ProviderSyncError) as caught:
            await proxied_stripe_provider.delete_customer(created.id, idempotency_key=key())

        assert (caught.value.operation, caught.value.ambiguous) == ("delete_customer", ambiguous)
        assert len(fault_proxy.matching("DELETE", path)) == 1

    async def test_post_is_not_resent_on_a_reused_connection(
        self, proxied_stripe_provider: StripeProvider, fault_proxy: FaultProxy
    ) -> None:
        await proxied_stripe_provider.retrieve_customer("cus_warm")  # pools a connection
        fault_proxy.inject(Fault.drop(), method="POST", path="/v1/customers")

        with pytest.raises(ProviderSyncError) as caught:
            await proxied_stripe_provider.create_customer(make_customer(), idempotency_key=key())

        assert caught.value.ambiguous is True
        assert len(fault_proxy.matching("POST", "/v1/customers")) == 1

    @pytest.mark.parametrize("fault", [Fault.drop(), Fault.server_error()], ids=["drop", "500"])
    async def test_read_fault(
        self, proxied_stripe_provider: StripeProvider, fault_proxy: FaultProxy, fault: Fault
    ) -> None:
        await proxied_stripe_provider.retrieve_customer("cus_warm")  # pools a connection
        fault_proxy.inject(fault, method="GET", path="/v1/customers/cus_whatever")

        with pytest.raises(ProviderSyncError) as caught:
            await proxied_stripe_provider.retrieve_customer("cus_whatever")

        assert caught.value.operation == "retrieve_customer"
        assert len(fault_proxy.matching("GET", "/v1/customers/cus_whatever")) == 1


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header, computed independently of the SDK being tested."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


EVENT = json.dumps(
    {
        "id": "evt_test",
        "object": "event",
        "type": "customer.updated",
        "data": {"object": {"id": "cus_abc", "object": "customer"}},
    }
).encode()


class TestWebhooks:
    async def test_real_delivery_verifies_and_parses(
        self,
        make_stripe_provider: ProviderFactory,
        localstripe_url: str,
        webhook_receiver: WebhookReceiver,
    ) -> None:
        provider = make_stripe_provider()
        name = f"qzpay-test-{os.urandom(4).hex()}"
        await register_webhook(
            localstripe_url,
            name,
            url=webhook_receiver.url,
            secret=WEBHOOK_SECRET,
            events=["customer.created"],
        )
        try:
            created = await provider.create_customer(make_customer(), idempotency_key=key())
            async with asyncio.timeout(10):
                delivery = await webhook_receiver.wait_for(lambda d: created.id.encode() in d.body)
        finally:
            await mute_webhook(localstripe_url, name)

        event = provider.parse_webhook(delivery.body, delivery.headers)

        assert event.type == "customer.created"
        assert event.id.startswith("evt_")
        assert event.provider_customer_id == created.id
        assert event.raw["data"]["object"]["metadata"][QZPAY_CUSTOMER_ID_KEY] == (
            created.qzpay_customer_id
        )
        shouting = {name.upper(): value for name, value in delivery.headers.items()}
        assert provider.parse_webhook(delivery.body, shouting) == event
        stranger = make_stripe_provider(webhook_secret="whsec_someone_else")
        with pytest.raises(WebhookSignatureError):
            stranger.parse_webhook(delivery.body, delivery.headers)

    def test_valid_signature_parses(self, stripe_provider: StripeProvider) -> None:
        event = stripe_provider.parse_webhook(
            EVENT, {"stripe-signature": sign(EVENT)}, query={"ignored": "yes"}
        )

        assert (event.id, event.type, event.provider_customer_id) == (
            "evt_test",
            "customer.updated",
            "cus_abc",
        )
        assert event.raw == json.loads(EVENT)

    def test_customer_of_a_non_customer_object(self, stripe_provider: StripeProvider) -> None:
        payload = json.dumps(
            {
                "id": "evt_2",
                "type": "invoice.paid",
                "data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_x"}},
            }
        ).encode()

        event = stripe_provider.parse_webhook(payload, {"Stripe-Signature": sign(payload)})

        assert event.provider_customer_id == "cus_x"

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({}, id="missing"),
            pytest.param({"Stripe-Signature": ""}, id="empty"),
            pytest.param({"Stripe-Signature": "garbage"}, id="malformed"),
            pytest.param({"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"}, id="forged"),
            pytest.param({"Stripe-Signature": sign(EVENT, "whsec_wrong")}, id="wrong-secret"),
            pytest.param(
                {"Stripe-Signature": sign(EVENT, timestamp=int(time.time()) - 301)}, id="stale"
            ),
            pytest.param({"Stripe-Signature": sign(EVENT + b" ")}, id="tampered-body"),
        ],
    )
    def test_bad_signature_is_rejected(
        self, stripe_provider: StripeProvider, headers: dict[str, str]
    ) -> None:
        with pytest.raises(WebhookSignatureError):
            stripe_provider.parse_webhook(EVENT, headers)

    def test_tolerance_window(self, make_stripe_provider: ProviderFactory) -> None:
        default = make_stripe_provider()
        strict = make_stripe_provider(webhook_tolerance=10)
        recent = {"Stripe-Signature": sign(EVENT, timestamp=int(time.time()) - 250)}

        assert default.parse_webhook(EVENT, recent).id == "evt_test"
        with pytest.raises(WebhookSignatureError):
            strict.parse_webhook(EVENT, recent)

    @pytest.mark.parametrize("payload", [b"not json", b"[]", b'{"id": "evt_1"}', b"\xff\xfe"])
    def test_signed_non_event_is_rejected(
        self, stripe_provider: StripeProvider, payload: bytes
    ) -> None:
        with pytest.raises(WebhookSignatureError):
            stripe_provider.parse_webhook(payload, {"Stripe-Signature": sign(payload)})

    def test_without_a_secret_it_refuses_to_verify(
        self, make_stripe_provider: ProviderFactory
    ) -> None:
        provider = make_stripe_provider(webhook_secret=None)

        with pytest.raises(QZPayError) as caught:
            provider.parse_webhook(EVENT, {"Stripe-Signature": sign(EVENT)})

        assert caught.value.code == "configuration_error"
        assert not isinstance(caught.value, WebhookSignatureError)


STOCK_PICKLE = Path("/tmp/localstripe.pickle")  # where stock localstripe dumps its store


def _modified(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


class TestLocalstripeBehaviour:
    """Pins what the provider code and tests assume about localstripe (and how it differs
    from Stripe), so a localstripe upgrade that changes any of it fails here first."""

    async def test_ignores_idempotency_keys(self, raw: RawCall) -> None:
        email = unique_email()
        headers = {"Idempotency-Key": key()}
        _, first = await raw("POST", "/v1/customers", data={"email": email}, headers=headers)
        _, second = await raw("POST", "/v1/customers", data={"email": email}, headers=headers)

        assert first["id"] != second["id"]  # real Stripe would replay the first answer

    async def test_has_no_search(self, raw: RawCall) -> None:
        status, _ = await raw("GET", "/v1/customers/search", params={"query": "email:'x'"})

        assert status == 404

    async def test_deleted_customer_is_404(self, raw: RawCall) -> None:
        _, created = await raw("POST", "/v1/customers", data={"email": unique_email()})
        path = f"/v1/customers/{created['id']}"

        status, deleted = await raw("DELETE", path)
        assert (status, deleted["deleted"]) == (200, True)
        assert (await raw("GET", path))[0] == 404  # Stripe: 200 with "deleted": true
        assert (await raw("DELETE", path))[0] == 404

    async def test_lists_oldest_first(self, raw: RawCall) -> None:
        email = unique_email()
        _, first = await raw("POST", "/v1/customers", data={"email": email})
        _, second = await raw("POST", "/v1/customers", data={"email": email})

        _, listed = await raw("GET", "/v1/customers", params={"email": email})

        assert [c["id"] for c in listed["data"]] == [first["id"], second["id"]]  # Stripe: newest

    async def test_keeps_a_blanked_metadata_key(self, raw: RawCall) -> None:
        data = {"email": unique_email(), "metadata[a]": "1"}
        _, created = await raw("POST", "/v1/customers", data=data)

        _, updated = await raw("POST", f"/v1/customers/{created['id']}", data={"metadata[a]": ""})

        assert updated["metadata"] == {"a": ""}  # Stripe removes the key

    async def test_writes_no_pickle_file(self, raw: RawCall) -> None:
        before = _modified(STOCK_PICKLE)

        await raw("POST", "/v1/customers", data={"email": unique_email()})

        assert _modified(STOCK_PICKLE) == before

    def test_listens_on_loopback_only(self, localstripe: LocalStripe) -> None:
        port = int(localstripe.url.rsplit(":", 1)[1])
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


def test_provider_customer_is_immutable() -> None:
    customer = ProviderCustomer("cus_1", None, None, None, None, {}, None, False)
    with pytest.raises(AttributeError):
        customer.id = "cus_2"  # type: ignore[misc]
