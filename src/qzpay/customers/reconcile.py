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
from typing import Any, Protocol

from qzpay.customers.models import TRACKED_FIELDS, Customer
from qzpay.customers.sync import create_key, delete_key, update_key
from qzpay.errors import ConflictError
from qzpay.providers.base import PaymentProvider, ProviderCustomer
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
class ReconcileReport:
    provider: str
    local_customers: int = 0
    provider_customers: int = 0
    unlinked: list[str] = field(default_factory=list)
    missing_at_provider: list[str] = field(default_factory=list)
    missing_locally: list[str] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    """Live local customers with several provider copies carrying their id: id -> copy ids."""
    deleted_locally_live_at_provider: list[str] = field(default_factory=list)
    """Deleted local customers with a live provider copy (linked, or carrying their id);
    ``fix`` deletes every such copy."""
    drift: list[Drift] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)
    """Unlinked local customers ``fix`` could not create there: customer id -> why (the
    provider allows one customer per email and another customer holds it)."""

    @property
    def in_sync(self) -> bool:
        return not (
            self.unlinked
            or self.missing_at_provider
            or self.missing_locally
            or self.duplicates
            or self.deleted_locally_live_at_provider
            or self.drift
        )


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

    async def create_plainly(at: PaymentProvider, customer: Customer) -> ProviderCustomer:
        return await at.customers.create(customer, idempotency_key=create_key(customer))

    make = create or create_plainly
    report = ReconcileReport(provider=provider.name)
    by_id: dict[str, ProviderCustomer] = {}
    by_qzpay: dict[str, list[ProviderCustomer]] = {}
    async for remote in provider.customers.list():
        report.provider_customers += 1
        by_id[remote.id] = remote
        if remote.qzpay_customer_id is None:
            report.unmanaged.append(remote.id)
        else:
            by_qzpay.setdefault(remote.qzpay_customer_id, []).append(remote)
    pending = {t.record_id for t in await storage.list_sync_tasks(limit=100_000)}
    seen: set[str] = set()
    async for local in customers.iterate(include_deleted=True, page_size=500):
        report.local_customers += 1
        seen.add(local.id)
        if on_progress is not None:
            on_progress(report.local_customers)
        if local.id in pending:
            report.pending.append(local.id)
            continue
        twins = by_qzpay.get(local.id, [])
        if len(twins) > 1 and local.deleted_at is None:  # a deleted one's copies all go
            report.duplicates[local.id] = [t.id for t in twins]
        await _check(customers, provider, report, local, by_id, twins, fix=fix, create=make)
    for qzpay_id, remotes in by_qzpay.items():
        if qzpay_id not in seen and qzpay_id not in pending:
            report.missing_locally += [r.id for r in remotes]
    return report


async def _check(
    customers: Customers,
    provider: PaymentProvider,
    report: ReconcileReport,
    local: Customer,
    by_id: dict[str, ProviderCustomer],
    twins: list[ProviderCustomer],
    *,
    fix: bool,
    create: Create,
) -> None:
    name = provider.name
    pcid = local.provider_customer_ids.get(name)
    remote = by_id.get(pcid) if pcid is not None else None
    if local.deleted_at is not None:
        # Every copy goes: the linked one and any other carrying this qzpay id (left by a
        # repeated create, or made outside qzpay), each deleted with its own key.
        live = [remote.id] if remote is not None else []
        live += [twin.id for twin in twins if twin.id not in live]
        if live:
            report.deleted_locally_live_at_provider.append(local.id)
            if fix:
                for copy_id in live:
                    await provider.customers.delete(copy_id, idempotency_key=delete_key(copy_id))
                    report.fixed.append(f"deleted {name} customer {copy_id} of deleted {local.id}")
        return
    if pcid is None:
        report.unlinked.append(local.id)
        if fix:
            if len(twins) == 1:
                await customers.link(local.id, provider=name, provider_customer_id=twins[0].id)
                report.fixed.append(f"linked {local.id} to {twins[0].id}")
            elif not twins:
                try:
                    created = await create(provider, local)
                except ConflictError as conflict:
                    report.conflicts[local.id] = conflict.message
                    return
                await customers.link(local.id, provider=name, provider_customer_id=created.id)
                report.fixed.append(f"created {name} customer {created.id} for {local.id}")
        return
    if remote is None:
        report.missing_at_provider.append(local.id)
        return
    seen = provider.customers.merge_remote(local, remote)
    fields = {
        f: (getattr(local, f), getattr(seen, f))
        for f in TRACKED_FIELDS
        if f != "provider_customer_ids" and getattr(local, f) != getattr(seen, f)
    }
    if fields:
        report.drift.append(Drift(local.id, remote.id, fields))
        if fix:
            await provider.customers.update(
                remote.id, seen, local, idempotency_key=update_key(remote.id)
            )
            report.fixed.append(f"pushed {', '.join(fields)} of {local.id} to {name}")
