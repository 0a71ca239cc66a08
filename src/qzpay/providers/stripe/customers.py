"""Stripe's customers behind the CustomerAdapter protocol.

Every mutating call carries the caller's ``Idempotency-Key``, so a deliberate retry of the
same operation is replayed by Stripe instead of applied twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

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
from qzpay.providers.stripe.resource import StripeResource
from qzpay.providers.stripe.transport import PROVIDER, StripeTransport


class StripeCustomers:
    """``provider.customers`` of a StripeProvider."""

    def __init__(self, transport: StripeTransport, *, page_size: int) -> None:
        customers = transport.client.v1.customers
        self._api = StripeResource(transport, customers, provider_customer, page_size=page_size)

    async def create(self, customer: Customer, *, idempotency_key: str) -> ProviderCustomer:
        params = create_params(customer)
        return await self._api.create("create_customer", params, idempotency_key)

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
        return await self._api.update(
            "update_customer", provider_customer_id, params, idempotency_key
        )

    async def delete(self, provider_customer_id: str, *, idempotency_key: str) -> None:
        await self._api.delete("delete_customer", provider_customer_id, idempotency_key)

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
        return await self._api.update(
            "adopt_customer", provider_customer_id, params, idempotency_key
        )

    async def release(
        self, provider_customer_id: str, customer: Customer, *, idempotency_key: str
    ) -> None:
        """Remove ``metadata.qzpay_customer_id`` if it is ``customer.id``; nothing else changes."""
        if not carries(await self._retrieve("release_customer", provider_customer_id), customer):
            return
        params: CustomerUpdateParams = {"metadata": {QZPAY_CUSTOMER_ID_KEY: ""}}
        await self._api.update("release_customer", provider_customer_id, params, idempotency_key)

    async def find(self, customer: Customer) -> ProviderCustomer | None:
        """Match ``qzpay_customer_id`` among customers listed by the exact email.

        Listing is strongly consistent, unlike the Search API (which lags by up to an hour), so
        a customer created a moment ago by an ambiguous call is found. Stripe's email filter is
        case-sensitive, hence the email exactly as it was sent. Should several match (only
        possible after a create that was repeated without its idempotency key) the oldest wins,
        so every caller settles on the same one.
        """
        return await self._api.find(
            "find_customer",
            {"email": customer.email},
            lambda found: found.qzpay_customer_id == customer.id and not found.deleted,
        )

    def merge_remote(self, local: Customer, remote: ProviderCustomer) -> Customer:
        """Stripe holds every field qzpay has, so its copy replaces them all."""
        return replace_all_fields(local, remote)

    async def list(self) -> AsyncIterator[ProviderCustomer]:
        async for data in self._api.listed("list_customers", {}):
            yield provider_customer(data)

    # -- internals -------------------------------------------------------------------------

    async def _retrieve(self, operation: str, provider_customer_id: str) -> ProviderCustomer | None:
        customer = await self._api.retrieve(operation, provider_customer_id)
        # Stripe answers a deleted customer with a stub marked deleted (localstripe with 404).
        return None if customer is None or customer.deleted else customer
