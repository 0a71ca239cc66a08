"""Subscriptions a provider bills: every change goes to the provider first, and what the
provider answers is committed (it owns the billing state).

Create (the same guarantees as customers): an **intent** (a sync task invisible to reads,
leased by this process) is committed before the provider is called; the call carries a
deterministic idempotency key (:func:`qzpay.engine.keys.create_key` of the subscription id);
an ambiguous failure (timeout, dropped answer, 5xx) looks the subscription up at the provider
by its qzpay id and adopts it, never creating a second one; then the subscription as the
provider holds it is committed with its events while the intent is dropped, in one
transaction. A clean failure drops the intent and raises. An intent left behind (a crash, an
ambiguous failure with nothing found yet) is finished by ``sync_pending``: adopted if the
provider has it, else created with the same key when the caller gave an idempotency key (it
may retry), else dropped (the caller was told it failed).

With ``provider_sync_errors="log"`` a create commits the subscription (``incomplete``, no
provider id yet) with a task first, then calls the provider; a failure is logged and the task
left for ``sync_pending``. Changes (cancel, uncancel, change price, pause, resume) always go to
the provider first in both modes: the provider owns the state, so a change it has not accepted
is never stored here. After an ambiguous failure a ``push`` task is left so ``sync_pending``
re-reads the provider's copy.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from qzpay._time import utcnow
from qzpay.catalog.models import Plan, Price
from qzpay.engine.fanout import found_after
from qzpay.engine.intents import open_intent
from qzpay.engine.keys import create_key, fresh_key
from qzpay.engine.leases import Leases
from qzpay.engine.pending import SyncReport, run_claimed
from qzpay.engine.strategy import SyncErrors
from qzpay.engine.tasks import TaskBook
from qzpay.engine.unit_of_work import Units
from qzpay.errors import ConflictError, NotFoundError, ProviderSyncError
from qzpay.providers.base import PaymentProvider
from qzpay.providers.subscriptions import (
    PriceChange,
    ProviderSubscription,
    SubscriptionAdapter,
    SubscriptionTerms,
    subscriptions_of,
)
from qzpay.storage.base import SyncTask
from qzpay.subscriptions import ledger
from qzpay.subscriptions.local import live
from qzpay.subscriptions.models import ENDED, Proration, Subscription
from qzpay.subscriptions.remote_state import absorb
from qzpay.subscriptions.resource import SUBSCRIPTIONS

logger = logging.getLogger("qzpay.sync")

Call = Callable[[SubscriptionAdapter, str, str], Awaitable[ProviderSubscription]]
"""``call(adapter, provider_subscription_id, idempotency_key)``: one change at the provider."""


def requested_trial(record: Subscription) -> int | None:
    """The trial, in days, a create not yet answered by the provider asked for (carried in
    the intent's ``trial_start``/``trial_end``; None: no trial)."""
    if record.trial_start is None or record.trial_end is None:
        return None
    return round((record.trial_end - record.trial_start).total_seconds() / 86_400) or None


class Billed:
    """The provider side of subscriptions (see the module docstring)."""

    def __init__(
        self,
        units: Units,
        providers: Mapping[str, PaymentProvider],
        *,
        sync_errors: SyncErrors,
    ) -> None:
        self.units = units
        self.storage = units.storage
        self.adapters: dict[str, SubscriptionAdapter] = {}
        for name, provider in providers.items():
            adapter = subscriptions_of(provider)
            if adapter is not None:
                self.adapters[name] = adapter
        self.tasks = TaskBook(SUBSCRIPTIONS, Leases())
        self.sync_errors = sync_errors

    def adapter(self, record: Subscription) -> SubscriptionAdapter:
        if record.provider is None or record.provider not in self.adapters:
            raise ConflictError(
                f"subscription {record.id} is billed by {record.provider!r}, which is not "
                "configured here",
                code="provider_not_configured",
            )
        return self.adapters[record.provider]

    # -- create ---------------------------------------------------------------------------
    async def create(
        self, terms: SubscriptionTerms, key: str | None, digest: str | None
    ) -> Subscription:
        if self.sync_errors == "log":
            return await self._create_logged(terms, key, digest)
        tasks, record = self.tasks, terms.subscription
        fresh = tasks.new(record, "create", committed=False, key=key, fingerprint=digest)
        task = await open_intent(self.units, tasks, SUBSCRIPTIONS, fresh, key, digest)
        if not isinstance(task, SyncTask):
            return task  # replayed
        target = tasks.record(task)
        terms = replace(terms, subscription=target)
        with tasks.leases.working_on(target.id):
            try:
                remote = await self._create_at(terms, look_first=task is not fresh)
            except ProviderSyncError as failure:
                # Only a fresh create that failed cleanly left nothing at the provider; a
                # resumed one (an earlier attempt may have landed) stays for sync_pending.
                async with self.units() as work:
                    if task is fresh and not failure.ambiguous:
                        await tasks.drop(work.tx, target.id)
                    else:
                        await tasks.release(work.tx, task, failure)
                raise
            return await self._commit_intent(task, target, remote)

    async def _create_at(
        self, terms: SubscriptionTerms, *, look_first: bool
    ) -> ProviderSubscription:
        """Create at the provider, adopting what an earlier attempt made (``look_first``)
        or what an ambiguous failure may have made."""
        adapter = self.adapter(terms.subscription)
        if look_first:
            found = await adapter.find(terms)
            if found is not None:
                return found
        try:
            return await adapter.create(terms, idempotency_key=create_key(terms.subscription.id))
        except ProviderSyncError as failure:
            if not failure.ambiguous:
                raise
            found = await found_after(failure, adapter.find(terms))
            logger.info("adopted %s after an ambiguous create", terms.subscription.id)
            return found

    async def _commit_intent(
        self, task: SyncTask, record: Subscription, remote: ProviderSubscription
    ) -> Subscription:
        """Commit the subscription as the provider holds it, dropping the intent; if the
        customer was deleted meanwhile, cancel it at the provider instead."""
        after = await absorb(self.storage, record, remote, now=utcnow())
        try:
            async with self.units() as work:
                stored = await ledger.write(
                    work,
                    None,
                    after,
                    idempotency_key=task.idempotency_key,
                    fingerprint=task.request_fingerprint,
                )
                await self.tasks.drop(work.tx, record.id)
        except ConflictError as refused:
            if refused.code != "customer_deleted":
                raise
            await self._undo(record, remote.id)
            raise
        return stored

    async def _undo(self, record: Subscription, provider_subscription_id: str) -> None:
        adapter = self.adapter(record)
        await adapter.cancel(
            provider_subscription_id,
            at_period_end=False,
            idempotency_key=fresh_key("cancel", provider_subscription_id),
        )
        async with self.units() as work:
            await self.tasks.drop(work.tx, record.id)

    async def _create_logged(
        self, terms: SubscriptionTerms, key: str | None, digest: str | None
    ) -> Subscription:
        """ "log" mode: commit first (``incomplete``, with a task), then create at the
        provider; a failure is logged and left to ``sync_pending``."""
        record = terms.subscription
        task = self.tasks.new(record, "create", committed=True)
        stored = await ledger.insert_new(self.units, record, key, digest, task=task)
        if stored is not record:
            return stored  # replayed
        with self.tasks.leases.working_on(record.id):
            try:
                remote = await self._create_at(terms, look_first=False)
            except ProviderSyncError as failure:
                logger.warning(
                    "provider create of %s failed (%s); it stays pending for sync_pending",
                    record.id,
                    failure,
                )
                async with self.units() as work:
                    await self.tasks.give_up(work.tx, task, failure)
                return record
            applied = await self.apply(record.id, remote, finishing=task)
            assert applied is not None  # no delivery: never a duplicate
            return applied

    # -- changes --------------------------------------------------------------------------
    async def _change(
        self, record: Subscription, operation: str, call: Call, price: Price | None = None
    ) -> Subscription:
        adapter = self.adapter(record)
        remote_id = record.provider_subscription_id
        if remote_id is None:
            raise ConflictError(
                f"subscription {record.id} is not at {record.provider} yet; run sync_pending",
                code="operation_in_progress",
            )
        try:
            remote = await call(adapter, remote_id, fresh_key(operation, remote_id))
        except ProviderSyncError as failure:
            if failure.ambiguous:
                async with self.units() as work:
                    await work.tx.put_sync_task(
                        self.tasks.released(self.tasks.new(record, "push", committed=True), failure)
                    )
            raise
        applied = await self.apply(record.id, remote, price=price)
        assert applied is not None
        return applied

    async def cancel(self, record: Subscription, *, at_period_end: bool) -> Subscription:
        if record.status in ENDED or (at_period_end and record.cancel_at_period_end):
            return record
        return await self._change(
            record,
            "cancel",
            lambda adapter, remote_id, key: adapter.cancel(
                remote_id, at_period_end=at_period_end, idempotency_key=key
            ),
        )

    async def uncancel(self, record: Subscription) -> Subscription:
        if live(record).cancel_at_period_end:
            return await self._change(
                record,
                "uncancel",
                lambda a, remote_id, key: a.uncancel(remote_id, idempotency_key=key),
            )
        return record

    async def change_price(
        self,
        record: Subscription,
        price: Price,
        plan: Plan,
        quantity: int | None,
        proration: Proration,
    ) -> Subscription:
        count = live(record).quantity if quantity is None else quantity
        return await self._change(
            record,
            "change-price",
            lambda adapter, remote_id, key: adapter.change_price(
                remote_id, PriceChange(price, plan, count, proration), idempotency_key=key
            ),
            price,
        )

    async def pause(self, record: Subscription) -> Subscription:
        if live(record).status == "paused":
            return record
        return await self._change(
            record, "pause", lambda a, remote_id, key: a.pause(remote_id, idempotency_key=key)
        )

    async def resume(self, record: Subscription) -> Subscription:
        if live(record).status != "paused":
            return record
        return await self._change(
            record, "resume", lambda a, remote_id, key: a.resume(remote_id, idempotency_key=key)
        )

    # -- the provider's word --------------------------------------------------------------
    async def apply(
        self,
        subscription_id: str,
        remote: ProviderSubscription,
        *,
        delivery: tuple[str, str] | None = None,
        finishing: SyncTask | None = None,
        price: Price | None = None,
    ) -> Subscription | None:
        """Store the provider's copy over the subscription, with its events. With
        ``delivery`` (provider, event id) the delivery is recorded in the same transaction
        and a duplicate changes nothing (None). ``finishing``: the task this completes (its
        drop is part of the commit)."""
        async with self.units() as work:
            tx = work.tx
            if delivery is not None and not await tx.record_webhook_event(
                delivery[0], delivery[1], utcnow()
            ):
                return None
            before = await tx.get_subscription(subscription_id)
            if before is None:
                raise NotFoundError(f"no subscription {subscription_id!r}")
            now = max(utcnow(), before.updated_at)
            after = await absorb(self.storage, before, remote, now=now, price=price)
            stored = await ledger.write(work, before, after)
            if finishing is not None:
                await self.tasks.drop_unless_newer(tx, finishing)
        return stored

    # -- sync_pending ---------------------------------------------------------------------
    async def sync_pending(self, limit: int) -> SyncReport:
        if not self.adapters:
            return SyncReport(completed=0, failed=0, remaining=0)
        return await run_claimed(self.units, self.tasks, SUBSCRIPTIONS.name, limit, self._settle)

    async def _settle(self, task: SyncTask) -> None:
        record = self.tasks.record(task)
        terms = await self._terms(record)
        if not task.committed:
            if terms is None or (task.idempotency_key is None and await self._absent(terms)):
                async with self.units() as work:  # the caller was told it failed
                    await self.tasks.drop(work.tx, record.id)
                return
            remote = await self._create_at(terms, look_first=True)
            await self._commit_intent(task, record, remote)
            return
        stored = await self.storage.get_subscription(record.id)
        if stored is None:  # pragma: no cover - committed tasks belong to stored records
            async with self.units() as work:
                await self.tasks.drop(work.tx, record.id)
            return
        adapter = self.adapter(stored)
        if stored.provider_subscription_id is None:
            if terms is None:
                raise ProviderSyncError(
                    f"subscription {record.id} cannot be created: its customer or price is gone",
                    provider=str(stored.provider),
                    operation="create_subscription",
                )
            found: ProviderSubscription | None = await self._create_at(
                replace(terms, subscription=stored), look_first=True
            )
        else:
            found = await adapter.retrieve(stored.provider_subscription_id)
            if found is None:
                raise ProviderSyncError(
                    f"subscription {record.id} is gone at {stored.provider}",
                    provider=str(stored.provider),
                    operation="retrieve_subscription",
                )
        assert found is not None
        await self.apply(record.id, found, finishing=task)

    async def _absent(self, terms: SubscriptionTerms) -> bool:
        """Whether the provider holds no subscription for this intent (an unkeyed intent
        whose create may have landed is adopted instead of dropped)."""
        return await self.adapter(terms.subscription).find(terms) is None

    async def _terms(self, record: Subscription) -> SubscriptionTerms | None:
        customer = await self.storage.get_customer(record.customer_id)
        price = await self.storage.get_price(record.price_id)
        plan = await self.storage.get_plan(record.plan_id)
        if customer is None or price is None or plan is None:
            return None
        return SubscriptionTerms(record, customer, price, plan, requested_trial(record))
