"""The provider-neutral contract every payment provider implements.

The billing service talks only to :class:`PaymentProvider`; SDK objects and SDK errors never
cross this boundary, so Stripe and MercadoPago can be swapped without touching the service.

A provider is a small object (name, webhooks, close) holding one adapter per resource it
syncs: ``provider.customers`` is a :class:`CustomerAdapter`. A resource added later (prices,
subscriptions) is another adapter and another attribute; the existing adapters do not change.

Not every provider holds every resource. Customers are required (:class:`PaymentProvider`);
the catalog is optional and expressed by separate protocols: a provider with Stripe-like
products is also a :class:`SupportsPlans` (``provider.plans``, a :class:`PlanAdapter`), one
with prices a :class:`SupportsPrices` (``provider.prices``, a :class:`PriceAdapter`).
Stripe is both; MercadoPago only holds prices (a recurring price is a ``preapproval_plan``;
a qzpay plan has no MercadoPago object). :func:`plans_of` and :func:`prices_of` give a
provider's adapter or None, so callers never probe attributes themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from pydantic import BaseModel

from qzpay.catalog.models import Interval, Plan, Price
from qzpay.customers.models import Address, Customer
from qzpay.customers.validation import RESERVED_METADATA_KEY
from qzpay.errors import ConflictError, ProviderSyncError

Record = TypeVar("Record", bound=BaseModel)

QZPAY_CUSTOMER_ID_KEY = RESERVED_METADATA_KEY
"""Metadata key that ties a provider customer to its qzpay customer (used by find and reconcile)."""
QZPAY_PLAN_ID_KEY = "qzpay_plan_id"
"""Metadata key that ties a provider product to its qzpay plan (Stripe)."""
QZPAY_PRICE_ID_KEY = "qzpay_price_id"
"""Metadata key that ties a provider price to its qzpay price (Stripe; MercadoPago has no
metadata on a ``preapproval_plan`` and uses ``external_reference``)."""


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
class ProviderPlan:
    """The provider's view of a plan (a Stripe Product), converted away from any SDK type.

    ``metadata`` is what the provider stores, including ``qzpay_plan_id``; a blank
    ``description`` is ``None``. ``deleted`` is True for a product deleted at the provider.
    """

    id: str
    name: str | None
    description: str | None
    active: bool
    metadata: dict[str, str]
    qzpay_plan_id: str | None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class ProviderPrice:
    """The provider's view of a recurring price, converted away from any SDK type.

    ``currency`` is upper case and ``unit_amount`` counts the currency's minor unit, as in
    :class:`~qzpay.catalog.models.Price`, whatever the provider sends (MercadoPago sends a
    decimal amount). ``interval``/``interval_count`` are as the provider holds them:
    MercadoPago knows only days and months, so a qzpay weekly price reads back as
    ``("day", 7)`` and a yearly one as ``("month", 12)``; compare with :func:`same_terms`.
    ``interval`` is None for a price that is not recurring (made outside qzpay).
    ``provider_plan_id`` is the provider's plan (Stripe: the product), None where a plan has no
    provider object (MercadoPago). ``metadata`` is what the provider stores, including
    ``qzpay_price_id`` (MercadoPago: only that, read from ``external_reference``).
    """

    id: str
    provider_plan_id: str | None
    currency: str
    unit_amount: int
    interval: Interval | None
    interval_count: int
    trial_days: int | None
    lookup_key: str | None
    active: bool
    metadata: dict[str, str]
    qzpay_price_id: str | None
    name: str | None = None
    """What the provider shows as the price's name, where it has one (MercadoPago: the
    ``reason``, which is the plan's name); None at Stripe (the name is the product's)."""


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


class ProviderCurrencyUnsupported(ConflictError, ProviderSyncError):
    """The provider account cannot charge in the price's currency (nothing was created).

    Raised before sending when the provider documents no such currency at all, and when the
    provider refuses it for this account. A ``ConflictError`` with its own code for callers,
    and a non-ambiguous ``ProviderSyncError`` for the sync machinery.
    """

    code = "provider_currency_unsupported"

    def __init__(
        self, message: str, *, provider: str, currency: str, operation: str = "create_price"
    ) -> None:
        super().__init__(message, provider=provider, operation=operation, ambiguous=False)
        self.currency = currency


class PlanAdapter(Protocol):
    """A provider's plans (Stripe: Products), as the sync machinery needs them.

    The same rules as :class:`CustomerAdapter`: every failing call raises
    ``ProviderSyncError`` (``operation`` ``create_plan``, ``update_plan``, ...) whose
    ``ambiguous`` flag says whether it may have been applied; mutating calls send the caller's
    idempotency key. A plan is never deleted, only archived (``active=False``): an update whose
    ``after`` is inactive archives it, and :meth:`archive` does only that. Entitlements, limits
    and the plan key stay in qzpay.
    """

    async def create(self, plan: Plan, /, *, idempotency_key: str) -> ProviderPlan:
        """Create with name, description, active flag, metadata and ``qzpay_plan_id``."""
        ...

    async def update(
        self, provider_plan_id: str, before: Plan, after: Plan, /, *, idempotency_key: str
    ) -> ProviderPlan:
        """Send only what changed among the fields the provider holds (metadata keys removed
        locally are removed remotely); with nothing to send this only reads."""
        ...

    async def archive(self, provider_plan_id: str, /, *, idempotency_key: str) -> None:
        """Make it inactive; a plan already gone counts as success."""
        ...

    async def delete(self, provider_plan_id: str, /, *, idempotency_key: str) -> None:
        """Undo a create (compensation): remove it if the provider allows, else archive it. A
        plan already gone counts as success."""
        ...

    async def retrieve(self, provider_plan_id: str, /) -> ProviderPlan | None:
        """The plan, or None when it does not exist or was deleted."""
        ...

    async def find(self, plan: Plan, /) -> ProviderPlan | None:
        """The provider plan carrying ``plan.id`` as its qzpay id (the oldest if several):
        strongly consistent, to resolve an ambiguous create."""
        ...

    def merge_remote(self, local: Plan, remote: ProviderPlan, /) -> Plan:
        """``local`` with the provider's name, description, active flag and metadata."""
        ...

    def list(self) -> AsyncIterator[ProviderPlan]:
        """Every plan at the provider, active or not, page by page (for reconcile)."""
        ...


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    """What :meth:`PriceAdapter.update` works from: the price before and after the change, and
    its plan as stored in qzpay (MercadoPago shows the plan's name on the price)."""

    before: Price
    after: Price
    plan: Plan


class PriceAdapter(Protocol):
    """A provider's recurring prices, as the sync machinery needs them.

    The same error and idempotency rules as :class:`PlanAdapter`. A price's amount, currency
    and interval never change: only its lookup key, metadata and active flag are updated, and
    archiving is ``active=False``. ``plan`` is the price's plan as stored in qzpay, with its
    ``provider_plan_ids`` (Stripe needs the product; MercadoPago the plan's name).

    A provider may hold no object for some prices (MercadoPago: a free price, as it needs a
    positive amount): :meth:`holds` says so without I/O, and :meth:`create` of such a price
    sends nothing and returns None. A currency the provider cannot charge is a
    :class:`ProviderCurrencyUnsupported`, never a silent skip.
    """

    def holds(self, price: Price, /) -> bool:
        """Whether this provider keeps an object for ``price`` at all."""
        ...

    async def create(
        self, price: Price, /, *, plan: Plan, idempotency_key: str
    ) -> ProviderPrice | None:
        """Create it (None, and nothing sent, when :meth:`holds` is False)."""
        ...

    async def update(
        self, provider_price_id: str, change: PriceUpdate, /, *, idempotency_key: str
    ) -> ProviderPrice:
        """Send only what changed among the fields the provider holds; with nothing to send
        this only reads."""
        ...

    async def archive(self, provider_price_id: str, /, *, idempotency_key: str) -> None:
        """Make it inactive; a price already gone counts as success."""
        ...

    async def delete(self, provider_price_id: str, /, *, idempotency_key: str) -> None:
        """Undo a create (compensation). Neither Stripe nor MercadoPago lets an API delete a
        price, so this archives it."""
        ...

    async def retrieve(self, provider_price_id: str, /) -> ProviderPrice | None:
        """The price, or None when it does not exist."""
        ...

    async def find(self, price: Price, /, *, plan: Plan) -> ProviderPrice | None:
        """The provider price carrying ``price.id`` as its qzpay id (the oldest if several):
        strongly consistent, to resolve an ambiguous create."""
        ...

    def merge_remote(self, local: Price, remote: ProviderPrice, /) -> Price:
        """``local`` with the provider's values for the fields it can change."""
        ...

    def list(self) -> AsyncIterator[ProviderPrice]:
        """Every price at the provider, active or not, page by page (for reconcile)."""
        ...


@runtime_checkable
class SupportsPlans(Protocol):
    """A provider that holds plans (``provider.plans``)."""

    @property
    def plans(self) -> PlanAdapter: ...


@runtime_checkable
class SupportsPrices(Protocol):
    """A provider that holds prices (``provider.prices``)."""

    @property
    def prices(self) -> PriceAdapter: ...


def plans_of(provider: object) -> PlanAdapter | None:
    """``provider.plans``, or None for a provider without plans (MercadoPago)."""
    return provider.plans if isinstance(provider, SupportsPlans) else None


def prices_of(provider: object) -> PriceAdapter | None:
    """``provider.prices``, or None for a provider without prices."""
    return provider.prices if isinstance(provider, SupportsPrices) else None


_PERIOD_UNITS: dict[str, tuple[str, int]] = {
    "day": ("day", 1),
    "week": ("day", 7),
    "month": ("month", 1),
    "year": ("month", 12),
}


def billing_period(interval: Interval, interval_count: int) -> tuple[str, int]:
    """The period in the units every provider knows: ``("day", n)`` or ``("month", n)``.

    A week is 7 days and a year 12 months (MercadoPago knows only days and months).
    """
    unit, factor = _PERIOD_UNITS[interval]
    return unit, factor * interval_count


def same_terms(local: Price, remote: ProviderPrice) -> bool:
    """Whether ``remote`` charges what ``local`` says: currency, amount and billing period
    (compared as :func:`billing_period`, so a weekly price equals a 7-day one)."""
    if remote.interval is None:
        return False
    return (
        remote.currency == local.currency
        and remote.unit_amount == local.unit_amount
        and billing_period(remote.interval, remote.interval_count)
        == billing_period(local.interval, local.interval_count)
    )


def with_remote(
    local: Record, values: Mapping[str, object], remote_metadata: Mapping[str, str], owned_key: str
) -> Record:
    """``local`` with the provider's ``values`` and its metadata, less ``owned_key`` (the
    qzpay id the provider holds for us, which is no user metadata): every ``merge_remote`` of a
    provider that holds metadata."""
    metadata = {k: v for k, v in remote_metadata.items() if k != owned_key}
    return local.model_copy(update={**values, "metadata": metadata})


def merge_plan_remote(local: Plan, remote: ProviderPlan) -> Plan:
    """``merge_remote`` for a provider that holds a plan's name, description, active flag and
    metadata (Stripe); a provider that lost the name keeps the local one."""
    held = {
        "name": remote.name or local.name,
        "description": remote.description,
        "active": remote.active,
    }
    return with_remote(local, held, remote.metadata, QZPAY_PLAN_ID_KEY)


def replace_all_fields(local: Customer, remote: ProviderCustomer) -> Customer:
    """``merge_remote`` for a provider that holds every customer field (Stripe)."""
    held = {
        "email": remote.email or local.email,
        "name": remote.name,
        "phone": remote.phone,
        "address": remote.address,
    }
    return with_remote(local, held, remote.metadata, QZPAY_CUSTOMER_ID_KEY)


class ClosingContext:
    """``async with provider:`` closes it on exit (for the providers' own classes)."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
