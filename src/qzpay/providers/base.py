"""The provider-neutral contract every payment provider implements.

The billing service talks only to :class:`PaymentProvider`; SDK objects and SDK errors never
cross this boundary, so Stripe and MercadoPago can be swapped without touching the service.

A provider is a small object (name, webhooks, close) holding one adapter per resource it
syncs: ``provider.customers`` is a :class:`CustomerAdapter`. A resource added later (prices,
subscriptions) is another adapter and another attribute; the existing adapters do not change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self

from qzpay.customers.models import Address, Customer
from qzpay.customers.validation import RESERVED_METADATA_KEY
from qzpay.errors import ConflictError, ProviderSyncError

QZPAY_CUSTOMER_ID_KEY = RESERVED_METADATA_KEY
"""Metadata key that ties a provider customer to its qzpay customer (used by find and reconcile)."""


@dataclass(frozen=True, slots=True)
class ProviderCustomer:
    """The provider's view of a customer, converted away from any SDK type.

    ``metadata`` is what the provider stores, including ``qzpay_customer_id``; blank fields
    (``""`` or missing) are reported as ``None``.
    """

    id: str
    email: str | None
    name: str | None
    phone: str | None
    address: Address | None
    metadata: dict[str, str]
    qzpay_customer_id: str | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A webhook delivery whose signature was verified, parsed but not interpreted."""

    id: str
    type: str
    provider_customer_id: str | None
    raw: Mapping[str, Any]


class ProviderEmailTaken(ConflictError, ProviderSyncError):
    """A provider that allows one customer per email already has one with this email.

    ``existing`` is that customer (``None`` if the provider did not say which):
    ``existing.qzpay_customer_id`` names the qzpay customer it belongs to, or is ``None`` for a
    customer created outside qzpay, which the sync machinery adopts only when no other qzpay
    customer is linked to it. A ``ConflictError`` for callers, and a non-ambiguous
    ``ProviderSyncError`` for the sync machinery (nothing was created).
    """

    code = "provider_email_taken"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        existing: ProviderCustomer | None,
        operation: str = "create_customer",
    ) -> None:
        super().__init__(message, provider=provider, operation=operation, ambiguous=False)
        self.existing = existing


class CustomerAdapter(Protocol):
    """A provider's customers, as the sync machinery needs them.

    Every failing call raises :class:`qzpay.errors.ProviderSyncError` (``operation`` is
    ``create_customer``, ``update_customer`` and so on); its ``ambiguous`` flag says whether
    the provider may have applied the request anyway (so the caller must reconcile, not
    assume). Mutating calls take the caller's idempotency key so a retry of the same logical
    operation is recognised by the provider.
    """

    async def create(self, customer: Customer, *, idempotency_key: str) -> ProviderCustomer:
        """Create the customer with every field and ``metadata["qzpay_customer_id"]``."""
        ...

    async def update(
        self,
        provider_customer_id: str,
        before: Customer,
        after: Customer,
        *,
        idempotency_key: str,
    ) -> ProviderCustomer:
        """Send only the fields that differ; metadata keys removed locally are removed remotely."""
        ...

    async def delete(self, provider_customer_id: str, *, idempotency_key: str) -> None:
        """Delete; a customer that is already gone counts as success."""
        ...

    async def retrieve(self, provider_customer_id: str) -> ProviderCustomer | None:
        """The customer, or None when it does not exist or was deleted."""
        ...

    async def adopt(
        self, provider_customer_id: str, customer: Customer, *, idempotency_key: str
    ) -> ProviderCustomer:
        """Make a provider customer created outside qzpay this qzpay customer's copy.

        Marks it with ``customer.id`` (as :meth:`create` does) and writes every field the
        provider holds from ``customer``. Refuses, with :class:`ProviderEmailTaken`, a customer
        that carries another qzpay customer's id; whether a *local* customer is linked to it is
        the caller's to check first.
        """
        ...

    async def release(
        self, provider_customer_id: str, customer: Customer, *, idempotency_key: str
    ) -> None:
        """Undo :meth:`adopt` for an unfinished create: remove the qzpay id if it is
        ``customer.id``. The customer is kept (qzpay did not create it), and so are the field
        values adoption wrote. A customer that is gone or carries another id is left alone."""
        ...

    async def find(self, customer: Customer) -> ProviderCustomer | None:
        """The provider customer whose ``qzpay_customer_id`` is ``customer.id``, if any.

        Used to resolve an ambiguous create: strongly consistent listing by the exact email
        sent, never an eventually consistent search index.
        """
        ...

    def merge_remote(self, local: Customer, remote: ProviderCustomer) -> Customer:
        """``local`` with the provider's values for the fields it holds.

        The single place that knows what a provider keeps: webhooks apply it, reconcile
        compares against it, and a push sends the difference between it and ``local``.
        """
        ...

    def list(self) -> AsyncIterator[ProviderCustomer]:
        """Every customer at the provider, fetched page by page (for reconcile)."""
        ...


class PaymentProvider(Protocol):
    """What the billing service needs from a payment provider: its resources' adapters, its
    webhooks, and a way to release its network resources."""

    name: str

    @property
    def customers(self) -> CustomerAdapter:
        """The provider's customers."""
        ...

    def parse_webhook(
        self,
        payload: bytes,
        headers: Mapping[str, str],
        *,
        query: Mapping[str, str] | None = None,
    ) -> ProviderEvent:
        """Verify the delivery's signature and parse it; WebhookSignatureError otherwise."""
        ...

    async def close(self) -> None:
        """Release network resources (connection pools)."""
        ...


def replace_all_fields(local: Customer, remote: ProviderCustomer) -> Customer:
    """``merge_remote`` for a provider that holds every customer field (Stripe)."""
    metadata = {k: v for k, v in remote.metadata.items() if k != QZPAY_CUSTOMER_ID_KEY}
    return local.model_copy(
        update={
            "email": remote.email or local.email,
            "name": remote.name,
            "phone": remote.phone,
            "address": remote.address,
            "metadata": metadata,
        }
    )


class ClosingContext:
    """``async with provider:`` closes it on exit (for the providers' own classes)."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
