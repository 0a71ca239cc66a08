"""PriceService (``billing.prices``): the price rules, on the engine (qzpay.engine).

A price's amount, currency and interval never change (as at Stripe): to change a price,
create a new one and archive the old. Only ``lookup_key`` and ``metadata`` change, and
``active`` when it is archived. A lookup key names at most one active price: giving it to
another price moves it, in one unit of work, with ``price.updated`` for both.

Every write commits the price and its events (``price.created``, ``price.updated``,
``price.archived``) in one unit of work; handlers run after the commit.

Providers: prices are local records for now. With providers configured, ``billing.prices``
still writes locally only (the engine's NoProviders strategy) and pushes nothing to Stripe or
MercadoPago; the provider adapters come in a later step of issue 12.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any, Never

from qzpay._time import utcnow
from qzpay._unset import UNSET, Unset
from qzpay.catalog import inputs
from qzpay.catalog import validation as v
from qzpay.catalog.inputs import PriceInput
from qzpay.catalog.models import Interval, Price, archive_changes, price_ids
from qzpay.catalog.reads import (
    KeysetWalk,
    check_external_lookup,
    check_lookup_key,
    check_page_size,
    check_record_id,
    make_page,
    single_owner,
)
from qzpay.catalog.resource import PRICES
from qzpay.engine.core import Engine
from qzpay.engine.intents import fingerprint
from qzpay.engine.strategy import choose
from qzpay.engine.unit_of_work import UnitOfWork
from qzpay.events import EventBus
from qzpay.limits import DEFAULT_LIST_LIMIT, DEFAULT_PAGE_SIZE, MAX_METADATA_KEYS
from qzpay.page import Page
from qzpay.storage.base import PriceFilter, Storage


def new_price(plan_id: str, price: PriceInput) -> Price:
    now = utcnow()
    return Price.model_construct(
        id=price_ids.new(),
        plan_id=plan_id,
        currency=price.currency,
        unit_amount=price.unit_amount,
        interval=price.interval,
        interval_count=price.interval_count,
        trial_days=price.trial_days,
        lookup_key=price.lookup_key,
        metadata=price.metadata,
        active=True,
        provider_price_ids={},
        created_at=now,
        updated_at=now,
    )


class PriceService:
    """``billing.prices``: create, update, archive and read prices (see the module
    docstring)."""

    def __init__(
        self, storage: Storage, bus: EventBus, *, metadata_limit: int = MAX_METADATA_KEYS
    ) -> None:
        self._storage = storage
        self.engine = Engine(PRICES, storage, bus)
        self._strategy = choose(self.engine, None, "raise")  # local only, for now
        self._metadata_limit = metadata_limit

    # -- writes --------------------------------------------------------------------------
    async def create(
        self,
        /,
        plan_id: str,
        *,
        currency: str,
        unit_amount: int,
        interval: Interval,
        interval_count: int = 1,
        trial_days: int | None = None,
        lookup_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        **unknown: Never,
    ) -> Price:
        """Create a recurring price of a live plan. ``unit_amount`` counts the currency's
        minor unit (1999 is USD 19.99); ``currency`` is ISO 4217 in any case (stored upper
        case). An unknown plan is NotFoundError, an archived one ConflictError
        ``plan_archived``; a ``lookup_key`` an active price holds is ConflictError
        ``lookup_key_taken`` (move it with ``update``).

        With ``idempotency_key``, a retry returns the price the first call created (no second
        price, no second event); the same key with different arguments is a ConflictError.
        """
        plan_id_, price, key = inputs.price_create(
            plan_id,
            currency=currency,
            unit_amount=unit_amount,
            interval=interval,
            interval_count=interval_count,
            trial_days=trial_days,
            lookup_key=lookup_key,
            metadata=metadata,
            idempotency_key=idempotency_key,
            unknown=unknown,
            metadata_limit=self._metadata_limit,
        )
        digest = None
        if key is not None:
            digest = fingerprint(plan_id=plan_id_, **vars(price))
        return await self._strategy.create(new_price(plan_id_, price), key, digest)

    async def update(
        self,
        price_id: str,
        /,
        *,
        lookup_key: str | Unset | None = UNSET,
        metadata: Mapping[str, str | None] | Unset = UNSET,
        **unknown: Never,
    ) -> Price:
        """Change the lookup key (``None`` removes it) or merge metadata (a key set to ``None``
        is removed). A lookup key another active price holds moves to this one (if it is
        active): ``price.updated`` for both, in one transaction. An update that changes
        nothing writes nothing and emits no event; archived prices can be updated too."""
        price_id = check_record_id(price_id, "price_id")
        changes, patch = inputs.price_update(
            lookup_key=lookup_key, metadata=metadata, unknown=unknown
        )
        async with self.engine.unit() as work:
            before, holder = await self._load(work, price_id, changes.get("lookup_key"))
            merged = inputs.merge_metadata(before.metadata, patch, limit=self._metadata_limit)
            after = before.model_copy(update={**changes, "metadata": merged})
            if not before.changed_fields(after):
                return before
            if holder is not None and after.active:
                await self._change(work, holder, {"lookup_key": None})
            return await self._change(work, before, {**changes, "metadata": merged})

    async def archive(self, price_id: str) -> Price:
        """Archive the price (``active=False``, ``price.archived``); it keeps its lookup key,
        which another price may then take. Archiving an archived price changes nothing."""
        price_id = check_record_id(price_id, "price_id")
        async with self.engine.unit() as work:
            before = await self.engine.load(work.tx, price_id)
            if not before.active:
                return before
            return await self._change(work, before, archive_changes(utcnow()))

    async def _load(
        self, work: UnitOfWork, price_id: str, lookup_key: str | None
    ) -> tuple[Price, Price | None]:
        """The price read for change and, if ``lookup_key`` is another active price's, that
        price too (both locked, in id order, so two moves cannot deadlock)."""
        found = None if lookup_key is None else await work.tx.find_active_price(lookup_key)
        if found is None or found.id == price_id:
            return await self.engine.load(work.tx, price_id), None
        first, second = sorted((price_id, found.id))
        locked = {first: await work.tx.get_price(first), second: await work.tx.get_price(second)}
        holder = locked[found.id]
        if holder is None or not holder.active or holder.lookup_key != lookup_key:
            holder = None  # changed since: the write will tell if the key is still taken
        before = locked[price_id]
        if before is None:
            raise self.engine.not_found(price_id)
        return before, holder

    async def _change(self, work: UnitOfWork, before: Price, fields: Mapping[str, Any]) -> Price:
        now = max(utcnow(), before.updated_at)
        after = before.model_copy(update={**fields, "updated_at": now})
        await PRICES.update(work.tx, before, after)
        await work.emit(PRICES.update_event(before, after), after, before.changed_fields(after))
        return after

    async def replace(self, old_price_id: str, plan_id: str, price: PriceInput) -> Price:
        """For ``catalog.apply``: create ``price`` on ``plan_id`` in place of the active price
        ``old_price_id``, in one transaction: the old price gives up its lookup key
        (``price.updated``), the new one is created with it (``price.created``), and the old
        one is archived (``price.archived``)."""
        record = new_price(plan_id, price)
        async with self.engine.unit() as work:
            old = await self.engine.load(work.tx, old_price_id)
            if old.lookup_key is not None:
                old = await self._change(work, old, {"lookup_key": None})
            await PRICES.insert(work.tx, record, idempotency_key=None, fingerprint=None)
            await work.emit(PRICES.created, record)
            if old.active:
                await self._change(work, old, archive_changes(utcnow()))
        return record

    # -- reads ---------------------------------------------------------------------------
    async def get(self, price_id: str) -> Price | None:
        """The price, archived ones included; None if unknown."""
        return await self._storage.get_price(check_record_id(price_id, "price_id"))

    async def get_by_lookup_key(self, lookup_key: str) -> Price | None:
        """The active price holding ``lookup_key``; None if no active price does."""
        return await self._storage.get_price_by_lookup_key(check_lookup_key(lookup_key))

    async def get_by_external_id(
        self, provider_price_id: str, *, provider: str | None = None
    ) -> Price | None:
        """The price a provider knows by ``provider_price_id``; None if none is linked."""
        checked = check_external_lookup(provider_price_id, provider, "provider_price_id")
        found = await self._storage.find_prices_by_provider_id(checked, provider=provider)
        return single_owner(found, checked)

    async def list(
        self,
        /,
        *,
        plan_id: str | None = None,
        active: bool | None = None,
        currency: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        offset: int = 0,
        **unknown: Never,
    ) -> Page[Price]:
        """Newest first, filtered by plan, ``active`` and ``currency`` (in any case)."""
        f = inputs.price_list(
            plan_id=plan_id,
            active=active,
            currency=currency,
            limit=limit,
            offset=offset,
            unknown=unknown,
        )
        filters = PriceFilter(plan_id=f.plan_id, active=f.active, currency=f.currency)
        data, total = await self._storage.list_prices(filters, limit=limit, offset=offset)
        return make_page(data, total, limit, offset)

    def iterate(
        self,
        /,
        *,
        plan_id: str | None = None,
        active: bool | None = None,
        currency: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        **unknown: Never,
    ) -> KeysetWalk[Price]:
        """Every match, newest first, a page at a time by keyset. Arguments are checked now."""
        filters = price_scan_filters(plan_id, active, currency, page_size, unknown)
        return KeysetWalk(lambda before: self.scan_page(filters, before, page_size), page_size)

    async def scan_page(
        self, filters: PriceFilter, before_id: str | None, limit: int
    ) -> builtins.list[Price]:
        return await self._storage.scan_prices(filters, before_id=before_id, limit=limit)


def price_scan_filters(
    plan_id: object,
    active: object,
    currency: object,
    page_size: object,
    unknown: Mapping[str, object],
) -> PriceFilter:
    problems = v.Problems()
    check_page_size(page_size, unknown, problems)
    plan = None if plan_id is None else v.check_id(plan_id, problems, "plan_id")
    active_ = v.check_active(active, problems)
    code = None if currency is None else v.check_currency(currency, problems)
    problems.raise_if_any()
    return PriceFilter(plan_id=plan, active=active_, currency=code)
