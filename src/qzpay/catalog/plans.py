"""PlanService (``billing.plans``): the plan rules, on the engine (qzpay.engine).

Every write commits the plan and its event (``plan.created``, ``plan.updated``,
``plan.archived``) in one unit of work; handlers run after the commit. Archiving a plan
archives its active prices in the same unit of work (``price.archived`` each), and an archived
plan can neither change nor get new prices (ConflictError ``plan_archived``).

Providers: with providers configured, a plan is kept at every provider that has plans (a
Stripe Product; MercadoPago has no plan object) with the same guarantees as customers
(qzpay.engine.strategy, ``provider_sync_errors``): in "raise" mode an intent first,
deterministic idempotency keys, adoption after an ambiguous failure, compensation across
providers; in "log" mode a local commit and a task for ``sync_pending``. The fan-out is
:func:`qzpay.catalog.remote.plan_remote`. With providers, archiving archives the plan's
active prices first (each at its providers, in its own transaction), then the plan; a retry
after a failure part-way finishes the job. Without providers all of it is one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Never

from qzpay._time import utcnow
from qzpay._unset import UNSET, Unset
from qzpay.blocking import KeysetWalk, PageRead
from qzpay.catalog import inputs
from qzpay.catalog.inputs import plan_scan_filters as plan_scan_filters  # the console's import
from qzpay.catalog.models import Plan, archive_changes, plan_ids
from qzpay.catalog.prices import PriceService
from qzpay.catalog.reads import check_record_id, check_slug
from qzpay.catalog.record_service import Reads, RecordService
from qzpay.catalog.remote import plan_remote
from qzpay.catalog.resource import PLANS, PRICES, plan_archived
from qzpay.catalog.wiring import Wiring
from qzpay.engine.intents import fingerprint
from qzpay.engine.unit_of_work import UnitOfWork
from qzpay.errors import ConflictError
from qzpay.limits import (
    DEFAULT_LIST_LIMIT,
    DEFAULT_PAGE_SIZE,
)
from qzpay.providers.base import PaymentProvider, ProviderPlan, plans_of
from qzpay.storage.base import PlanFilter


class PlanService(RecordService[Plan, PlanFilter]):
    """``billing.plans``: create, update, archive and read plans (see the module docstring)."""

    def __init__(self, wiring: Wiring, *, prices: PriceService | None = None) -> None:
        self.remote = plan_remote(wiring.providers)
        storage = wiring.storage
        reads = Reads(
            storage.get_plan,
            storage.find_plans_by_provider_id,
            storage.list_plans,
            storage.scan_plans,
        )
        super().__init__(PLANS, wiring, self.remote, reads)
        self._prices = prices

    # -- writes --------------------------------------------------------------------------
    async def create(
        self,
        /,
        key: str,
        name: str,
        *,
        description: str | None = None,
        entitlements: Iterable[str] = (),
        limits: Mapping[str, int] | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        **unknown: Never,
    ) -> Plan:
        """Create a plan. ``key`` is its unique stable slug (``"pro"``); ``entitlements`` are
        feature keys (de-duplicated, order kept) and ``limits`` maps a limit to an integer
        ≥ 0. A key another plan has (archived ones included) is ConflictError
        ``plan_key_taken``.

        With ``idempotency_key``, a retry returns the plan the first call created (no second
        plan, no second event); the same key with different arguments is a ConflictError.
        """
        plan, key_ = inputs.plan_create(
            key,
            name,
            description=description,
            entitlements=entitlements,
            limits=limits,
            metadata=metadata,
            idempotency_key=idempotency_key,
            unknown=unknown,
            metadata_limit=self._metadata_limit,
        )
        now = utcnow()
        record = Plan.model_construct(
            id=plan_ids.new(),
            **vars(plan),
            active=True,
            provider_plan_ids={},
            created_at=now,
            updated_at=now,
        )
        digest = None if key_ is None else fingerprint(**vars(plan))
        if self.remote is not None:
            await self._check_key_free(record, key_)
        return await self._strategy.create(record, key_, digest)

    async def _check_key_free(self, record: Plan, idempotency_key: str | None) -> None:
        """With providers, a plan key already taken is refused before anything is sent (the
        insert checks again at commit). A retry of a committed create is left to replay."""
        async with self._storage.transaction() as tx:
            if idempotency_key is not None and await PLANS.find_created(tx, idempotency_key):
                return
        if await self._storage.get_plan_by_key(record.key) is not None:
            raise ConflictError(
                f"plan key {record.key!r} is taken by another plan", code="plan_key_taken"
            )

    async def update(
        self,
        plan_id: str,
        /,
        *,
        name: str | Unset = UNSET,
        description: str | Unset | None = UNSET,
        entitlements: Iterable[str] | Unset = UNSET,
        limits: Mapping[str, int] | Unset = UNSET,
        metadata: Mapping[str, str | None] | Unset = UNSET,
        **unknown: Never,
    ) -> Plan:
        """Change the given fields. ``entitlements`` and ``limits`` are replaced whole;
        ``description=None`` clears it; ``metadata`` is merged (a key set to ``None`` is
        removed). An update that changes nothing writes nothing and emits no event. An
        archived plan cannot change (ConflictError ``plan_archived``)."""
        plan_id = check_record_id(plan_id, "plan_id")
        changes, patch = inputs.plan_update(
            name=name,
            description=description,
            entitlements=entitlements,
            limits=limits,
            metadata=metadata,
            unknown=unknown,
        )

        async def change(before: Plan) -> dict[str, Any]:
            if not before.active:
                raise plan_archived(before.id)
            return self._with_metadata(before, changes, patch)

        return await self._strategy.modify(plan_id, change, remote_visible=True)

    async def archive(self, plan_id: str) -> Plan:
        """Archive the plan (``active=False``) and its active prices, in one transaction:
        ``plan.archived``, then ``price.archived`` for each price. Archiving an archived plan
        changes nothing. Archived plans stay readable and cannot get new prices."""
        plan_id = check_record_id(plan_id, "plan_id")
        if self._prices is not None and self._prices.remote is not None:
            return await self._archive_with_prices(plan_id, self._prices)
        if self.remote is not None:
            return await self._archive_with_prices(plan_id, None)
        return await self._archive_here(plan_id, then=lambda work: archive_prices(work, plan_id))

    async def _archive_with_prices(self, plan_id: str, prices: PriceService | None) -> Plan:
        """Archive with providers: the active prices first (each at its providers, through the
        price service), then the plan (Stripe: the Product made inactive), then any price
        added meanwhile. Each step commits on its own; a retry finishes what a failure left."""
        current = await self._storage.get_plan(plan_id)
        if current is None:
            raise self.engine.not_found(plan_id)
        await self._archive_prices(plan_id, prices)
        archived = await self._archive_at_providers(plan_id)
        await self._archive_prices(plan_id, prices)
        return archived

    async def _archive_prices(self, plan_id: str, prices: PriceService | None) -> None:
        if prices is not None:
            async with self._storage.transaction() as tx:
                active = await tx.active_prices(plan_id)
            for price in active:
                await prices.archive(price.id)
            return
        async with self.engine.unit() as work:
            await archive_prices(work, plan_id)

    # -- changes that come from a provider ----------------------------------------------
    async def apply_remote(
        self,
        plan_id: str,
        remote: ProviderPlan | None,
        *,
        provider: PaymentProvider,
        webhook_event_id: str | None = None,
    ) -> Plan | None:
        """Take the provider's copy (a webhook's re-fetch) as the truth for the fields it can
        change: name, description, active flag, metadata. A product deleted there (None, or
        ``deleted``) archives the plan here; a plan archived here is never reactivated by a
        provider. Archiving this way archives the plan's active prices too (pushed to the
        providers). Returns the stored plan, or None for a duplicate delivery."""
        adapter = plans_of(provider)
        assert adapter is not None
        there = None if remote is None or remote.deleted else remote
        applied = await self._take_remote(
            plan_id, there, adapter.merge_remote, provider=provider, delivery=webhook_event_id
        )
        if applied is not None and not applied.active:
            await self._archive_prices(plan_id, self._prices)
        return applied

    # -- reads ---------------------------------------------------------------------------
    async def get(self, plan_id: str) -> Plan | None:
        """The plan, archived ones included; None if unknown."""
        return await self._reads.get(check_record_id(plan_id, "plan_id"))

    async def get_by_key(self, key: str) -> Plan | None:
        """The plan with this key (archived ones included); None if none has it."""
        return await self._storage.get_plan_by_key(check_slug(key, "key"))

    async def get_by_external_id(
        self, provider_plan_id: str, *, provider: str | None = None
    ) -> Plan | None:
        """The plan a provider knows by ``provider_plan_id``; None if none is linked."""
        return await self._by_external_id(provider_plan_id, provider, field="provider_plan_id")

    def list(
        self,
        /,
        *,
        active: bool | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        offset: int = 0,
        **unknown: Never,
    ) -> PageRead[Plan, PlanFilter]:
        """Newest first; ``active=True`` only live plans, ``False`` only archived ones."""

        def check() -> PlanFilter:
            checked = inputs.plan_list(active=active, limit=limit, offset=offset, unknown=unknown)
            return PlanFilter(active=checked)

        return self._page(check, limit, offset)

    def iterate(
        self,
        /,
        *,
        active: bool | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        **unknown: Never,
    ) -> KeysetWalk[Plan, PlanFilter]:
        """Every match, newest first, a page at a time by keyset. Arguments are checked now."""
        return self._walk(plan_scan_filters(active, page_size, unknown), page_size)


async def archive_prices(work: UnitOfWork, plan_id: str) -> None:
    """Archive the plan's active prices in ``work`` (the plan read for change already, so no
    price can be added meanwhile), each with its ``price.archived``."""
    for listed in await work.tx.active_prices(plan_id):
        before = await work.tx.get_price(listed.id)
        if before is not None and before.active:
            await PRICES.change(work, before, archive_changes(utcnow()))
