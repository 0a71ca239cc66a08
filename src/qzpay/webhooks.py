"""Inbound provider webhooks: verify, de-duplicate, re-fetch, apply.

A webhook is treated as a trigger, not as data: providers deliver events late, twice and out of
order, so the customer is re-fetched from the provider and its current state applied. The
delivery id is recorded in the same transaction as the change, so a redelivery is a no-op and a
delivery whose processing failed is processed again when the provider retries it.

A delivery that can never succeed (bad signature, unreadable body, an id qzpay cannot store) is
rejected with a WebhookSignatureError (WebhookPayloadError for the body) before anything
touches storage, and logged once at WARNING on the ``qzpay.webhooks`` logger with ``provider``,
``code`` and ``reason`` attributes on the record. That log line is its only record: the
delivery table holds the ids of deliveries that were processed, and a rejected one may have no
usable id at all (nor may it take the id from a later, valid delivery).

Catalog deliveries (Stripe's ``product.updated/deleted`` and ``price.updated/deleted``, e.g.
made in the dashboard) name their object in ``data.object`` (``object`` ``product`` or
``price``, and its ``id``); the plan or price linked to it is re-fetched and applied to the
fields the provider can change (qzpay.catalog.plans, qzpay.catalog.prices ``apply_remote``).
MercadoPago sends no notification about a ``preapproval_plan`` (its documented topics are
payments, subscriptions' ``subscription_preapproval``, cards; the test fake sends none either),
so a MercadoPago price changes only through qzpay and ``billing.catalog.reconcile``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from qzpay.blocking import HasId
from qzpay.catalog.plans import PlanService
from qzpay.catalog.prices import PriceService
from qzpay.customers.service import CustomerService
from qzpay.customers.sync import ProviderSet
from qzpay.customers.validation import fail
from qzpay.errors import WebhookPayloadError, WebhookSignatureError
from qzpay.limits import MAX_ID_LENGTH
from qzpay.providers.base import PaymentProvider, ProviderEvent, plans_of, prices_of
from qzpay.subscriptions.service import SubscriptionService

logger = logging.getLogger("qzpay.webhooks")
Copy = TypeVar("Copy")
Copy_co = TypeVar("Copy_co", covariant=True)
Copy_contra = TypeVar("Copy_contra", contravariant=True)

# Deliveries that mean "this customer may have changed: re-fetch it". MercadoPago documents no
# customer notification; its Card Updater's card.updated names the customer.
CUSTOMER_EVENTS = ("customer.updated", "customer.deleted", "customer.created", "card.updated")
# Deliveries that mean "this plan (a Stripe Product) or price may have changed", by the type of
# the object they carry in ``data.object``.
CATALOG_EVENTS = {
    "product.updated": "product",
    "product.deleted": "product",
    "price.updated": "price",
    "price.deleted": "price",
}


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What a delivery did: ``applied`` (a customer, plan or price changed or was
    confirmed), ``ignored`` (not about one qzpay knows) or ``duplicate`` (delivered before).
    ``customer_id`` names the customer applied; ``record_id`` the plan or price."""

    provider: str
    event_id: str
    event_type: str
    status: Literal["applied", "ignored", "duplicate"]
    customer_id: str | None = None
    record_id: str | None = None


class WebhookService:
    def __init__(
        self,
        customers: CustomerService,
        providers: ProviderSet | None,
        plans: PlanService | None = None,
        prices: PriceService | None = None,
        subscriptions: SubscriptionService | None = None,
    ) -> None:
        self._customers = customers
        self._providers = providers
        self._plans = plans
        self._prices = prices
        self._subscriptions = subscriptions

    async def handle(
        self,
        provider: str,
        payload: bytes,
        headers: Mapping[str, str],
        *,
        query: Mapping[str, str] | None = None,
    ) -> WebhookResult:
        """Verify and apply one delivery. A bad signature raises WebhookSignatureError and
        changes nothing; so does a body that cannot be read or stored, as its subclass
        WebhookPayloadError (both are permanent: the same delivery always fails). ``query``
        carries the request's query-string parameters (some providers sign them)."""
        source = None
        if self._providers is not None:
            source = next((p for p in self._providers.providers if p.name == provider), None)
        if source is None:
            fail("provider", "unknown_provider", f"no provider named {provider!r} is configured")
        if not isinstance(payload, bytes | bytearray):
            fail("payload", "invalid_type", "must be the raw request body as bytes")
        try:
            event = source.parse_webhook(bytes(payload), headers, query=query)
            _check_storable(event)
            catalog = _catalog_object(event)
            subscription = self._subscription_of(source, event)
        except WebhookSignatureError as exc:
            # Usually a wrong or rotated signing secret on our side: worth an operator's eye.
            logger.warning(
                "rejected a %s webhook (%s): %s",
                provider,
                exc.code,
                exc.message,
                extra={"provider": provider, "code": exc.code, "reason": exc.message},
            )
            raise

        def result(
            status: Literal["applied", "ignored", "duplicate"], customer_id: str | None = None
        ) -> WebhookResult:
            return WebhookResult(provider, event.id, event.type, status, customer_id)

        if catalog is not None:
            kind, object_id = catalog
            record_id = await self._apply_catalog(source, event, kind, object_id)
            if record_id is None:
                recorded = await self._customers.record_webhook(provider, event.id)
                return result("ignored" if recorded else "duplicate")
            status: Literal["applied", "duplicate"] = "duplicate" if record_id == "" else "applied"
            return WebhookResult(
                provider, event.id, event.type, status, record_id=record_id or None
            )

        if subscription is not None and self._subscriptions is not None:
            status_, record = await self._subscriptions.apply_webhook(
                provider, subscription, event.id
            )
            return WebhookResult(provider, event.id, event.type, status_, record_id=record)

        local = None
        if event.type in CUSTOMER_EVENTS and event.provider_customer_id is not None:
            local = await self._customers.get_by_external_id(
                event.provider_customer_id, provider=provider
            )
        if local is None:
            recorded = await self._customers.record_webhook(provider, event.id)
            return result("ignored" if recorded else "duplicate")
        assert event.provider_customer_id is not None
        remote = await source.customers.retrieve(event.provider_customer_id)
        applied = await self._customers.apply_remote(
            local.id, remote, provider=source, webhook_event_id=event.id
        )
        return result("duplicate" if applied is None else "applied", local.id)

    def _subscription_of(self, source: PaymentProvider, event: ProviderEvent) -> str | None:
        """The provider subscription a delivery is about (a WebhookPayloadError if its id
        cannot be stored), or None."""
        if self._subscriptions is None:
            return None
        adapter = self._subscriptions.adapter_of(source.name)
        found = None if adapter is None else adapter.subscription_of(event)
        if found is None:
            return None
        problem = _text_problem(found)
        if problem is not None:
            raise WebhookPayloadError(f"the event's subscription id {problem}")
        return found

    async def _apply_catalog(
        self, source: PaymentProvider, event: ProviderEvent, kind: str, object_id: str
    ) -> str | None:
        """Apply a catalog delivery: the local record's id, ``""`` for a duplicate, or None
        when no plan or price qzpay knows is linked to the object."""
        if kind == "product":
            if self._plans is None:
                return None
            return await _apply_linked(self._plans, plans_of(source), source, event.id, object_id)
        if self._prices is None:
            return None
        return await _apply_linked(self._prices, prices_of(source), source, event.id, object_id)


class _Retrieves(Protocol[Copy_co]):
    async def retrieve(self, provider_id: str, /) -> Copy_co | None: ...


class _AppliesCopies(Protocol[Copy_contra]):
    """A catalog service, as a delivery about one of its records at a provider uses it."""

    async def get_by_external_id(
        self, provider_id: str, /, *, provider: str | None = None
    ) -> HasId | None: ...

    async def apply_remote(
        self,
        record_id: str,
        remote: Copy_contra | None,
        /,
        *,
        provider: PaymentProvider,
        webhook_event_id: str | None = None,
    ) -> object | None: ...


async def _apply_linked(
    service: _AppliesCopies[Copy],
    adapter: _Retrieves[Copy] | None,
    source: PaymentProvider,
    event_id: str,
    object_id: str,
) -> str | None:
    """The record linked to the provider object ``object_id``, re-fetched there and applied
    (plans and prices alike): its id, ``""`` for a duplicate, None if none is linked."""
    if adapter is None:
        return None
    record = await service.get_by_external_id(object_id, provider=source.name)
    if record is None:
        return None
    remote = await adapter.retrieve(object_id)
    applied = await service.apply_remote(
        record.id, remote, provider=source, webhook_event_id=event_id
    )
    return "" if applied is None else record.id


def _catalog_object(event: ProviderEvent) -> tuple[str, str] | None:
    """For a catalog delivery, the type and id of the object in ``data.object`` (an id that
    storage cannot hold is a WebhookPayloadError); None for any other delivery."""
    kind = CATALOG_EVENTS.get(event.type)
    if kind is None:
        return None
    data = event.raw.get("data")
    found = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(found, Mapping) or found.get("object") != kind:
        return None
    object_id = found.get("id")
    problem = _text_problem(object_id)
    if problem is not None:
        raise WebhookPayloadError(f"the event's {kind} id {problem}")
    assert isinstance(object_id, str)
    return kind, object_id


def _check_storable(event: ProviderEvent) -> None:
    """The event's id, type and customer id as text storage can hold and look up, else a
    WebhookPayloadError: PostgreSQL refuses NUL and lone surrogates, and every id column
    holds at most MAX_ID_LENGTH characters. Storing such a delivery could never succeed, so it
    must fail here, permanently, rather than as a retryable storage error."""
    fields = (
        ("id", event.id),
        ("type", event.type),
        ("customer id", event.provider_customer_id),
    )
    for name, value in fields:
        if value is None and name == "customer id":
            continue
        problem = _text_problem(value)
        if problem is not None:
            raise WebhookPayloadError(f"the event's {name} {problem}")


def _text_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "is not text"
    if not value:
        return "is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} characters"
    if "\x00" in value:
        return "contains the NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None
