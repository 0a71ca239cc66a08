"""Stripe's customers behind the CustomerAdapter protocol.

Every mutating call carries the caller's ``Idempotency-Key``, so a deliberate retry of the
same operation is replayed by Stripe instead of applied twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from stripe.params import CustomerUpdateParams

from qzpay.customers.models import Customer
from qzpay.providers.base import (
    QZPAY_CUSTOMER_ID_KEY,
    ProviderCustomer,
    replace_all_fields,
)
from qzpay.providers.common import adoptable, carries, existing
from qzpay.providers.stripe.mapping import (
    adopt_params,
    create_params,
    provider_customer,
    update_params,
)
from qzpay.providers.stripe.paging import listed
from qzpay.providers.stripe.transport import PROVIDER, StripeTransport


class StripeCustomers:
    """``provider.customers`` of a StripeProvider."""

    def __init__(self, transport: StripeTransport, *, page_size: int) -> None:
        self._transport = transport
        self._customers = transport.client.v1.customers
        self._page_size = page_size

    async def create(self, customer: Customer, *, idempotency_key: str) -> ProviderCustomer:
        created = await self._transport.call(
            "create_customer",
            self._customers.create_async(
                create_params(customer), {"idempotency_key": idempotency_key}
            ),
        )
        return provider_customer(created.to_dict())

    async def update(
        self,
        provider_customer_id: str,
        before: Customer,
        after: Customer,
        *,
        idempotency_key: str,
    ) -> ProviderCustomer:
        """Send only what changed, so concurrent edits made at Stripe to other fields survive.

        Stripe clears a field given as ``""``: that is how a name, phone, address or metadata
        key removed locally is removed at Stripe. With nothing to send this only reads.
        """
        params = update_params(before, after)
        if not params:
            current = await self._retrieve("update_customer", provider_customer_id)
            return existing(PROVIDER, "update_customer", provider_customer_id, current)
        return await self._update("update_customer", provider_customer_id, params, idempotency_key)

    async def delete(self, provider_customer_id: str, *, idempotency_key: str) -> None:
        # A 404 means already gone: the goal of the call is met.
        await self._transport.call_or_none(
            "delete_customer",
            self._customers.delete_async(
                provider_customer_id, options={"idempotency_key": idempotency_key}
            ),
        )

    async def retrieve(self, provider_customer_id: str) -> ProviderCustomer | None:
        return await self._retrieve("retrieve_customer", provider_customer_id)

    async def adopt(
        self, provider_customer_id: str, customer: Customer, *, idempotency_key: str
    ) -> ProviderCustomer:
        """Take over a customer created outside qzpay: set ``metadata.qzpay_customer_id`` and
        every field from ``customer`` (cleared ones as ``""``, metadata keys it lacks removed).

        Stripe allows any number of customers per email, so the sync machinery never needs
        this for Stripe; it is here so that every provider can be adopted alike.
        """
        current = adoptable(
            PROVIDER,
            provider_customer_id,
            await self._retrieve("adopt_customer", provider_customer_id),
            customer,
        )
        params = adopt_params(current, customer)
        return await self._update("adopt_customer", provider_customer_id, params, idempotency_key)

    async def release(
        self, provider_customer_id: str, customer: Customer, *, idempotency_key: str
    ) -> None:
        """Remove ``metadata.qzpay_customer_id`` if it is ``customer.id``; nothing else changes."""
        if not carries(await self._retrieve("release_customer", provider_customer_id), customer):
            return
        params: CustomerUpdateParams = {"metadata": {QZPAY_CUSTOMER_ID_KEY: ""}}
        await self._update("release_customer", provider_customer_id, params, idempotency_key)

    async def find(self, customer: Customer) -> ProviderCustomer | None:
        """Match ``qzpay_customer_id`` among customers listed by the exact email.

        Listing is strongly consistent, unlike the Search API (which lags by up to an hour), so
        a customer created a moment ago by an ambiguous call is found. Stripe's email filter is
        case-sensitive, hence the email exactly as it was sent. Should several match (only
        possible after a create that was repeated without its idempotency key) the oldest wins,
        so every caller settles on the same one.
        """
        matches: list[tuple[int, str, ProviderCustomer]] = []
        async for data in self._list("find_customer", email=customer.email):
            found = provider_customer(data)
            if found.qzpay_customer_id == customer.id and not found.deleted:
                created = data.get("created")
                matches.append((created if isinstance(created, int) else 0, found.id, found))
        if not matches:
            return None
        return min(matches, key=lambda match: (match[0], match[1]))[2]

    def merge_remote(self, local: Customer, remote: ProviderCustomer) -> Customer:
        """Stripe holds every field qzpay has, so its copy replaces them all."""
        return replace_all_fields(local, remote)

    async def list(self) -> AsyncIterator[ProviderCustomer]:
        async for data in self._list("list_customers"):
            yield provider_customer(data)

    # -- internals -------------------------------------------------------------------------

    async def _retrieve(self, operation: str, provider_customer_id: str) -> ProviderCustomer | None:
        found = await self._transport.call_or_none(
            operation, self._customers.retrieve_async(provider_customer_id)
        )
        if found is None:
            return None
        customer = provider_customer(found.to_dict())
        # Stripe answers a deleted customer with a stub marked deleted (localstripe with 404).
        return None if customer.deleted else customer

    async def _update(
        self,
        operation: str,
        provider_customer_id: str,
        params: CustomerUpdateParams,
        idempotency_key: str,
    ) -> ProviderCustomer:
        updated = await self._transport.call(
            operation,
            self._customers.update_async(
                provider_customer_id, params, {"idempotency_key": idempotency_key}
            ),
        )
        return provider_customer(updated.to_dict())

    def _list(self, operation: str, *, email: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every customer matching the filter, one page request at a time."""
        return listed(
            self._transport,
            operation,
            lambda params: self._customers.list_async(params),  # type: ignore[arg-type]
            {} if email is None else {"email": email},
            page_size=self._page_size,
        )
