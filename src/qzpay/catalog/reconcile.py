"""Reconciliation of the catalog: walk qzpay's plans and prices and a provider's, report and
repair differences (``billing.catalog.reconcile``), with the categories of the customers'
report (qzpay.customers.reconcile) and the same walk (qzpay.reconcile_common), one pass for
plans and one for prices.

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
from typing import Any, Generic, Literal, Protocol, TypeVar

from qzpay.catalog.models import PLAN_FIELDS, PRICE_FIELDS, Plan, Price
from qzpay.catalog.remote import WithPlan
from qzpay.engine import keys
from qzpay.providers.base import (
    PaymentProvider,
    ProviderPlan,
    ProviderPrice,
    billing_period,
    plans_of,
    prices_of,
    same_terms,
)
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

Kind = Literal["plan", "price"]


@dataclass(frozen=True, slots=True)
class Drift:
    """A linked plan or price whose provider copy differs: field -> (local, provider)."""

    kind: Kind
    record_id: str
    provider_id: str
    fields: dict[str, tuple[Any, Any]]


@dataclass
class CatalogReconcileReport(Verdict):
    """What ``billing.catalog.reconcile`` found (and, with ``fix``, did). Record ids are plan
    (``plan_…``) and price (``price_…``) ids; provider ids are the provider's."""

    provider: str
    local_plans: int = 0
    provider_plans: int = 0
    local_prices: int = 0
    provider_prices: int = 0
    unlinked: list[str] = field(default_factory=list, metadata=DIFFERS)
    """Active records with no link to this provider (an archived one needs no copy)."""
    missing_at_provider: list[str] = field(default_factory=list, metadata=DIFFERS)
    missing_locally: list[str] = field(default_factory=list, metadata=DIFFERS)
    unmanaged: list[str] = field(default_factory=list)
    duplicates: dict[str, list[str]] = field(default_factory=dict, metadata=DIFFERS)
    """Active records with several active copies carrying their id: id -> copy ids."""
    archived_locally_active_at_provider: list[str] = field(default_factory=list, metadata=DIFFERS)
    """Archived records with an active copy there (the catalog's "deleted but live");
    ``fix`` archives every such copy."""
    drift: list[Drift] = field(default_factory=list, metadata=DIFFERS)
    pending: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)
    """Records ``fix`` could not create there: id -> why."""


class _Active(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def active(self) -> bool: ...


R = TypeVar("R", bound=_Active)
C = TypeVar("C", bound=_Active)
R_contra = TypeVar("R_contra", contravariant=True)
C_co = TypeVar("C_co", covariant=True)


@dataclass(frozen=True)
class RecordAccess(Generic[R, C]):
    """What reconcile needs of the plan or the price service (given by CatalogService: the
    services import nothing from here, and this module imports no service)."""

    records: Callable[[], AsyncIterator[R]]
    link: Callable[[str, str, str], Awaitable[object]]
    """``(record_id, provider, provider_id)``: store the link, nothing sent."""
    create: Callable[[str, R], Awaitable[C]]
    """Create at the named provider through the service's fan-out."""
    archive: Callable[[str], Awaitable[object]]
    """Archive here through the service (events; a plan's active prices too)."""


@dataclass(frozen=True)
class CatalogAccess:
    plans: RecordAccess[Plan, ProviderPlan]
    prices: RecordAccess[Price, ProviderPrice]


async def reconcile(
    access: CatalogAccess, storage: Storage, provider: PaymentProvider, *, fix: bool = False
) -> CatalogReconcileReport:
    report = CatalogReconcileReport(provider=provider.name)
    pending = await pending_records(storage)
    plan_adapter = plans_of(provider)
    if plan_adapter is not None:
        plans = _Side(
            "plan", access.plans, plan_adapter, plan_adapter, PLAN_FIELDS, _plan_links, _plan_of
        )
        report.provider_plans, report.local_plans = await _walk(report, plans, pending, fix=fix)
    price_adapter = prices_of(provider)
    if price_adapter is not None:
        with_plan = WithPlan(provider, storage)
        prices = _Side(
            "price",
            access.prices,
            price_adapter,
            with_plan,
            PRICE_FIELDS,
            _price_links,
            _price_of,
            holds=price_adapter.holds,
            terms=terms_drift,
        )
        report.provider_prices, report.local_prices = await _walk(report, prices, pending, fix=fix)
    return report


class _Adapter(Protocol[R, C]):
    """The provider calls the walk makes, alike for plans and prices."""

    def list(self) -> AsyncIterator[C]: ...
    def merge_remote(self, local: R, remote: C, /) -> R: ...
    async def archive(self, provider_id: str, /, *, idempotency_key: str) -> None: ...


class _Updater(Protocol[R_contra, C_co]):
    """A plan adapter, or a price adapter given the price's plan (WithPlan)."""

    async def update(
        self, provider_id: str, before: R_contra, after: R_contra, /, *, idempotency_key: str
    ) -> C_co: ...


def _no_terms(local: object, remote: object) -> dict[str, tuple[Any, Any]]:
    return {}


def _holds_all(record: object) -> bool:
    return True


@dataclass(frozen=True)
class _Side(Generic[R, C]):
    """Plans or prices at one provider: what the one walk below needs of each."""

    kind: Kind
    access: RecordAccess[R, C]
    adapter: _Adapter[R, C]
    updater: _Updater[R, C]
    fields: tuple[str, ...]
    links: Callable[[R], dict[str, str]]
    qzpay_id: Callable[[C], str | None]
    """The qzpay id a copy carries (its owner here), if any."""
    holds: Callable[[R], bool] = _holds_all
    """Whether the provider keeps an object for the record at all."""
    terms: Callable[[R, C], dict[str, tuple[Any, Any]]] = _no_terms
    """What the copy charges differently (prices only: a plan charges nothing)."""

    def rules(self, report: CatalogReconcileReport) -> RecordKind[R, C]:
        """The shared walk's rules: a catalog record is archived rather than deleted, so an
        archived record's active copies are archived there."""
        access, name = self.access, report.provider

        async def archive_copy(copy_id: str) -> None:
            await self.adapter.archive(copy_id, idempotency_key=keys.fresh_key("archive", copy_id))

        return RecordKind(
            name=self.kind,
            links=self.links,
            alive=_active,
            live_copy=_active,
            create=partial(access.create, name),
            link=lambda record_id, copy_id: access.link(record_id, name, copy_id),
            retire=archive_copy,
            retired=report.archived_locally_active_at_provider,
            retired_note="archived {provider} copy {copy} of archived {record}",
        )


def _active(record: _Active) -> bool:
    return record.active


def _plan_links(plan: Plan) -> dict[str, str]:
    return plan.provider_plan_ids


def _price_links(price: Price) -> dict[str, str]:
    return price.provider_price_ids


def _plan_of(copy: ProviderPlan) -> str | None:
    return copy.qzpay_plan_id


def _price_of(copy: ProviderPrice) -> str | None:
    return copy.qzpay_price_id


async def _walk(
    report: CatalogReconcileReport, side: _Side[R, C], pending: set[str], *, fix: bool
) -> tuple[int, int]:
    """Compare every record of one kind with the provider's copies (module docstring); the
    number of copies listed there and of records here that the provider holds."""
    copies = await Copies.index(side.adapter.list(), side.qzpay_id, unmanaged=report.unmanaged)
    rules = side.rules(report)
    seen: set[str] = set()
    held = 0
    async for record in side.access.records():
        seen.add(record.id)
        if not side.holds(record):
            continue
        held += 1
        linked = await linked_copy(report, rules, record, copies, pending, fix=fix)
        if linked is not None:
            await _compare(report, side, record, linked, fix=fix)
    report.missing_locally += copies.missing_locally(seen, pending, live=_active)
    return copies.listed, held


async def _compare(
    report: CatalogReconcileReport, side: _Side[R, C], record: R, linked: C, *, fix: bool
) -> None:
    """Drift of a linked copy. With ``fix``: a copy archived there archives the record here
    (the webhooks' rule), other drift is pushed (qzpay's values win)."""
    name = report.provider
    seen_there = side.adapter.merge_remote(record, linked)
    differs = {**field_drift(record, seen_there, side.fields), **side.terms(record, linked)}
    if not differs:
        return
    report.drift.append(Drift(side.kind, record.id, linked.id, differs))
    if not fix:
        return
    if record.active and not linked.active:
        await side.access.archive(record.id)
        report.fixed.append(f"archived {record.id}: its {name} copy is archived")
        return
    key = keys.update_key(linked.id)
    pushed = await side.updater.update(linked.id, seen_there, record, idempotency_key=key)
    report.fixed.append(f"pushed {', '.join(differs)} of {record.id} to {name}")
    if side.terms(record, pushed):
        report.conflicts[record.id] = (
            f"its {name} copy {linked.id} charges other terms, which cannot be changed there: "
            "replace the price"
        )


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
