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
from qzpay.providers.customer_base import CustomerAdapterBase
from qzpay.providers.stripe.mapping import (
    adopt_params,
    create_params,
    provider_customer,
    update_params,
)
from qzpay.providers.stripe.resource import StripeResource
from qzpay.providers.stripe.transport import PROVIDER, StripeTransport


class StripeCustomers(CustomerAdapterBase[CustomerUpdateParams]):
    """``provider.customers`` of a StripeProvider.

    An update sends only what changed, so concurrent edits made at Stripe to other fields
    survive: Stripe clears a field given as ``""``, which is how a name, phone, address or
    metadata key removed locally is removed at Stripe. Adopting writes
    ``metadata.qzpay_customer_id`` and every field from the customer (cleared ones as ``""``,
    metadata keys it lacks removed); Stripe allows any number of customers per email, so the
    sync machinery never needs this for Stripe, but every provider can be adopted alike.
    Releasing removes ``metadata.qzpay_customer_id``; nothing else changes.
    """

    _provider = PROVIDER

    def __init__(self, transport: StripeTransport, *, page_size: int) -> None:
        customers = transport.client.v1.customers
        self._api = StripeResource(transport, customers, provider_customer, page_size=page_size)

    async def create(self, customer: Customer, *, idempotency_key: str) -> ProviderCustomer:
        params = create_params(customer)
        return await self._api.create("create_customer", params, idempotency_key)

    async def delete(self, provider_customer_id: str, *, idempotency_key: str) -> None:
        await self._api.delete("delete_customer", provider_customer_id, idempotency_key)

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

    # -- the shared flow's parts (see CustomerAdapterBase) ----------------------------------

    def _update_body(self, before: Customer, after: Customer) -> CustomerUpdateParams:
        return update_params(before, after)

    def _adopt_body(self, current: ProviderCustomer, customer: Customer) -> CustomerUpdateParams:
        return adopt_params(current, customer)

    async def _retrieve(self, operation: str, provider_customer_id: str) -> ProviderCustomer | None:
        customer = await self._api.retrieve(operation, provider_customer_id)
        # Stripe answers a deleted customer with a stub marked deleted (localstripe with 404).
        return None if customer is None or customer.deleted else customer

    async def _write(
        self, operation: str, provider_customer_id: str, body: CustomerUpdateParams, key: str
    ) -> ProviderCustomer:
        return await self._api.update(operation, provider_customer_id, body, key)

    async def _unmark(self, operation: str, provider_customer_id: str, key: str) -> None:
        params: CustomerUpdateParams = {"metadata": {QZPAY_CUSTOMER_ID_KEY: ""}}
        await self._api.update(operation, provider_customer_id, params, key)
