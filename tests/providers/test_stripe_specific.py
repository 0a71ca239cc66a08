"""What only StripeProvider does: its wire format (form-encoded fields, metadata blanking),
finding among several customers sharing an email (Stripe allows that; its email filter is
case-sensitive), its default webhook tolerance, and what localstripe is pinned to do.

Everything both providers must do alike is in ``tests/providers/contract``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from qzpay.customers.models import Address, Customer
from qzpay.errors import WebhookSignatureError
from qzpay.providers import QZPAY_CUSTOMER_ID_KEY, ProviderCustomer
from qzpay.providers.stripe import StripeProvider
from tests.factories import ADDRESS, changed, stored_customer, unique_email
from tests.factories import idempotency_key as key
from tests.providers.contract.kit import SDK_WARNING, stripe_delivery, update_on_the_wire
from tests.support.fault_proxy import FaultProxy
from tests.support.localstripe import API_KEY
from tests.support.stripe_fixtures import WEBHOOK_SECRET, ProviderFactory

pytestmark = pytest.mark.filterwarnings(SDK_WARNING)

RawCall = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
async def raw(localstripe_url: str) -> AsyncIterator[RawCall]:
    """Plain HTTP to localstripe, bypassing the provider, to see what it really stores."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:

        async def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
            async with session.request(method, localstripe_url + path, **kwargs) as response:
                return response.status, await response.json()

        yield call


SentUpdate = Callable[[Customer, Customer], Awaitable[tuple[dict[str, str], ProviderCustomer]]]


@pytest.fixture
def sent_update(
    stripe_provider: StripeProvider,
    proxied_stripe_provider: StripeProvider,
    fault_proxy: FaultProxy,
) -> SentUpdate:
    """Update ``before`` to ``after`` at localstripe: the form sent, and the result."""

    async def update(before: Customer, after: Customer) -> tuple[dict[str, str], ProviderCustomer]:
        sent, updated = await update_on_the_wire(
            stripe_provider, proxied_stripe_provider, fault_proxy, before, after
        )
        assert sent.method == "POST"
        return sent.form(), updated

    return update


class TestWireFormat:
    """What goes on the wire: form fields, ``""`` to clear, only what changed."""

    async def test_create_sends_every_field_and_the_qzpay_id_as_form_fields(
        self, proxied_stripe_provider: StripeProvider, fault_proxy: FaultProxy
    ) -> None:
        customer = stored_customer()

        await proxied_stripe_provider.customers.create(customer, idempotency_key=key())

        [sent] = fault_proxy.matching("POST", "/v1/customers")
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

    async def test_create_leaves_unset_fields_out(
        self, proxied_stripe_provider: StripeProvider, fault_proxy: FaultProxy
    ) -> None:
        customer = stored_customer(
            name=None, phone=None, address=Address(city="Lisbon", country="PT"), metadata={}
        )

        await proxied_stripe_provider.customers.create(customer, idempotency_key=key())

        assert fault_proxy.requests[0].form() == {
            "email": customer.email,
            "address[city]": "Lisbon",
            "address[country]": "PT",
            "metadata[qzpay_customer_id]": customer.id,
        }

    async def test_update_sends_only_the_changed_field(self, sent_update: SentUpdate) -> None:
        before = stored_customer()

        form, _ = await sent_update(before, changed(before, name="Ada King"))

        assert form == {"name": "Ada King"}

    async def test_a_removed_metadata_key_is_blanked_and_reported_gone(
        self, sent_update: SentUpdate, stripe_provider: StripeProvider
    ) -> None:
        before = stored_customer(metadata={"keep": "1", "drop": "2", "edit": "3"})
        after = changed(before, metadata={"keep": "1", "edit": "33", "new": "4"})

        form, updated = await sent_update(before, after)

        assert form == {"metadata[drop]": "", "metadata[edit]": "33", "metadata[new]": "4"}
        assert updated.metadata == {
            "keep": "1",
            "edit": "33",
            "new": "4",
            QZPAY_CUSTOMER_ID_KEY: before.id,
        }
        assert await stripe_provider.customers.retrieve(updated.id) == updated

    async def test_cleared_fields_are_sent_blank(self, sent_update: SentUpdate) -> None:
        before = stored_customer()

        form, _ = await sent_update(before, changed(before, name=None, phone=None, address=None))

        assert form == {"name": "", "phone": "", "address": ""}

    async def test_a_changed_address_is_sent_whole_and_the_email_changes(
        self, sent_update: SentUpdate
    ) -> None:
        before = stored_customer()
        moved = ADDRESS.model_copy(update={"line1": "2 Side St", "line2": None})
        after = changed(before, address=moved, email=unique_email("moved"))

        form, updated = await sent_update(before, after)

        assert form == {
            "email": after.email,
            "address[line1]": "2 Side St",
            "address[line2]": "",
            "address[city]": "Springfield",
            "address[state]": "IL",
            "address[postal_code]": "62701",
            "address[country]": "US",
        }
        assert (updated.email, updated.address) == (after.email, moved)


class TestFindAmongCustomersSharingAnEmail:
    """Stripe allows any number of customers per email; find lists them by the exact email."""

    async def test_finds_by_qzpay_id_among_customers_sharing_the_email(
        self, stripe_provider: StripeProvider, raw: RawCall
    ) -> None:
        email = unique_email("shared")
        mine, theirs = stored_customer(email=email), stored_customer(email=email)
        await raw("POST", "/v1/customers", data={"email": email})  # no qzpay id at all
        created_theirs = await stripe_provider.customers.create(theirs, idempotency_key=key())
        created_mine = await stripe_provider.customers.create(mine, idempotency_key=key())

        assert await stripe_provider.customers.find(mine) == created_mine
        assert await stripe_provider.customers.find(theirs) == created_theirs

    async def test_the_email_must_match_exactly(self, stripe_provider: StripeProvider) -> None:
        customer = stored_customer(email=unique_email("Mixed.Case"))
        await stripe_provider.customers.create(customer, idempotency_key=key())

        lowered = changed(customer, email=customer.email.lower())

        assert await stripe_provider.customers.find(lowered) is None

    async def test_duplicates_resolve_to_the_oldest(self, stripe_provider: StripeProvider) -> None:
        customer = stored_customer()
        first = await stripe_provider.customers.create(customer, idempotency_key=key())
        await asyncio.sleep(1.05)  # Stripe's ``created`` has one-second resolution
        await stripe_provider.customers.create(customer, idempotency_key=key())

        assert await stripe_provider.customers.find(customer) == first

    async def test_pages_through_many_matches(
        self, make_stripe_provider: ProviderFactory, fault_proxy: FaultProxy
    ) -> None:
        email = unique_email("crowd")
        direct = make_stripe_provider()
        for _ in range(4):
            await direct.customers.create(stored_customer(email=email), idempotency_key=key())
        wanted = stored_customer(email=email)
        created = await direct.customers.create(wanted, idempotency_key=key())
        paged = make_stripe_provider(api_base=fault_proxy.url, page_size=2)

        assert await paged.customers.find(wanted) == created
        assert len(fault_proxy.matching("GET", "/v1/customers")) == 3


def sign(payload: bytes, timestamp: int) -> str:
    """A Stripe-Signature header, computed independently of the SDK being tested."""
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class TestWebhooks:
    def test_the_customer_of_a_non_customer_object(self, stripe_provider: StripeProvider) -> None:
        payload = json.dumps(
            {
                "id": "evt_2",
                "type": "invoice.paid",
                "data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_x"}},
            }
        ).encode()
        headers = {"Stripe-Signature": sign(payload, int(time.time()))}

        event = stripe_provider.parse_webhook(payload, headers)

        assert event.provider_customer_id == "cus_x"

    def test_the_default_tolerance_is_five_minutes(self, stripe_provider: StripeProvider) -> None:
        payload = json.dumps({"id": "evt_3", "type": "customer.updated", "data": {}}).encode()
        now = int(time.time())

        recent = stripe_provider.parse_webhook(
            payload, {"Stripe-Signature": sign(payload, now - 250)}
        )
        assert recent.id == "evt_3"
        for skew in (301, -301):
            with pytest.raises(WebhookSignatureError):
                stripe_provider.parse_webhook(
                    payload, {"Stripe-Signature": sign(payload, now - skew)}
                )

    def test_a_shorter_tolerance_can_be_set(self, make_stripe_provider: ProviderFactory) -> None:
        strict = make_stripe_provider(webhook_tolerance=10)
        payload = json.dumps({"id": "evt_4", "type": "customer.updated", "data": {}}).encode()

        with pytest.raises(WebhookSignatureError):
            strict.parse_webhook(
                payload, {"Stripe-Signature": sign(payload, int(time.time()) - 250)}
            )


STOCK_PICKLE = Path("/tmp/localstripe.pickle")  # where stock localstripe dumps its store


def _modified(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


class TestLocalstripeBehaviour:
    """Pins what the provider code and tests assume about localstripe (and how it differs
    from Stripe), so a localstripe upgrade that changes any of it fails here first. (That it
    listens on loopback only is in the contract suite, for both test servers.)"""

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

    async def test_a_webhook_delivery_carries_the_customer_with_its_qzpay_id(
        self, stripe_provider: StripeProvider, localstripe_url: str
    ) -> None:
        """What the contract's real delivery relies on: an ``evt_`` event with the object."""
        created, delivery = await stripe_delivery(localstripe_url, WEBHOOK_SECRET, stripe_provider)

        event = json.loads(delivery.payload)
        assert event["id"].startswith("evt_")
        assert event["data"]["object"]["metadata"][QZPAY_CUSTOMER_ID_KEY] == (
            created.qzpay_customer_id
        )
