"""Subscriptions no provider bills (free ones): their changes, made here alone.

Each change reads the subscription for change, computes the new fields, and commits them
through :func:`qzpay.subscriptions.ledger.write` (the subscription, its event and any change of
the customer's entitlements, in one unit of work). A change that changes nothing writes
nothing and emits no event. A subscription a provider bills comes back as
:class:`ProviderBilled`, unchanged: the service changes it there (the read that found it is the
one the change would have made, so a local change costs no look-up before it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from qzpay._time import utcnow
from qzpay.catalog.models import Price
from qzpay.engine.unit_of_work import UnitOfWork, Units, retrying
from qzpay.errors import ConflictError, NotFoundError
from qzpay.subscriptions import ledger
from qzpay.subscriptions.inputs import NewSubscription
from qzpay.subscriptions.models import ENDED, Subscription, subscription_ids
from qzpay.subscriptions.periods import period_end

Fields = dict[str, Any]
Change = Callable[[Subscription, datetime], Fields | None]
"""``change(before, now) -> fields`` (None or empty: nothing to change)."""


@dataclass(frozen=True, slots=True)
class ProviderBilled:
    """The subscription, as read, when a provider bills it: it changes at the provider."""

    record: Subscription


def ended(record: Subscription) -> ConflictError:
    return ConflictError(
        f"subscription {record.id} has ended ({record.status}) and cannot change",
        code="subscription_ended",
    )


def live(record: Subscription) -> Subscription:
    """``record``, unless it has ended (ConflictError ``subscription_ended``)."""
    if record.status in ENDED:
        raise ended(record)
    return record


def cancel_fields(before: Subscription, now: datetime, *, at_period_end: bool) -> Fields | None:
    if before.status in ENDED:
        return None
    if at_period_end:
        if before.cancel_at_period_end:
            return None
        return {"cancel_at_period_end": True, "canceled_at": now}
    return {"status": "canceled", "canceled_at": now, "ended_at": now}


def uncancel_fields(before: Subscription, now: datetime) -> Fields | None:
    if not live(before).cancel_at_period_end:
        return None
    return {"cancel_at_period_end": False, "canceled_at": None}


def pause_fields(before: Subscription, now: datetime) -> Fields | None:
    return None if live(before).status == "paused" else {"status": "paused"}


def resume_fields(before: Subscription, now: datetime) -> Fields | None:
    return {"status": "active"} if live(before).status == "paused" else None


def roll_fields(before: Subscription, price: Price, now: datetime) -> Fields | None:
    """The due transition of a subscription kept here, if its period has ended by ``now``:
    ``canceled`` at the period's end when cancelled at period end, else the next period,
    starting exactly at the old end."""
    if before.provider is not None or before.status in ENDED:
        return None
    if before.current_period_end > now:
        return None
    if before.cancel_at_period_end:
        return {"status": "canceled", "ended_at": before.current_period_end}
    start = before.current_period_end
    anchor = before.created_at.day
    end = period_end(start, price.interval, price.interval_count, anchor_day=anchor)
    return {"current_period_start": start, "current_period_end": end}


class Local:
    """The changes of subscriptions kept here (see the module docstring)."""

    def __init__(self, units: Units) -> None:
        self.units = units

    def new_record(
        self,
        new: NewSubscription,
        price: Price,
        *,
        provider: str | None = None,
        trial_days: int | None = None,
    ) -> Subscription:
        """A new subscription to ``price``: ``active`` with its first period when kept here,
        ``incomplete`` (until the provider answers) when ``provider`` bills it. A trial asked
        of the provider is carried as ``trial_start``/``trial_end`` until the provider's copy
        replaces them, so a create finished later (``sync_pending``) asks for the same one."""
        now = utcnow()
        end = period_end(now, price.interval, price.interval_count, anchor_day=now.day)
        trial_end = now + timedelta(days=trial_days) if provider and trial_days else None
        return Subscription(
            id=subscription_ids.new(),
            customer_id=new.customer_id,
            price_id=price.id,
            plan_id=price.plan_id,
            quantity=new.quantity,
            status="active" if provider is None else "incomplete",
            current_period_start=now,
            current_period_end=end,
            trial_start=None if trial_end is None else now,
            trial_end=trial_end,
            provider=provider,
            metadata=new.metadata,
            created_at=now,
            updated_at=now,
        )

    async def create(
        self, new: NewSubscription, price: Price, key: str | None, digest: str | None
    ) -> Subscription:
        return await ledger.insert_new(self.units, self.new_record(new, price), key, digest)

    async def change(self, subscription_id: str, change: Change) -> Subscription | ProviderBilled:
        """Apply ``change`` to the subscription read for change, with its events. The block
        may run again from a fresh read (optimistic writes, :func:`retrying`), so ``change``
        must depend on nothing but its arguments."""

        async def block(work: UnitOfWork) -> Subscription | ProviderBilled:
            before = await work.tx.get_subscription(subscription_id)
            if before is None:
                raise NotFoundError(f"no subscription {subscription_id!r}")
            if before.provider is not None:
                return ProviderBilled(before)
            now = max(utcnow(), before.updated_at)
            fields = change(before, now)
            if not fields:
                return before
            after = before.model_copy(update={**fields, "updated_at": now})
            return await ledger.write(work, before, after)

        return await retrying(self.units, block)

    async def roll(self, subscription_id: str, price: Price, now: datetime) -> str | None:
        """Apply the due transition of the subscription if it is still due at ``now``:
        ``"renewed"``, ``"canceled"``, or None (not due, or applied by another worker)."""
        outcome: list[str] = []

        def change(before: Subscription, at: datetime) -> Fields | None:
            fields = roll_fields(before, price, now)
            outcome[:] = [] if fields is None else ["canceled" if "status" in fields else "renewed"]
            return fields

        await self.change(subscription_id, change)
        return outcome[0] if outcome else None

    async def cancel(
        self, subscription_id: str, *, at_period_end: bool
    ) -> Subscription | ProviderBilled:
        return await self.change(
            subscription_id,
            lambda before, now: cancel_fields(before, now, at_period_end=at_period_end),
        )

    async def uncancel(self, subscription_id: str) -> Subscription | ProviderBilled:
        return await self.change(subscription_id, uncancel_fields)

    async def pause(self, subscription_id: str) -> Subscription | ProviderBilled:
        return await self.change(subscription_id, pause_fields)

    async def resume(self, subscription_id: str) -> Subscription | ProviderBilled:
        return await self.change(subscription_id, resume_fields)

    async def change_price(
        self, subscription_id: str, price: Price, quantity: int | None
    ) -> Subscription | ProviderBilled:
        def change(before: Subscription, now: datetime) -> Fields:
            return {
                "price_id": price.id,
                "plan_id": price.plan_id,
                "quantity": live(before).quantity if quantity is None else quantity,
            }

        return await self.change(subscription_id, change)
