"""SubscriptionService (``billing.subscriptions``): start, change, end and read subscriptions.

Which provider bills a subscription is decided once, at create: ``provider`` if given (it must
be configured and bill subscriptions), else the only configured provider (required when there
are several), else none. A free price (``unit_amount == 0``) at a provider that keeps no
object for it (MercadoPago needs a positive amount) is kept here only: ``provider`` is None.

Without a provider (:mod:`qzpay.subscriptions.local`) only free prices can be subscribed to
(a paid one is ConflictError ``provider_required``): the subscription is ``active`` at once
(a price's trial does not apply to a free price), its periods follow the price's interval,
and ``run_due`` rolls them over and ends those cancelled at period end. With a provider
(:mod:`qzpay.subscriptions.billed`) every change goes to the provider first and what it
answers is committed; its webhooks keep the copy current.

Every write commits the subscription with its event (``subscription.created``,
``subscription.updated`` with ``previous``, ``subscription.canceled``) and, when what the
customer may use changes, ``customer.entitlements_changed``, in one unit of work
(:mod:`qzpay.subscriptions.ledger`).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Never

from qzpay.blocking import KeysetWalk, PageRead
from qzpay.catalog import validation as v
from qzpay.catalog.models import Plan, Price
from qzpay.catalog.reads import (
    check_external_lookup,
    check_page_size,
    check_record_id,
    single_owner,
)
from qzpay.catalog.wiring import Wiring
from qzpay.customers.models import Customer
from qzpay.customers.validation import fail
from qzpay.engine.intents import fingerprint, replay
from qzpay.engine.pending import SyncReport
from qzpay.engine.unit_of_work import Units
from qzpay.errors import ConflictError, NotFoundError
from qzpay.limits import (
    DEFAULT_DUE_BATCH,
    DEFAULT_LIST_LIMIT,
    DEFAULT_PAGE_SIZE,
    DEFAULT_SYNC_BATCH,
)
from qzpay.providers.base import prices_of
from qzpay.providers.subscriptions import (
    SubscriptionAdapter,
    SubscriptionTerms,
    subscriptions_of,
)
from qzpay.storage.base import SubscriptionFilter
from qzpay.subscriptions import inputs
from qzpay.subscriptions.billed import Billed
from qzpay.subscriptions.due import DueReport, run_due
from qzpay.subscriptions.inbound import Outcome, apply_delivery
from qzpay.subscriptions.local import Local, ProviderBilled
from qzpay.subscriptions.models import Proration, Subscription, SubscriptionStatus
from qzpay.subscriptions.reconcile import SubscriptionReconcileReport, reconcile
from qzpay.subscriptions.resource import SUBSCRIPTIONS


class SubscriptionService:
    """``billing.subscriptions`` (see the module docstring)."""

    def __init__(self, wiring: Wiring) -> None:
        self._storage = wiring.storage
        self._units = Units(wiring.storage, wiring.bus)
        self._providers = {provider.name: provider for provider in wiring.providers}
        self._metadata_limit = wiring.metadata_limit
        self._local = Local(self._units)
        self._billed = Billed(self._units, self._providers, sync_errors=wiring.sync_errors)

    # -- create ---------------------------------------------------------------------------
    async def create(
        self,
        customer_id: str,
        price_id: str,
        /,
        *,
        quantity: int = 1,
        trial_days: int | None = None,
        provider: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        **unknown: Never,
    ) -> Subscription:
        """Subscribe a live customer to an active price. ``trial_days`` None applies the
        price's trial, 0 none. A deleted customer (ConflictError ``customer_deleted``), an
        archived price or plan (``price_archived``, ``plan_archived``), a paid price without a
        provider (``provider_required``) or a customer not linked at the provider
        (``customer_not_linked``) creates nothing anywhere.

        With ``idempotency_key``, a retry returns the subscription the first call created
        (no second one here or at the provider); other arguments with the same key are a
        ConflictError ``idempotency_key_reused``.
        """
        new = inputs.create(
            customer_id,
            price_id,
            quantity=quantity,
            trial_days=trial_days,
            provider=provider,
            metadata=metadata,
            idempotency_key=idempotency_key,
            unknown=unknown,
            metadata_limit=self._metadata_limit,
        )
        key = new.idempotency_key
        digest = None
        if key is not None:
            fields = vars(new).copy()
            del fields["idempotency_key"]
            digest = fingerprint(**fields)
            earlier = await self._replayed(key, digest)
            if earlier is not None:
                return earlier
        customer, price, plan = await self._subject(new.customer_id, new.price_id)
        billed_by = self._billed_by(new.provider, price)
        if billed_by is None:
            return await self._local.create(new, price, key, digest)
        trial = price.trial_days if new.trial_days is None else new.trial_days
        if billed_by not in customer.provider_customer_ids:
            raise ConflictError(
                f"customer {customer.id} is not linked at {billed_by}; link or sync it first",
                code="customer_not_linked",
            )
        record = self._local.new_record(new, price, provider=billed_by, trial_days=trial)
        terms = SubscriptionTerms(record, customer, price, plan, trial or None)
        return await self._billed.create(terms, key, digest)

    async def _replayed(self, key: str, digest: str) -> Subscription | None:
        async with self._storage.transaction() as tx:
            return await replay(SUBSCRIPTIONS, tx, key, digest)

    async def _subject(self, customer_id: str, price_id: str) -> tuple[Customer, Price, Plan]:
        """The customer, an active price and its active plan (committed reads)."""
        customer = await self._storage.get_customer(customer_id)
        if customer is None:
            raise NotFoundError(f"no customer {customer_id!r}")
        if customer.deleted_at is not None:
            raise ConflictError(
                f"customer {customer_id} is deleted and cannot subscribe",
                code="customer_deleted",
            )
        price, plan = await self._price_and_plan(price_id)
        return customer, price, plan

    async def _price_and_plan(self, price_id: str) -> tuple[Price, Plan]:
        price = await self._storage.get_price(price_id)
        if price is None:
            raise NotFoundError(f"no price {price_id!r}")
        if not price.active:
            raise ConflictError(
                f"price {price_id} is archived and cannot be subscribed to",
                code="price_archived",
            )
        plan = await self._storage.get_plan(price.plan_id)
        if plan is None or not plan.active:
            raise ConflictError(
                f"plan {price.plan_id} is archived and cannot be subscribed to",
                code="plan_archived",
            )
        return price, plan

    def _billed_by(self, requested: str | None, price: Price) -> str | None:
        """The provider that bills a new subscription to ``price`` (None: kept here)."""
        if requested is not None:
            provider = self._providers.get(requested)
            if provider is None or subscriptions_of(provider) is None:
                fail(
                    "provider",
                    "unknown_provider",
                    f"{requested!r} is not a configured provider that bills subscriptions",
                )
        elif len(self._providers) > 1:
            fail(
                "provider",
                "required",
                "several providers are configured: say which bills this subscription",
            )
        elif self._providers:
            provider = next(iter(self._providers.values()))
        else:
            provider = None
        if provider is None or subscriptions_of(provider) is None:
            chosen = None
        else:
            adapter = prices_of(provider)
            chosen = None if adapter is not None and not adapter.holds(price) else provider.name
        if chosen is None and price.unit_amount > 0:
            raise ConflictError(
                f"price {price.id} is paid: a provider must bill it (configure one)",
                code="provider_required",
            )
        return chosen

    # -- changes --------------------------------------------------------------------------
    async def cancel(self, subscription_id: str, /, *, at_period_end: bool = True) -> Subscription:
        """End the subscription when its current period ends (``cancel_at_period_end``; it
        keeps its access until then), or now (``at_period_end=False``: ``canceled``,
        ``subscription.canceled``). Cancelling an ended subscription changes nothing."""
        checked = check_record_id(subscription_id, "subscription_id")
        at_end = inputs.check_flag(at_period_end, "at_period_end")
        kept = await self._local.cancel(checked, at_period_end=at_end)
        if isinstance(kept, ProviderBilled):
            return await self._billed.cancel(kept.record, at_period_end=at_end)
        return kept

    async def uncancel(self, subscription_id: str, /) -> Subscription:
        """Keep a subscription cancelled at period end, before the period ends (ConflictError
        ``subscription_ended`` once it has ended). One not cancelled changes nothing."""
        kept = await self._local.uncancel(check_record_id(subscription_id, "subscription_id"))
        if isinstance(kept, ProviderBilled):
            return await self._billed.uncancel(kept.record)
        return kept

    async def change_price(
        self,
        subscription_id: str,
        price_id: str,
        /,
        *,
        quantity: int | None = None,
        proration: Proration = "create_prorations",
        **unknown: Never,
    ) -> Subscription:
        """Move the subscription to another active price (and plan), and ``quantity`` if
        given. Without a provider the new price must be free too. A provider that cannot make
        the change (MercadoPago: another currency or billing period) raises
        ``SubscriptionChangeUnsupported`` and nothing changes."""
        record = await self._committed(subscription_id)
        new_price_id, count, chosen = inputs.change_price(
            price_id, quantity=quantity, proration=proration, unknown=unknown
        )
        price, plan = await self._price_and_plan(new_price_id)
        if record.provider is None:
            if price.unit_amount > 0:
                raise ConflictError(
                    f"price {price.id} is paid and subscription {record.id} has no provider",
                    code="provider_required",
                )
            kept = await self._local.change_price(record.id, price, count)
            if isinstance(kept, ProviderBilled):  # pragma: no cover - its provider never changes
                return await self._billed.change_price(kept.record, price, plan, count, chosen)
            return kept
        return await self._billed.change_price(record, price, plan, count, chosen)

    async def pause(self, subscription_id: str, /) -> Subscription:
        """Stop billing and access (``paused`` grants nothing) until :meth:`resume`."""
        kept = await self._local.pause(check_record_id(subscription_id, "subscription_id"))
        if isinstance(kept, ProviderBilled):
            return await self._billed.pause(kept.record)
        return kept

    async def resume(self, subscription_id: str, /) -> Subscription:
        """Undo :meth:`pause`. A subscription that is not paused changes nothing."""
        kept = await self._local.resume(check_record_id(subscription_id, "subscription_id"))
        if isinstance(kept, ProviderBilled):
            return await self._billed.resume(kept.record)
        return kept

    async def _committed(self, subscription_id: str) -> Subscription:
        checked = check_record_id(subscription_id, "subscription_id")
        record = await self._storage.get_subscription(checked)
        if record is None:
            raise NotFoundError(f"no subscription {checked!r}")
        return record

    # -- background work ------------------------------------------------------------------
    async def run_due(
        self, now: datetime | None = None, *, limit: int = DEFAULT_DUE_BATCH
    ) -> DueReport:
        """Apply the due transitions of subscriptions kept without a provider: a period that
        has ended rolls over (the next starts exactly at the old end), and one cancelled at
        period end is ``canceled`` at that end. Safe to run on several hosts at once: each
        transition is applied once."""
        return await run_due(self._storage, self._local, now, batch=limit)

    async def sync_pending(self, *, limit: int = DEFAULT_SYNC_BATCH) -> SyncReport:
        """Finish subscription work left pending at the providers by failures or crashes."""
        return await self._billed.sync_pending(limit)

    async def apply_webhook(
        self, provider: str, provider_subscription_id: str, event_id: str
    ) -> Outcome:
        """Apply a verified delivery about ``provider_subscription_id`` (see
        :mod:`qzpay.subscriptions.inbound`): ``("applied", id)``, ``("ignored", None)`` or
        ``("duplicate", None)``."""
        adapter = self._billed.adapters.get(provider)
        if adapter is None:
            return "ignored", None
        return await apply_delivery(
            self._billed, provider, adapter, provider_subscription_id, event_id
        )

    async def reconcile(
        self, provider: str, /, *, fix: bool = False
    ) -> SubscriptionReconcileReport:
        """Compare this provider's subscriptions with qzpay's (see
        :mod:`qzpay.subscriptions.reconcile`); with ``fix``, apply the provider's copies over
        drift and adopt what qzpay can. The provider's state is never changed."""
        inputs.check_provider_name(provider)
        adapter = self._billed.adapters.get(provider)
        if adapter is None:
            fail("provider", "unknown_provider", f"{provider!r} bills no subscriptions here")
        return await reconcile(self._billed, provider, adapter, fix=inputs.check_flag(fix, "fix"))

    def adapter_of(self, provider: str) -> SubscriptionAdapter | None:
        """The adapter of a configured provider that bills subscriptions."""
        return self._billed.adapters.get(provider)

    # -- reads ----------------------------------------------------------------------------
    async def get(self, subscription_id: str, /) -> Subscription | None:
        """The subscription (ended ones included); None if unknown."""
        return await self._storage.get_subscription(
            check_record_id(subscription_id, "subscription_id")
        )

    async def get_by_external_id(
        self, provider_subscription_id: str, /, *, provider: str | None = None
    ) -> Subscription | None:
        """The subscription a provider knows by ``provider_subscription_id``; None if none."""
        checked = check_external_lookup(
            provider_subscription_id, provider, "provider_subscription_id"
        )
        found = await self._storage.find_subscriptions_by_provider_id(checked, provider=provider)
        return single_owner(found, checked)

    def list(
        self,
        /,
        *,
        customer_id: str | None = None,
        status: SubscriptionStatus | None = None,
        plan_id: str | None = None,
        price_id: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        offset: int = 0,
        **unknown: Never,
    ) -> PageRead[Subscription, SubscriptionFilter]:
        """Newest first, filtered by customer, status, plan and price."""

        def check() -> SubscriptionFilter:
            problems = v.Problems()
            problems.unknown_arguments(unknown)
            v.check_page(limit, offset, problems)
            filters = _filters(customer_id, status, plan_id, price_id, problems)
            problems.raise_if_any()
            return filters

        return PageRead(self._storage.list_subscriptions, check, limit=limit, offset=offset)

    def iterate(
        self,
        /,
        *,
        customer_id: str | None = None,
        status: SubscriptionStatus | None = None,
        plan_id: str | None = None,
        price_id: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        **unknown: Never,
    ) -> KeysetWalk[Subscription, SubscriptionFilter]:
        """Every match, newest first, a page at a time by keyset. Arguments are checked now."""
        problems = v.Problems()
        size = check_page_size(page_size, unknown, problems)
        filters = _filters(customer_id, status, plan_id, price_id, problems)
        problems.raise_if_any()
        return KeysetWalk(self.scan_page, filters, size)

    async def scan_page(
        self, filters: SubscriptionFilter, before_id: str | None, limit: int
    ) -> builtins.list[Subscription]:
        return await self._storage.scan_subscriptions(filters, before_id=before_id, limit=limit)


def _filters(
    customer_id: object, status: object, plan_id: object, price_id: object, problems: v.Problems
) -> SubscriptionFilter:
    query = inputs.query(
        customer_id=customer_id,
        status=status,
        plan_id=plan_id,
        price_id=price_id,
        problems=problems,
    )
    return SubscriptionFilter(
        customer_id=query.customer_id,
        status=query.status,
        plan_id=query.plan_id,
        price_id=query.price_id,
    )
