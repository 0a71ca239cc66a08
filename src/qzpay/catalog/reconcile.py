"""Reconciliation of the catalog: walk qzpay's plans and prices and a provider's, report and
repair differences (``billing.catalog.reconcile``), with the categories of the customers'
report (qzpay.customers.reconcile).

Plans are compared only at a provider that has plans (:func:`~qzpay.providers.base.plans_of`:
Stripe's Products; MercadoPago has none), prices only where the provider keeps an object for
them (:meth:`~qzpay.providers.base.PriceAdapter.holds`: MercadoPago keeps none for a free
price). A provider object belongs to a qzpay record through the link stored here
(``provider_plan_ids`` / ``provider_price_ids``) or the qzpay id it carries (Stripe: metadata
``qzpay_plan_id`` / ``qzpay_price_id``; MercadoPago: ``external_reference``).

``fix=True`` repairs only what is safe, each request with its own idempotency key
(qzpay.engine.keys):

* an unlinked record whose one copy there carries its qzpay id is linked to it (nothing sent);
* an unlinked active record with no copy there is created there through the normal
  provider-first path (the fan-out's ``create_at``: the deterministic create key, a look-up by
  qzpay id after an ambiguous failure), then linked; a price whose plan is not at the provider
  yet is put in ``conflicts`` (plans are fixed first, so this is rare);
* a record whose linked copy was archived (deactivated) at the provider is archived here,
  through the service (with its events; a plan's active prices too): the rule webhooks follow
  for the same change, so a dashboard archive means the same whichever way it arrives;
* other drift in the fields qzpay owns (a plan's name, description and metadata; a price's
  lookup key and metadata) is pushed: qzpay's values win;
* every active copy of a record archived here (the linked one and any other carrying its id)
  is archived there.

Reported, never repaired: ``missing_at_provider`` (linked to an object the provider no longer
has), ``missing_locally`` (active provider objects carrying a qzpay id unknown here; inactive
ones, such as the leftovers of an undone create, are ignored), ``duplicates`` (several active
copies of one active record), ``unmanaged`` (provider objects carrying no qzpay id). Records
with provider work pending (``sync_pending``) are listed in ``pending`` and left alone.
A price's amount, currency and interval are not compared (they never change).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from qzpay.catalog.models import PLAN_FIELDS, PRICE_FIELDS, Plan, Price
from qzpay.engine import keys
from qzpay.errors import ConflictError
from qzpay.providers.base import (
    PaymentProvider,
    PlanAdapter,
    PriceAdapter,
    ProviderPlan,
    ProviderPrice,
    billing_period,
    plans_of,
    prices_of,
    same_terms,
)
from qzpay.storage.base import Storage

Kind = Literal["plan", "price"]


@dataclass(frozen=True, slots=True)
class Drift:
    """A linked plan or price whose provider copy differs: field -> (local, provider)."""

    kind: Kind
    record_id: str
    provider_id: str
    fields: dict[str, tuple[Any, Any]]


@dataclass
class CatalogReconcileReport:
    """What ``billing.catalog.reconcile`` found (and, with ``fix``, did). Record ids are plan
    (``plan_…``) and price (``price_…``) ids; provider ids are the provider's."""

    provider: str
    local_plans: int = 0
    provider_plans: int = 0
    local_prices: int = 0
    provider_prices: int = 0
    unlinked: list[str] = field(default_factory=list)
    """Active records with no link to this provider (an archived one needs no copy)."""
    missing_at_provider: list[str] = field(default_factory=list)
    missing_locally: list[str] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    """Active records with several active copies carrying their id: id -> copy ids."""
    archived_locally_active_at_provider: list[str] = field(default_factory=list)
    """Archived records with an active copy there (the catalog's "deleted but live");
    ``fix`` archives every such copy."""
    drift: list[Drift] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)
    """Records ``fix`` could not create there: id -> why."""

    @property
    def in_sync(self) -> bool:
        return not (
            self.unlinked
            or self.missing_at_provider
            or self.missing_locally
            or self.duplicates
            or self.archived_locally_active_at_provider
            or self.drift
        )


@dataclass(frozen=True)
class CatalogAccess:
    """What reconcile needs of the plan and price services (given by CatalogService: the
    services import nothing from here, and this module imports no service)."""

    plans: Callable[[], AsyncIterator[Plan]]
    prices: Callable[[], AsyncIterator[Price]]
    link_plan: Callable[[str, str, str], Awaitable[object]]
    """``(plan_id, provider, provider_plan_id)``: store the link, nothing sent."""
    link_price: Callable[[str, str, str], Awaitable[object]]
    create_plan: Callable[[str, Plan], Awaitable[ProviderPlan]]
    """Create at the named provider through the plans' fan-out."""
    create_price: Callable[[str, Price], Awaitable[ProviderPrice]]
    archive_plan: Callable[[str], Awaitable[object]]
    """Archive here through the service (events; a plan's active prices too)."""
    archive_price: Callable[[str], Awaitable[object]]


async def reconcile(
    access: CatalogAccess, storage: Storage, provider: PaymentProvider, *, fix: bool = False
) -> CatalogReconcileReport:
    report = CatalogReconcileReport(provider=provider.name)
    pending = {t.record_id for t in await storage.list_sync_tasks(limit=100_000)}
    plan_adapter = plans_of(provider)
    if plan_adapter is not None:
        await _plans(access, plan_adapter, report, pending, fix=fix)
    price_adapter = prices_of(provider)
    if price_adapter is not None:
        await _prices(access, storage, price_adapter, report, pending, fix=fix)
    return report


@dataclass
class _Remote:
    """The provider's objects of one kind, by id and by the qzpay id they carry."""

    by_id: dict[str, Any] = field(default_factory=dict)
    by_qzpay: dict[str, list[Any]] = field(default_factory=dict)


def _index(
    report: CatalogReconcileReport, remote: _Remote, found: Any, qzpay_id: str | None
) -> None:
    remote.by_id[found.id] = found
    if qzpay_id is None:
        report.unmanaged.append(found.id)
    else:
        remote.by_qzpay.setdefault(qzpay_id, []).append(found)


def _missing_locally(
    report: CatalogReconcileReport, remote: _Remote, seen: set[str], pending: set[str]
) -> None:
    for qzpay_id, copies in remote.by_qzpay.items():
        if qzpay_id not in seen and qzpay_id not in pending:
            report.missing_locally += [c.id for c in copies if c.active]


async def _plans(
    access: CatalogAccess,
    adapter: PlanAdapter,
    report: CatalogReconcileReport,
    pending: set[str],
    *,
    fix: bool,
) -> None:
    name = report.provider
    remote = _Remote()
    async for found in adapter.list():
        report.provider_plans += 1
        _index(report, remote, found, found.qzpay_plan_id)
    seen: set[str] = set()
    async for plan in access.plans():
        report.local_plans += 1
        seen.add(plan.id)
        linked = await _linked_copy(
            report,
            adapter,
            plan,
            plan.provider_plan_ids,
            remote,
            pending,
            create=partial(access.create_plan, name),
            link=access.link_plan,
            fix=fix,
        )
        if linked is None:
            continue
        seen_there = adapter.merge_remote(plan, linked)
        differs = _drift(plan, seen_there, PLAN_FIELDS)
        if differs:
            report.drift.append(Drift("plan", plan.id, linked.id, differs))
            if fix and plan.active and not linked.active:
                await access.archive_plan(plan.id)
                report.fixed.append(f"archived {plan.id}: its {name} copy is archived")
            elif fix:
                await adapter.update(
                    linked.id,
                    seen_there,
                    plan,
                    idempotency_key=keys.update_key(linked.id),
                )
                report.fixed.append(f"pushed {', '.join(differs)} of {plan.id} to {name}")
    _missing_locally(report, remote, seen, pending)


async def _prices(
    access: CatalogAccess,
    storage: Storage,
    adapter: PriceAdapter,
    report: CatalogReconcileReport,
    pending: set[str],
    *,
    fix: bool,
) -> None:
    name = report.provider
    remote = _Remote()
    async for found in adapter.list():
        report.provider_prices += 1
        _index(report, remote, found, found.qzpay_price_id)
    seen: set[str] = set()
    async for price in access.prices():
        seen.add(price.id)
        if not adapter.holds(price):
            continue
        report.local_prices += 1
        linked = await _linked_copy(
            report,
            adapter,
            price,
            price.provider_price_ids,
            remote,
            pending,
            create=partial(access.create_price, name),
            link=access.link_price,
            fix=fix,
        )
        if linked is None:
            continue
        seen_there = adapter.merge_remote(price, linked)
        differs = {**_drift(price, seen_there, PRICE_FIELDS), **terms_drift(price, linked)}
        if differs:
            report.drift.append(Drift("price", price.id, linked.id, differs))
            if fix and price.active and not linked.active:
                await access.archive_price(price.id)
                report.fixed.append(f"archived {price.id}: its {name} copy is archived")
            elif fix:
                plan = await storage.get_plan(price.plan_id)
                assert plan is not None  # a price's plan is never deleted
                pushed = await adapter.update(
                    linked.id,
                    seen_there,
                    price,
                    plan=plan,
                    idempotency_key=keys.update_key(linked.id),
                )
                report.fixed.append(f"pushed {', '.join(differs)} of {price.id} to {name}")
                if terms_drift(price, pushed):
                    report.conflicts[price.id] = (
                        f"its {name} copy {linked.id} charges other terms, which cannot be "
                        f"changed there: replace the price"
                    )
    _missing_locally(report, remote, seen, pending)


async def _linked_copy(
    report: CatalogReconcileReport,
    adapter: PlanAdapter | PriceAdapter,
    record: Plan | Price,
    links: dict[str, str],
    remote: _Remote,
    pending: set[str],
    *,
    create: Callable[[Any], Awaitable[ProviderPlan | ProviderPrice]],
    link: Callable[[str, str, str], Awaitable[object]],
    fix: bool,
) -> Any:
    """The walk every plan and price takes before its fields are compared: pending work, its
    copies there, linking or creating an unlinked one, a linked copy gone. The linked copy when
    the record's fields are to be compared with it, else None (reported or fixed already)."""
    if record.id in pending:
        report.pending.append(record.id)
        return None
    linked_id = links.get(report.provider)
    linked = remote.by_id.get(linked_id) if linked_id is not None else None
    copies = remote.by_qzpay.get(record.id, [])
    if not await _copies(report, adapter, record, record.active, linked, copies, fix=fix):
        return None
    if linked_id is None:
        if await _unlinked(report, record, copies, fix=fix, link=link):
            kind = "plan" if isinstance(record, Plan) else "price"
            try:
                made = await create(record)
            except ConflictError as conflict:
                report.conflicts[record.id] = conflict.message
                return None
            await link(record.id, report.provider, made.id)
            report.fixed.append(f"created {report.provider} {kind} {made.id} for {record.id}")
        return None
    if linked is None:
        report.missing_at_provider.append(record.id)
    return linked


async def _copies(
    report: CatalogReconcileReport,
    adapter: PlanAdapter | PriceAdapter,
    record: Plan | Price,
    active: bool,
    linked: Any,
    copies: list[Any],
    *,
    fix: bool,
) -> bool:
    """Handle what several copies mean: an archived record's active copies are archived
    there (each with its own key), an active record's several active copies are duplicates.
    True when the record is to be checked further (an active one, or an archived one whose
    linked copy is inactive: its other fields may still have drifted)."""
    live = [c for c in copies if c.active]
    if active:
        if len(live) > 1:
            report.duplicates[record.id] = [c.id for c in live]
        return True
    targets = [linked.id] if linked is not None and linked.active else []
    targets += [c.id for c in live if c.id not in targets]
    if not targets:
        return linked is not None
    report.archived_locally_active_at_provider.append(record.id)
    if fix:
        for provider_id in targets:
            await adapter.archive(
                provider_id, idempotency_key=keys.fresh_key("archive", provider_id)
            )
            report.fixed.append(
                f"archived {report.provider} copy {provider_id} of archived {record.id}"
            )
    return False


async def _unlinked(
    report: CatalogReconcileReport,
    record: Plan | Price,
    copies: list[Any],
    *,
    fix: bool,
    link: Callable[[str, str, str], Awaitable[object]],
) -> bool:
    """Report an unlinked active record; with ``fix``, link it to its one copy there (the
    active one, if several carry its id and one is active). True when it has no copy there
    and is to be created."""
    if not record.active:
        return False  # an archived record needs no copy
    report.unlinked.append(record.id)
    if not fix:
        return False
    live = [c for c in copies if c.active]
    candidates = live or copies
    if len(candidates) == 1:
        await link(record.id, report.provider, candidates[0].id)
        report.fixed.append(f"linked {record.id} to {candidates[0].id}")
        return False
    return not copies


def terms_drift(local: Price, remote: ProviderPrice) -> dict[str, tuple[Any, Any]]:
    """What a provider copy charges differently from the price: ``currency``,
    ``unit_amount``, and the billing period as ``interval`` (``"1 month"``; compared as
    providers count it, so a weekly price equals a 7-day copy). Empty when the terms agree."""
    if same_terms(local, remote):
        return {}
    terms: dict[str, tuple[Any, Any]] = {}
    if remote.currency != local.currency:
        terms["currency"] = (local.currency, remote.currency)
    if remote.unit_amount != local.unit_amount:
        terms["unit_amount"] = (local.unit_amount, remote.unit_amount)
    there = None if remote.interval is None else f"{remote.interval_count} {remote.interval}"
    if remote.interval is None or billing_period(
        remote.interval, remote.interval_count
    ) != billing_period(local.interval, local.interval_count):
        terms["interval"] = (f"{local.interval_count} {local.interval}", there)
    return terms


def _drift(local: Plan | Price, seen: Plan | Price, fields: tuple[str, ...]) -> dict[str, Any]:
    return {
        f: (getattr(local, f), getattr(seen, f))
        for f in fields
        if not f.startswith("provider_") and getattr(local, f) != getattr(seen, f)
    }
