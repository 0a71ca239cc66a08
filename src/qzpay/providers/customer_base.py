"""What every provider's customer adapter does alike: update only what changed, adopt a
customer made outside qzpay, release it again, retrieve one. The steps and their failures are
the same at every provider; a subclass supplies only its own parts:

* ``_update_body`` and ``_adopt_body``: what it sends (its field table);
* ``_retrieve``: one customer read (None when it is gone);
* ``_write``: one update that answers the customer (a missing one is an error), and
  ``_unmark``: the update that removes the qzpay id (its own rule for a missing one);
* ``_request_key``: the idempotency key a request sends. Stripe sends the caller's;
  MercadoPago derives one per request from it (``verb`` and the object it acts on).

Create, delete, find, list and ``merge_remote`` differ too much to share and stay in each
adapter. Nothing here knows an SDK.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from qzpay.customers.models import Customer
from qzpay.errors import ProviderSyncError
from qzpay.providers.base import ProviderCustomer, ProviderEmailTaken
from qzpay.providers.common import missing

Body = TypeVar("Body")
"""What the provider's update request takes (Stripe: ``CustomerUpdateParams``, a dict)."""


class CustomerAdapterBase(Generic[Body]):
    """The shared flow of ``provider.customers`` (see the module docstring)."""

    _provider: ClassVar[str]
    """The provider's name, as errors report it."""
    _taken: ClassVar[type[ProviderEmailTaken]] = ProviderEmailTaken
    """What :meth:`adopt` raises for a customer that carries another qzpay customer's id."""

    async def update(
        self,
        provider_customer_id: str,
        before: Customer,
        after: Customer,
        *,
        idempotency_key: str,
    ) -> ProviderCustomer:
        """Send only what changed (``_update_body``), so edits made at the provider to other
        fields survive; with nothing to send this only reads (a missing customer is an error)."""
        operation = "update_customer"
        body = self._update_body(before, after)
        if not body:
            current = await self._retrieve(operation, provider_customer_id)
            return self._existing(operation, provider_customer_id, current)
        key = self._request_key("update", after.id, idempotency_key)
        return await self._write(operation, provider_customer_id, body, key)

    async def retrieve(self, provider_customer_id: str) -> ProviderCustomer | None:
        return await self._retrieve("retrieve_customer", provider_customer_id)

    async def adopt(
        self, provider_customer_id: str, customer: Customer, *, idempotency_key: str
    ) -> ProviderCustomer:
        """Take over a customer created outside qzpay: mark it with ``customer.id`` and write
        every field the provider holds (``_adopt_body``). A customer that is gone is an error;
        one that carries another qzpay customer's id is refused with ``_taken``."""
        operation = "adopt_customer"
        current = self._existing(
            operation,
            provider_customer_id,
            await self._retrieve(operation, provider_customer_id),
        )
        if current.qzpay_customer_id not in (None, customer.id):
            raise self._taken(
                f"{self._provider} customer {provider_customer_id} belongs to qzpay customer "
                f"{current.qzpay_customer_id}; it cannot be adopted for {customer.id}",
                provider=self._provider,
                existing=current,
                operation=operation,
            )
        body = self._adopt_body(current, customer)
        key = self._request_key("adopt", customer.id, idempotency_key)
        return await self._write(operation, provider_customer_id, body, key)

    async def release(
        self, provider_customer_id: str, customer: Customer, *, idempotency_key: str
    ) -> None:
        """Remove the qzpay id if it is ``customer.id`` (``_unmark``); the fields adoption
        wrote stay. A customer that is gone or carries another id is left alone."""
        operation = "release_customer"
        current = await self._retrieve(operation, provider_customer_id)
        if current is None or current.qzpay_customer_id != customer.id:
            return
        key = self._request_key("release", customer.id, idempotency_key)
        await self._unmark(operation, provider_customer_id, key)

    # -- what a provider supplies ------------------------------------------------------------

    def _request_key(self, verb: str, subject: str, idempotency_key: str) -> str:
        """The key a request sends: the caller's, unless the provider derives its own."""
        return idempotency_key

    def _update_body(self, before: Customer, after: Customer) -> Body:
        """What an update sends (empty: nothing changed among the fields it holds)."""
        raise NotImplementedError

    def _adopt_body(self, current: ProviderCustomer, customer: Customer) -> Body:
        """What an adoption sends over ``current``."""
        raise NotImplementedError

    async def _retrieve(self, operation: str, provider_customer_id: str) -> ProviderCustomer | None:
        """The customer, or None when it does not exist or was deleted."""
        raise NotImplementedError

    async def _write(
        self, operation: str, provider_customer_id: str, body: Body, key: str
    ) -> ProviderCustomer:
        """Send ``body``; the customer as it is after the update."""
        raise NotImplementedError

    async def _unmark(self, operation: str, provider_customer_id: str, key: str) -> None:
        """Remove the qzpay id from the customer."""
        raise NotImplementedError

    # -- internals -------------------------------------------------------------------------

    def _existing(
        self, operation: str, provider_customer_id: str, current: ProviderCustomer | None
    ) -> ProviderCustomer:
        """``current``, read for a call that needs the customer: an error when it is gone
        (surely not applied)."""
        if current is None:
            raise self._missing(operation, provider_customer_id)
        return current

    def _missing(self, operation: str, provider_customer_id: str) -> ProviderSyncError:
        return missing(self._provider, operation, "customer", provider_customer_id)
