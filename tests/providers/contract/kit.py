"""What the provider contract suite needs from each provider's test setup, behind one interface.

A :class:`ProviderKit` holds a provider aimed at its test server (localstripe, the fake
MercadoPago), the same provider behind a loopback :class:`FaultProxy`, a way to read the
server's own copy of a customer without the provider (the Stripe SDK, the fake's state), and
a way to sign webhook deliveries as the provider does. The contract tests speak only to this
interface; everything that differs between providers on the wire is answered here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import stripe

from qzpay.catalog.models import Plan, Price
from qzpay.customers.models import Customer
from qzpay.providers.base import QZPAY_CUSTOMER_ID_KEY, ProviderCustomer
from qzpay.providers.mercadopago import MercadoPagoCustomers, MercadoPagoProvider
from qzpay.providers.mercadopago import idempotency_key as mercadopago_key
from qzpay.providers.stripe import StripeProvider
from tests.factories import ADDRESS, idempotency_key, stored_customer
from tests.providers.catalog_factories import stored_plan
from tests.support.fake_mercadopago import FakeMercadoPago, NotificationReceiver
from tests.support.fault_proxy import Fault, FaultProxy, RecordedRequest
from tests.support.localstripe import mute_webhook, register_webhook
from tests.support.webhook_receiver import WebhookReceiver

Provider = StripeProvider | MercadoPagoProvider

SDK_WARNING = "ignore:Use 'content=<...>' to upload raw bytes/text content:DeprecationWarning"
"""stripe 16's HTTPXClient passes the form body as ``data=<str>``, which httpx 0.28 deprecates
in favour of ``content=``: one warning per POST, from the SDK's code, not ours."""


@dataclass(frozen=True, slots=True)
class Signed:
    """A webhook delivery as the provider's own servers would send it."""

    payload: bytes
    headers: dict[str, str]
    query: dict[str, str]


@dataclass(frozen=True, slots=True)
class ExpectedEvent:
    id: str
    type: str
    provider_customer_id: str | None


class ProviderKit(ABC):
    """One provider and its test server, as the contract suite sees them."""

    name: ClassVar[str]
    unknown_id: ClassVar[str]
    """An id of the provider's shape that names no customer."""
    id_pattern: ClassVar[str]
    create_path: ClassVar[str] = "/v1/customers"
    update_method: ClassVar[str]
    list_path: ClassVar[str]
    """Where both ``find`` (by email) and ``list`` read pages."""
    delivered_type: ClassVar[str]
    """The event type of :meth:`real_delivery`."""
    key_header: ClassVar[str]
    signature_header: ClassVar[str]

    def __init__(self, make: Callable[..., Any], proxy: FaultProxy) -> None:
        self._make = make
        self.proxy = proxy
        self.provider: Provider = make()
        self.proxied: Provider = make(api_base=proxy.url)

    def make(self, *, proxied: bool = False, **options: Any) -> Provider:
        """Another provider (closed at teardown), through the proxy when ``proxied``."""
        if proxied:
            options["api_base"] = self.proxy.url
        provider: Provider = self._make(**options)
        return provider

    # -- the catalog (prices at both providers; plans only where the provider has them) -----

    price_currency: ClassVar[str]
    """A currency the test account charges prices in."""
    price_create_path: ClassVar[str]
    price_update_method: ClassVar[str]

    @abstractmethod
    def price_path(self, provider_price_id: str) -> str:
        """Where a price is read and updated."""

    @abstractmethod
    async def catalog_plan(self) -> Plan:
        """A stored plan ready for prices here (linked to its provider object if the provider
        has plans)."""

    @abstractmethod
    async def price_copies(self, price: Price) -> list[str]:
        """The ids of the server's prices carrying ``price.id``, read without the provider."""

    @abstractmethod
    def is_later_page(self, query: str) -> bool:
        """Whether a page request (its query string) asks for a page after the first."""

    async def create(self, customer: Customer | None = None) -> ProviderCustomer:
        """Create ``customer`` (a fresh one by default) straight at the server."""
        return await self.provider.customers.create(
            customer or stored_customer(), idempotency_key=idempotency_key()
        )

    def customer_path(self, provider_customer_id: str) -> str:
        return f"/v1/customers/{provider_customer_id}"

    # -- what the provider holds and sends -------------------------------------------------

    @abstractmethod
    def held(self, customer: Customer) -> Customer:
        """``customer`` reduced to the fields this provider keeps (metadata without our id)."""

    @abstractmethod
    def local_only_changes(self) -> dict[str, Any]:
        """Field changes this provider holds no copy of: an update with only these sends
        nothing."""

    @abstractmethod
    def sent_key(self, operation: str, subject: str, caller_key: str) -> str:
        """The idempotency header value sent for the caller's key."""

    # -- faults, as this provider's servers would answer -----------------------------------

    @abstractmethod
    def answer(self, status: int) -> Fault:
        """An error answer of this status, in the provider's error body shape."""

    # -- the server's own copy, read without the provider ----------------------------------

    @abstractmethod
    async def copies(self, email: str) -> list[str]:
        """The ids of the live customers the server holds with exactly this email."""

    @abstractmethod
    async def stored_qzpay_id(self, provider_customer_id: str) -> str | None:
        """The qzpay id the server's copy carries, read in the provider's own field."""

    @abstractmethod
    async def exists(self, provider_customer_id: str) -> bool:
        """Whether the server has this customer, live."""

    @property
    @abstractmethod
    def server_url(self) -> str:
        """The test server's base URL."""

    # -- webhooks --------------------------------------------------------------------------

    @abstractmethod
    def signed(
        self, payload: bytes | None = None, *, secret: str | None = None, age: int = 0
    ) -> Signed:
        """A delivery signed ``age`` seconds ago (negative: in the future); ``payload`` is a
        body to sign as it is, else :attr:`event`'s."""

    @property
    @abstractmethod
    def event(self) -> ExpectedEvent:
        """What :meth:`signed` (without a payload) parses to."""

    @abstractmethod
    def forged(self) -> dict[str, str]:
        """Headers of the right shape, dated now, with a made-up digest."""

    @abstractmethod
    def tampered(self, delivery: Signed) -> Signed:
        """``delivery`` with its body changed in a way the signature must catch."""

    not_events: ClassVar[list[bytes]]
    """Bodies that are JSON objects but not a notification of this provider."""

    @abstractmethod
    async def real_delivery(self, provider: Provider) -> tuple[ProviderCustomer, Signed]:
        """Create a customer through ``provider``, and receive the webhook the test server
        sends about it, as it arrived."""


class StripeKit(ProviderKit):
    name = "stripe"
    unknown_id = "cus_doesnotexist"
    id_pattern = r"cus_\w+"
    update_method = "POST"
    list_path = "/v1/customers"
    delivered_type = "customer.created"
    key_header = "idempotency-key"
    signature_header = "stripe-signature"
    not_events: ClassVar[list[bytes]] = [b'{"id": "evt_1"}', b'{"type": "customer.updated"}']

    def __init__(
        self,
        make: Callable[..., Any],
        proxy: FaultProxy,
        sdk: stripe.StripeClient,
        localstripe_url: str,
        webhook_secret: str,
    ) -> None:
        super().__init__(make, proxy)
        self._sdk = sdk
        self._url = localstripe_url
        self._secret = webhook_secret

    price_currency = "USD"
    price_create_path = "/v1/prices"
    price_update_method = "POST"

    def price_path(self, provider_price_id: str) -> str:
        return f"/v1/prices/{provider_price_id}"

    async def catalog_plan(self) -> Plan:
        plan = stored_plan()
        assert isinstance(self.provider, StripeProvider)
        made = await self.provider.plans.create(plan, idempotency_key=idempotency_key())
        return plan.model_copy(update={"provider_plan_ids": {self.name: made.id}})

    async def price_copies(self, price: Price) -> list[str]:
        # Prices are listed by product; the price's plan is not at hand, so scan them all.
        found: list[str] = []
        starting_after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if starting_after is not None:
                params["starting_after"] = starting_after
            page = await self._sdk.v1.prices.list_async(params)  # type: ignore[arg-type]
            found += [
                str(p.id)
                for p in page.data
                if (p.to_dict().get("metadata") or {}).get("qzpay_price_id") == price.id
            ]
            if not page.has_more or not page.data:
                return found
            starting_after = str(page.data[-1].id)

    def is_later_page(self, query: str) -> bool:
        return "starting_after" in dict(parse_qsl(query))

    def held(self, customer: Customer) -> Customer:
        return customer  # Stripe holds every field

    def local_only_changes(self) -> dict[str, Any]:
        return {"provider_customer_ids": {"stripe": "cus_elsewhere"}}

    def sent_key(self, operation: str, subject: str, caller_key: str) -> str:
        return caller_key

    def answer(self, status: int) -> Fault:
        return Fault.rate_limited() if status == 429 else Fault.respond(status)

    async def copies(self, email: str) -> list[str]:
        listed = await self._sdk.v1.customers.list_async({"email": email, "limit": 100})
        return [str(c.id) for c in listed.data]

    async def _raw(self, provider_customer_id: str) -> dict[str, Any] | None:
        try:
            found = await self._sdk.v1.customers.retrieve_async(provider_customer_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:  # localstripe's answer for a deleted customer
                return None
            raise
        data = found.to_dict()
        return None if data.get("deleted") else data

    async def stored_qzpay_id(self, provider_customer_id: str) -> str | None:
        data = await self._raw(provider_customer_id)
        return None if data is None else (data.get("metadata") or {}).get(QZPAY_CUSTOMER_ID_KEY)

    async def exists(self, provider_customer_id: str) -> bool:
        return await self._raw(provider_customer_id) is not None

    @property
    def server_url(self) -> str:
        return self._url

    _EVENT = json.dumps(
        {
            "id": "evt_test",
            "object": "event",
            "type": "customer.updated",
            "data": {"object": {"id": "cus_abc", "object": "customer"}},
        }
    ).encode()

    @property
    def event(self) -> ExpectedEvent:
        return ExpectedEvent("evt_test", "customer.updated", "cus_abc")

    def _sign(self, payload: bytes, secret: str, timestamp: int) -> str:
        mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
        return f"t={timestamp},v1={mac.hexdigest()}"

    def signed(
        self, payload: bytes | None = None, *, secret: str | None = None, age: int = 0
    ) -> Signed:
        payload = self._EVENT if payload is None else payload
        header = self._sign(payload, secret or self._secret, int(time.time()) - age)
        # Stripe signs only the body: a query string is ignored, whatever it holds.
        return Signed(payload, {self.signature_header: header}, {"ignored": "yes"})

    def forged(self) -> dict[str, str]:
        return {self.signature_header: f"t={int(time.time())},v1={'0' * 64}"}

    def tampered(self, delivery: Signed) -> Signed:
        return Signed(delivery.payload + b" ", delivery.headers, delivery.query)

    async def real_delivery(self, provider: Provider) -> tuple[ProviderCustomer, Signed]:
        return await stripe_delivery(self._url, self._secret, provider)


async def stripe_delivery(
    localstripe_url: str, secret: str, provider: Provider
) -> tuple[ProviderCustomer, Signed]:
    """Create a customer through ``provider`` and receive localstripe's ``customer.created``
    webhook about it (signed with ``secret``), as it arrived."""
    name = f"qzpay-test-{os.urandom(4).hex()}"
    async with WebhookReceiver() as receiver:
        await register_webhook(
            localstripe_url, name, url=receiver.url, secret=secret, events=["customer.created"]
        )
        try:
            created = await provider.customers.create(
                stored_customer(), idempotency_key=idempotency_key()
            )
            async with asyncio.timeout(10):
                delivery = await receiver.wait_for(lambda d: created.id.encode() in d.body)
        finally:
            await mute_webhook(localstripe_url, name)
    return created, Signed(delivery.body, delivery.headers, {})


def _mercadopago_error(status: int, message: str, error: str) -> Fault:
    body = {"message": message, "error": error, "status": status, "cause": []}
    return Fault.respond(status, json.dumps(body).encode())


_MERCADOPAGO_ERRORS = {
    400: ("invalid parameters", "bad_request"),
    423: ("idempotency key locked", "locked"),
    429: ("too many requests", "too_many_requests"),
    500: ("internal_error", "internal_error"),
    503: ("service unavailable", "service_unavailable"),
}


def mercadopago_fault(status: int) -> Fault:
    """An injected answer with MercadoPago's error body."""
    message, error = _MERCADOPAGO_ERRORS.get(status, ("error", "error"))
    return _mercadopago_error(status, message, error)


def mercadopago_signature(
    secret: str, *, data_id: str | None, request_id: str | None, ts: int
) -> str:
    """An x-signature header, computed here independently of the code under test."""
    manifest = ""
    if data_id is not None:
        manifest += f"id:{data_id};"
    if request_id is not None:
        manifest += f"request-id:{request_id};"
    manifest += f"ts:{ts};"
    digest = hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()
    return f"ts={ts},v1={digest}"


MERCADOPAGO_PAYMENT = json.dumps(
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
MERCADOPAGO_PAYMENT_QUERY = {"data.id": "999999999", "type": "payment"}
MERCADOPAGO_REQUEST_ID = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"


class MercadoPagoKit(ProviderKit):
    name = "mercadopago"
    unknown_id = "1234567890-doesnotexist"
    id_pattern = r"\d+-\w+"
    update_method = "PUT"
    list_path = "/v1/customers/search"
    delivered_type = "card.updated"
    key_header = "x-idempotency-key"
    signature_header = "x-signature"
    not_events: ClassVar[list[bytes]] = [b'{"id": 1}', b'{"id": true, "type": "payment"}']

    def __init__(
        self,
        make: Callable[..., Any],
        proxy: FaultProxy,
        fake: FakeMercadoPago,
        webhook_secret: str,
    ) -> None:
        super().__init__(make, proxy)
        self._fake = fake
        self._secret = webhook_secret

    price_currency = "BRL"
    price_create_path = "/preapproval_plan"
    price_update_method = "PUT"

    def price_path(self, provider_price_id: str) -> str:
        return f"/preapproval_plan/{provider_price_id}"

    async def catalog_plan(self) -> Plan:
        return stored_plan()  # a plan has no MercadoPago object

    async def price_copies(self, price: Price) -> list[str]:
        return [p["id"] for p in self._fake.preapproval_plans(external_reference=price.id)]

    def is_later_page(self, query: str) -> bool:
        return dict(parse_qsl(query)).get("offset", "0") != "0"

    def held(self, customer: Customer) -> Customer:
        return MercadoPagoCustomers.held_view(customer)

    def local_only_changes(self) -> dict[str, Any]:
        return {
            "metadata": {"plan": "enterprise"},
            "address": ADDRESS.model_copy(update={"city": "Campinas", "line2": None}),
            "provider_customer_ids": {"mercadopago": "1234567890-elsewhere"},
        }

    def sent_key(self, operation: str, subject: str, caller_key: str) -> str:
        return mercadopago_key(operation, subject, caller_key)

    def answer(self, status: int) -> Fault:
        return mercadopago_fault(status)

    async def copies(self, email: str) -> list[str]:
        return [c["id"] for c in self._fake.customers(email) if c["email"] == email]

    async def stored_qzpay_id(self, provider_customer_id: str) -> str | None:
        stored = self._fake.get(provider_customer_id)
        description = (stored or {}).get("description") or ""
        prefix = f"{QZPAY_CUSTOMER_ID_KEY}:"
        return description.removeprefix(prefix) if description.startswith(prefix) else None

    async def exists(self, provider_customer_id: str) -> bool:
        return self._fake.get(provider_customer_id) is not None

    @property
    def server_url(self) -> str:
        return self._fake.url

    @property
    def event(self) -> ExpectedEvent:
        return ExpectedEvent("12345", "payment.created", None)

    def signed(
        self, payload: bytes | None = None, *, secret: str | None = None, age: int = 0
    ) -> Signed:
        ts = int(time.time()) - age
        secret = secret or self._secret
        if payload is not None:  # a body of its own: nothing but the timestamp to sign
            header = mercadopago_signature(secret, data_id=None, request_id=None, ts=ts)
            return Signed(payload, {self.signature_header: header}, {})
        header = mercadopago_signature(
            secret, data_id="999999999", request_id=MERCADOPAGO_REQUEST_ID, ts=ts
        )
        headers = {self.signature_header: header, "x-request-id": MERCADOPAGO_REQUEST_ID}
        return Signed(MERCADOPAGO_PAYMENT, headers, dict(MERCADOPAGO_PAYMENT_QUERY))

    def forged(self) -> dict[str, str]:
        return {
            self.signature_header: f"ts={int(time.time())},v1={'0' * 64}",
            "x-request-id": MERCADOPAGO_REQUEST_ID,
        }

    def tampered(self, delivery: Signed) -> Signed:
        # The body is not signed, but its data.id must be the signed one.
        other = delivery.payload.replace(b'"999999999"', b'"111111111"')
        return Signed(other, delivery.headers, delivery.query)

    async def real_delivery(self, provider: Provider) -> tuple[ProviderCustomer, Signed]:
        created = await provider.customers.create(
            stored_customer(), idempotency_key=idempotency_key()
        )
        notification = self._fake.notification(
            action="card.updated",
            type="automatic-payments",
            data={"customer_id": created.id, "new_card_id": 50000102202, "old_card_id": 1},
        )
        async with NotificationReceiver() as receiver:
            status = await self._fake.deliver(receiver.url, notification)
            async with asyncio.timeout(10):
                delivery = await receiver.next()
        assert status == 200
        return created, Signed(delivery.body, delivery.headers, delivery.query)


async def update_on_the_wire(
    direct: Provider, proxied: Provider, proxy: FaultProxy, before: Customer, after: Customer
) -> tuple[RecordedRequest, ProviderCustomer]:
    """Create ``before`` through ``direct``, then update it to ``after`` through ``proxied``:
    the one write request the proxy saw, and the updated customer."""
    created = await direct.customers.create(before, idempotency_key=idempotency_key())
    updated = await proxied.customers.update(
        created.id, before, after, idempotency_key=idempotency_key()
    )
    [sent] = [r for r in proxy.requests if r.method != "GET"]
    return sent, updated
