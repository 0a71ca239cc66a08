"""Reconciliation: walk qzpay's customers and a provider's, report and repair differences.

``fix=True`` repairs only what is safe: it links a local customer to the provider customer that
carries its qzpay id, pushes local values over drifted provider copies (qzpay is the source of
truth), creates provider copies that are missing, and deletes provider copies of customers
deleted locally: every copy carrying a deleted customer's qzpay id (``qzpay_customer_id``
metadata at Stripe, the description at MercadoPago) and the one it was linked to, so that the
next reconcile reports nothing for it. It never deletes a provider customer qzpay does not know:
those are reported.

Creating a missing copy follows the create rules of ``qzpay.customers.sync``: at a provider
that allows one customer per email (MercadoPago), a customer created outside qzpay with that
email is adopted if no other local customer is linked to it; any other holder of the email is
reported in ``conflicts`` and left alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from qzpay.customers.models import TRACKED_FIELDS, Customer
from qzpay.customers.sync import create_key, delete_key, update_key
from qzpay.providers.base import PaymentProvider, ProviderCustomer
from qzpay.reconcile_common import (
    DIFFERS,
    Copies,
    RecordKind,
    Verdict,
    field_drift,
    linked_copy,
    pending_records,
)
from qzpay.storage.base import Storage

Progress = Callable[[int], None]
Create = Callable[[PaymentProvider, Customer], Awaitable[ProviderCustomer]]


@dataclass(frozen=True, slots=True)
class Drift:
    """A linked customer whose provider copy differs: field -> (local value, provider value)."""

    customer_id: str
    provider_customer_id: str
    fields: dict[str, tuple[Any, Any]]


@dataclass
class ReconcileReport(Verdict):
    """What ``billing.customers.reconcile`` found (and, with ``fix``, did)."""

    provider: str
    local_customers: int = 0
    provider_customers: int = 0
    unlinked: list[str] = field(default_factory=list, metadata=DIFFERS)
    missing_at_provider: list[str] = field(default_factory=list, metadata=DIFFERS)
    missing_locally: list[str] = field(default_factory=list, metadata=DIFFERS)
    unmanaged: list[str] = field(default_factory=list)
    duplicates: dict[str, list[str]] = field(default_factory=dict, metadata=DIFFERS)
    """Live local customers with several provider copies carrying their id: id -> copy ids."""
    deleted_locally_live_at_provider: list[str] = field(default_factory=list, metadata=DIFFERS)
    """Deleted local customers with a live provider copy (linked, or carrying their id);
    ``fix`` deletes every such copy."""
    drift: list[Drift] = field(default_factory=list, metadata=DIFFERS)
    pending: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)
    """Unlinked local customers ``fix`` could not create there: customer id -> why (the
    provider allows one customer per email and another customer holds it)."""


class Customers(Protocol):
    """What reconcile needs of the customer service (a protocol: the service calls reconcile,
    so importing the service here would be an import cycle)."""

    def iterate(self, *, include_deleted: bool, page_size: int) -> AsyncIterator[Customer]: ...

    async def link(
        self, customer_id: str, *, provider: str, provider_customer_id: str
    ) -> Customer: ...


async def reconcile(
    customers: Customers,
    storage: Storage,
    provider: PaymentProvider,
    *,
    fix: bool = False,
    on_progress: Progress | None = None,
    create: Create | None = None,
) -> ReconcileReport:
    """``create(provider, customer)`` makes a missing provider copy (by default
    ``provider.customers.create`` with the customer's create key)."""

    name, adapter = provider.name, provider.customers

    async def create_plainly(at: PaymentProvider, customer: Customer) -> ProviderCustomer:
        return await at.customers.create(customer, idempotency_key=create_key(customer))

    async def link(customer_id: str, copy_id: str) -> object:
        return await customers.link(customer_id, provider=name, provider_customer_id=copy_id)

    async def delete(copy_id: str) -> None:
        await adapter.delete(copy_id, idempotency_key=delete_key(copy_id))

    report = ReconcileReport(provider=name)
    copies = await Copies.index(
        adapter.list(), lambda copy: copy.qzpay_customer_id, unmanaged=report.unmanaged
    )
    report.provider_customers = copies.listed
    pending = await pending_records(storage)
    kind = RecordKind[Customer, ProviderCustomer](
        name="customer",
        links=lambda customer: customer.provider_customer_ids,
        alive=lambda customer: customer.deleted_at is None,
        live_copy=lambda copy: True,  # providers list no deleted customer
        create=partial(create or create_plainly, provider),
        link=link,
        retire=delete,
        retired=report.deleted_locally_live_at_provider,
        retired_note="deleted {provider} customer {copy} of deleted {record}",
    )
    seen: set[str] = set()
    async for local in customers.iterate(include_deleted=True, page_size=500):
        report.local_customers += 1
        seen.add(local.id)
        if on_progress is not None:
            on_progress(report.local_customers)
        remote = await linked_copy(report, kind, local, copies, pending, fix=fix)
        if remote is not None:
            await _push_drift(provider, report, local, remote, fix=fix)
    report.missing_locally += copies.missing_locally(seen, pending, live=kind.live_copy)
    return report


async def _push_drift(
    provider: PaymentProvider,
    report: ReconcileReport,
    local: Customer,
    remote: ProviderCustomer,
    *,
    fix: bool,
) -> None:
    """Report a linked copy whose fields differ; with ``fix``, push qzpay's values there."""
    seen = provider.customers.merge_remote(local, remote)
    fields = field_drift(local, seen, TRACKED_FIELDS)
    if fields:
        report.drift.append(Drift(local.id, remote.id, fields))
        if fix:
            await provider.customers.update(
                remote.id, seen, local, idempotency_key=update_key(remote.id)
            )
            report.fixed.append(f"pushed {', '.join(fields)} of {local.id} to {provider.name}")
