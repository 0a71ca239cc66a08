"""Inbound provider webhooks: verify, de-duplicate, re-fetch, apply.

A webhook is treated as a trigger, not as data: providers deliver events late, twice and out of
order, so the customer is re-fetched from the provider and its current state applied. The
delivery id is recorded in the same transaction as the change, so a redelivery is a no-op and a
delivery whose processing failed is processed again when the provider retries it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from qzpay.customers.service import CustomerService
from qzpay.customers.sync import ProviderSet
from qzpay.customers.validation import fail

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
        changes nothing; ``query`` carries the request's query-string parameters (some
        providers sign them)."""
        source = None
        if self._providers is not None:
            source = next((p for p in self._providers.providers if p.name == provider), None)
        if source is None:
            fail("provider", "unknown_provider", f"no provider named {provider!r} is configured")
        if not isinstance(payload, bytes | bytearray):
            fail("payload", "invalid_type", "must be the raw request body as bytes")
        event = source.parse_webhook(bytes(payload), headers, query=query)

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
        remote = await source.retrieve_customer(event.provider_customer_id)
        applied = await self._customers.apply_remote(
            local.id, remote, provider=source, webhook_event_id=event.id
        )
        return result("duplicate" if applied is None else "applied", local.id)
