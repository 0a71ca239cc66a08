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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from qzpay.customers.service import CustomerService
from qzpay.customers.sync import ProviderSet
from qzpay.customers.validation import fail
from qzpay.errors import WebhookPayloadError, WebhookSignatureError
from qzpay.limits import MAX_ID_LENGTH
from qzpay.providers.base import ProviderEvent

logger = logging.getLogger("qzpay.webhooks")

# Deliveries that mean "this customer may have changed: re-fetch it". MercadoPago documents no
# customer notification; its Card Updater's card.updated names the customer.
CUSTOMER_EVENTS = ("customer.updated", "customer.deleted", "customer.created", "card.updated")


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What a delivery did: ``applied`` (a customer changed or was confirmed), ``ignored``
    (not about a customer qzpay knows) or ``duplicate`` (delivered before)."""

    provider: str
    event_id: str
    event_type: str
    status: Literal["applied", "ignored", "duplicate"]
    customer_id: str | None = None


class WebhookService:
    def __init__(self, customers: CustomerService, providers: ProviderSet | None) -> None:
        self._customers = customers
        self._providers = providers

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
