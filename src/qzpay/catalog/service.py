"""CatalogService (``billing.catalog``): the declarative catalog, diffed against and applied to
the stored plans and prices through ``billing.plans`` and ``billing.prices``.

``diff(spec)`` returns what would change (:class:`~qzpay.catalog.diff.CatalogDiff`, rules in
qzpay.catalog.diff); ``apply(spec)`` makes those changes, in the diff's order, each through
the plan and price services (so each commits with its events). Applying the same spec again
finds nothing to change and emits no event. A spec is a :class:`~qzpay.catalog.spec.CatalogSpec`,
its dict form, or the path of a TOML file.

Providers: plans and prices reach the providers through their services (qzpay.catalog.plans,
qzpay.catalog.prices, qzpay.catalog.remote), so ``apply`` does too. ``sync_pending`` finishes
the catalog's pending provider work: plans first, then prices (a price waits for its plan).
``reconcile(provider)`` compares the catalog with one provider's (qzpay.catalog.reconcile).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from qzpay.blocking import KeysetWalk
from qzpay.catalog.changes import (
    ArchivePlan,
    ArchivePrice,
    CreatePlan,
    CreatePrice,
    ReplacePrice,
    UpdatePlan,
    UpdatePrice,
)
from qzpay.catalog.diff import CatalogDiff, diff
from qzpay.catalog.inputs import PriceInput
from qzpay.catalog.models import Plan, Price
from qzpay.catalog.plans import PlanService
from qzpay.catalog.prices import PriceService
from qzpay.catalog.reconcile import (
    CatalogAccess,
    CatalogReconcileReport,
    RecordAccess,
    reconcile,
)
from qzpay.catalog.spec import CatalogSpec, PriceSpec, load_spec, parse_spec
from qzpay.catalog.wiring import Wiring
from qzpay.customers.validation import fail
from qzpay.engine.core import Engine
from qzpay.engine.pending import SyncReport
from qzpay.errors import NotFoundError
from qzpay.limits import DEFAULT_SYNC_BATCH, MAX_PAGE_SIZE
from qzpay.providers.base import ProviderPlan, ProviderPrice
from qzpay.storage.base import PlanFilter, PriceFilter

T = TypeVar("T", Plan, Price)
Spec = CatalogSpec | Mapping[str, Any] | str | os.PathLike[str]


class CatalogService:
    """``billing.catalog``: ``diff`` and ``apply`` a declarative catalog (module docstring)."""

    def __init__(self, wiring: Wiring, plans: PlanService, prices: PriceService) -> None:
        self._plans = plans
        self._prices = prices
        self._metadata_limit = wiring.metadata_limit
        self._providers = list(wiring.providers)

    async def diff(self, spec: Spec, *, archive_missing: bool = False) -> CatalogDiff:
        """What ``apply(spec)`` would change; nothing is written. With ``archive_missing``,
        active plans and prices the spec does not name would be archived."""
        wanted = self._spec(spec)
        plans = await _every(KeysetWalk(self._plans.scan_page, PlanFilter(), MAX_PAGE_SIZE))
        prices = await _every(KeysetWalk(self._prices.scan_page, PriceFilter(), MAX_PAGE_SIZE))
        return diff(plans, prices, wanted, archive_missing=archive_missing)

    async def apply(self, spec: Spec, *, archive_missing: bool = False) -> CatalogDiff:
        """Make the stored catalog match ``spec``: create what is missing, update what
        changed, replace a price whose amount, currency or interval changed (a new price, the
        old one archived, its lookup key moved), and with ``archive_missing`` archive what the
        spec dropped. Returns the diff it applied (empty when nothing had to change: then
        nothing was written and no event emitted). Each change commits on its own, so a
        failure part-way leaves the earlier ones applied; applying again finishes the rest."""
        planned = await self.diff(spec, archive_missing=archive_missing)
        plan_ids: dict[str, str] = {}

        async def plan_id(key: str) -> str:
            if key not in plan_ids:
                plan = await self._plans.get_by_key(key)
                if plan is None:
                    raise NotFoundError(f"no plan with key {key!r}")
                plan_ids[key] = plan.id
            return plan_ids[key]

        for change in planned.changes:
            match change:
                case CreatePlan(plan=wanted):
                    created = await self._plans.create(
                        wanted.key,
                        wanted.name,
                        description=wanted.description,
                        entitlements=list(wanted.entitlements),
                        limits=dict(wanted.limits),
                        metadata=dict(wanted.metadata),
                    )
                    plan_ids[created.key] = created.id
                case UpdatePlan():
                    await self._plans.update(change.plan_id, **change.arguments())
                case CreatePrice(plan_key=key, price=wanted):
                    await self._prices.create(await plan_id(key), **_price_arguments(wanted))
                case ReplacePrice(old_price_id=old, plan_key=key, price=wanted):
                    await self._prices.replace(old, await plan_id(key), _price_input(wanted))
                case UpdatePrice():
                    await self._prices.update(change.price_id, **change.arguments())
                case ArchivePrice(price_id=price_id):
                    await self._prices.archive(price_id)
                case ArchivePlan(plan_id=archived):
                    await self._plans.archive(archived)
        return planned

    async def sync_pending(self, *, limit: int = DEFAULT_SYNC_BATCH) -> SyncReport:
        """Finish or undo the catalog's provider work left pending (failures, crashes, "log"
        mode): plans first, then prices, up to ``limit`` tasks each. ``remaining`` counts every
        pending task left afterwards."""
        plans = await self._plans.sync_pending(limit=limit)
        prices = await self._prices.sync_pending(limit=limit)
        return SyncReport(
            completed=plans.completed + prices.completed,
            failed=plans.failed + prices.failed,
            remaining=prices.remaining,
        )

    async def reconcile(self, provider: str, *, fix: bool = False) -> CatalogReconcileReport:
        """Compare qzpay's plans and prices with ``provider``'s (plans only where it has plans,
        prices only where it keeps an object for them); with ``fix``, repair what is safe:
        link an unlinked record to its one copy there, create a missing copy, push drift of
        the fields qzpay owns, archive there what is archived here (qzpay.catalog.reconcile).
        An unknown provider is a ValidationError."""
        source = next((p for p in self._providers if p.name == provider), None)
        if source is None:
            fail("provider", "unknown_provider", f"no provider named {provider!r} is configured")
        plans, prices = self._plans, self._prices

        async def create_plan(name: str, plan: Plan) -> ProviderPlan:
            assert plans.remote is not None  # the provider has plans
            return await plans.remote.create_at(name, plan)

        async def create_price(name: str, price: Price) -> ProviderPrice:
            assert prices.remote is not None  # the provider has prices
            return await prices.remote.fanout(price).create_at(name, price)

        access = CatalogAccess(
            plans=RecordAccess(
                lambda: plans.iterate(page_size=MAX_PAGE_SIZE),
                partial(_link, plans.engine),
                create_plan,
                plans.archive,
            ),
            prices=RecordAccess(
                lambda: prices.iterate(page_size=MAX_PAGE_SIZE),
                partial(_link, prices.engine),
                create_price,
                prices.archive,
            ),
        )
        return await reconcile(access, prices.engine.storage, source, fix=fix)

    def _spec(self, spec: Spec) -> CatalogSpec:
        if isinstance(spec, CatalogSpec):
            return spec
        if isinstance(spec, str | os.PathLike):
            return load_spec(Path(spec), metadata_limit=self._metadata_limit)
        return parse_spec(spec, metadata_limit=self._metadata_limit)


def _price_arguments(price: PriceSpec) -> dict[str, Any]:
    """``prices.create``'s keyword arguments: a spec has the price's fields, by their names."""
    return {**vars(price), "metadata": dict(price.metadata)}


def _price_input(price: PriceSpec) -> PriceInput:
    return PriceInput(**_price_arguments(price))


async def _link(engine: Engine[T], record_id: str, provider: str, provider_id: str) -> object:
    """Store ``provider``'s id of a record (nothing sent), with the record's update event."""
    resource = engine.resource

    async def change(before: T) -> dict[str, Any]:
        return {resource.links_field: {**resource.links(before), provider: provider_id}}

    return await engine.change_locally(record_id, change)


async def _every(walk: KeysetWalk[T, Any]) -> list[T]:
    """Every record of a keyset walk (archived ones too: the diff needs them)."""
    return [record async for record in walk]
