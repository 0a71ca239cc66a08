"""PriceService (``billing.prices``): the price rules, on the engine (qzpay.engine).

A price's amount, currency and interval never change (as at Stripe): to change a price,
create a new one and archive the old. Only ``lookup_key`` and ``metadata`` change, and
``active`` when it is archived. A lookup key names at most one active price: giving it to
another price moves it, in one unit of work, with ``price.updated`` for both.

Every write commits the price and its events (``price.created``, ``price.updated``,
``price.archived``) in one unit of work; handlers run after the commit.

Providers: with providers configured, a price is kept at every provider that has prices and
holds it (a Stripe Price under the plan's Product; a MercadoPago ``preapproval_plan``, none for
a free price) with the same guarantees as customers (``provider_sync_errors``: "raise" or
"log", ``sync_pending``); the Remote is :class:`qzpay.catalog.remote.PriceRemote`. A price
whose plan is not yet at a provider that has plans is refused with
:class:`~qzpay.catalog.remote.PlanNotAtProvider`. With providers, moving a lookup key and
``replace`` are done step by step (each step at the providers, then committed), not in one
transaction: the holder gives up the key first, so the key is never held twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, Never

from qzpay._time import utcnow
from qzpay._unset import UNSET, Unset
from qzpay.blocking import KeysetWalk, PageRead
from qzpay.catalog import inputs
from qzpay.catalog.inputs import PriceInput
from qzpay.catalog.models import Interval, Price, archive_changes, price_ids
from qzpay.catalog.reads import check_lookup_key, check_record_id
from qzpay.catalog.record_service import Reads, RecordService
from qzpay.catalog.remote import price_remote
from qzpay.catalog.resource import PRICES, live_plan
from qzpay.catalog.wiring import Wiring
from qzpay.engine.intents import fingerprint
from qzpay.engine.unit_of_work import UnitOfWork, retrying
from qzpay.errors import ConflictError
from qzpay.limits import (
    DEFAULT_LIST_LIMIT,
    DEFAULT_PAGE_SIZE,
)
from qzpay.providers.base import PaymentProvider, ProviderPrice, prices_of
from qzpay.storage.base import PriceFilter


def new_price(plan_id: str, price: PriceInput) -> Price:
    now = utcnow()
    return Price.model_construct(
        id=price_ids.new(),
        plan_id=plan_id,
        **vars(price),
        active=True,
        provider_price_ids={},
        created_at=now,
        updated_at=now,
    )


class PriceService(RecordService[Price, PriceFilter]):
    """``billing.prices``: create, update, archive and read prices (see the module
    docstring)."""

    def __init__(self, wiring: Wiring) -> None:
        storage = wiring.storage
        self.remote = price_remote(wiring.providers, storage)
        reads = Reads(
            storage.get_price,
            storage.find_prices_by_provider_id,
            storage.list_prices,
            storage.scan_prices,
        )
        super().__init__(PRICES, wiring, self.remote, reads)

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
        record = new_price(plan_id_, price)
        if self.remote is not None:
            await self._check_insertable(record, key)
        return await self._strategy.create(record, key, digest)

    async def _check_insertable(self, record: Price, idempotency_key: str | None) -> None:
        """With providers, what the insert would refuse (unknown or archived plan, lookup key
        taken) is refused before anything is sent; the insert checks again at commit. A retry
        of a committed create is left to replay."""
        async with self._storage.transaction() as tx:
            if idempotency_key is not None and await PRICES.find_created(tx, idempotency_key):
                return
            await live_plan(tx, record.plan_id)
            if record.lookup_key is not None:
                holder = await tx.find_active_price(record.lookup_key)
                if holder is not None:
                    raise ConflictError(
                        f"lookup key {record.lookup_key!r} is held by active price {holder.id}",
                        code="lookup_key_taken",
                    )

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
        if self.remote is not None:
            return await self._update_at_providers(price_id, changes, patch)

        async def block(work: UnitOfWork) -> Price:
            before, holder = await self._load(work, price_id, changes.get("lookup_key"))
            fields = self._with_metadata(before, changes, patch)
            after = before.model_copy(update=fields)
            if not before.changed_fields(after):
                return before
            if holder is not None and after.active:
                await PRICES.change(work, holder, {"lookup_key": None})
            return await PRICES.change(work, before, fields)

        return await retrying(self.engine.unit, block)

    async def archive(self, price_id: str) -> Price:
        """Archive the price (``active=False``, ``price.archived``); it keeps its lookup key,
        which another price may then take. Archiving an archived price changes nothing."""
        price_id = check_record_id(price_id, "price_id")
        if self.remote is not None:
            return await self._archive_at_providers(price_id)
        return await self._archive_here(price_id)

    async def _update_at_providers(
        self, price_id: str, changes: Mapping[str, Any], patch: Mapping[str, str | None]
    ) -> Price:
        """``update`` with providers: a lookup key another active price holds is first taken
        from it (at the providers, then committed), then this price changes."""
        wanted = changes.get("lookup_key")
        if wanted is not None:
            holder = await self._storage.get_price_by_lookup_key(wanted)
            target = await self._storage.get_price(price_id)
            if target is None:
                raise self.engine.not_found(price_id)
            if holder is not None and holder.id != price_id and target.active:

                async def give_up(before: Price) -> dict[str, Any]:
                    return {"lookup_key": None} if before.lookup_key == wanted else {}

                await self._strategy.modify(holder.id, give_up, remote_visible=True)

        async def change(before: Price) -> dict[str, Any]:
            return self._with_metadata(before, changes, patch)

        return await self._strategy.modify(price_id, change, remote_visible=True)

    # -- changes that come from a provider ----------------------------------------------
    async def apply_remote(
        self,
        price_id: str,
        remote: ProviderPrice | None,
        *,
        provider: PaymentProvider,
        webhook_event_id: str | None = None,
    ) -> Price | None:
        """Take the provider's copy (a webhook's re-fetch) as the truth for the fields it can
        change: active flag, lookup key, metadata. A price deactivated (or gone) there is
        archived here (``price.archived``); an archived price is never reactivated by a
        provider. Returns the stored price, or None for a duplicate delivery."""
        adapter = prices_of(provider)
        assert adapter is not None
        if remote is not None and remote.active and remote.lookup_key is not None:
            await self._release_lookup_key(remote.lookup_key, price_id)
        return await self._take_remote(
            price_id, remote, adapter.merge_remote, provider=provider, delivery=webhook_event_id
        )

    async def _release_lookup_key(self, lookup_key: str, taker_id: str) -> None:
        """A provider moved ``lookup_key`` to the price ``taker_id`` (Stripe's
        ``transfer_lookup_key``): the active price holding it here gives it up first, locally
        (``price.updated``), as it already has at the provider. Without this, applying the
        taker's delivery before the holder's would break the one-active-holder rule."""
        holder = await self._storage.get_price_by_lookup_key(lookup_key)
        if holder is None or holder.id == taker_id:
            return
        taker = await self._storage.get_price(taker_id)
        if taker is None or not taker.active:
            return  # an archived price never takes a key here

        async def give_up(before: Price) -> dict[str, Any]:
            return {"lookup_key": None} if before.lookup_key == lookup_key else {}

        await self.engine.change_locally(holder.id, give_up)

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

    async def replace(self, old_price_id: str, plan_id: str, price: PriceInput) -> Price:
        """For ``catalog.apply``: create ``price`` on ``plan_id`` in place of the active price
        ``old_price_id``, in one transaction: the old price gives up its lookup key
        (``price.updated``), the new one is created with it (``price.created``), and the old
        one is archived (``price.archived``)."""
        record = new_price(plan_id, price)
        if self.remote is not None:
            return await self._replace_at_providers(old_price_id, record)
        async with self.engine.unit() as work:
            old = await self.engine.load(work.tx, old_price_id)
            if old.lookup_key is not None:
                old = await PRICES.change(work, old, {"lookup_key": None})
            await PRICES.insert(work.tx, record, idempotency_key=None, fingerprint=None)
            await work.emit(PRICES.created, record)
            if old.active:
                await PRICES.change(work, old, archive_changes(utcnow()))
        return record

    async def _replace_at_providers(self, old_price_id: str, record: Price) -> Price:
        """``replace`` with providers, step by step: the old price gives up its lookup key,
        the new one is created with it, the old one is archived (each at the providers, then
        committed)."""

        async def give_up(before: Price) -> dict[str, Any]:
            return {"lookup_key": None}

        await self._strategy.modify(old_price_id, give_up, remote_visible=True)
        created = await self._strategy.create(record, None, None)
        await self.archive(old_price_id)
        return created

    # -- reads ---------------------------------------------------------------------------
    async def get(self, price_id: str) -> Price | None:
        """The price, archived ones included; None if unknown."""
        return await self._reads.get(check_record_id(price_id, "price_id"))

    async def get_by_lookup_key(self, lookup_key: str) -> Price | None:
        """The active price holding ``lookup_key``; None if no active price does."""
        return await self._storage.get_price_by_lookup_key(check_lookup_key(lookup_key))

    async def get_by_external_id(
        self, provider_price_id: str, *, provider: str | None = None
    ) -> Price | None:
        """The price a provider knows by ``provider_price_id``; None if none is linked."""
        return await self._by_external_id(provider_price_id, provider, field="provider_price_id")

    def list(
        self,
        /,
        *,
        plan_id: str | None = None,
        active: bool | None = None,
        currency: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        offset: int = 0,
        **unknown: Never,
    ) -> PageRead[Price, PriceFilter]:
        """Newest first, filtered by plan, ``active`` and ``currency`` (in any case)."""
        check = partial(
            inputs.price_list,
            plan_id=plan_id,
            active=active,
            currency=currency,
            limit=limit,
            offset=offset,
            unknown=unknown,
        )
        return self._page(check, limit, offset)

    def iterate(
        self,
        /,
        *,
        plan_id: str | None = None,
        active: bool | None = None,
        currency: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        **unknown: Never,
    ) -> KeysetWalk[Price, PriceFilter]:
        """Every match, newest first, a page at a time by keyset. Arguments are checked now."""
        filters = inputs.price_scan_filters(plan_id, active, currency, page_size, unknown)
        return self._walk(filters, page_size)
