"""Subscriptions in MemoryStorage: the committed state and its indexes, the writes a
transaction stages, and the mix-ins that give the transaction and the storage their
subscription methods (as ``catalog.py`` / ``catalog_reads.py`` do for plans and prices).

Indexes, each changed only by ``SubscriptionState.apply`` under the store's commit lock:

* ids in creation order (the ids are time-sortable), and per customer, so lists and scans walk
  newest first and a customer's filter walks only that customer's subscriptions;
* per customer, the ids of its subscriptions in a granting status (``GRANTING``): ``grants``
  reads those only, never the customer's ended ones;
* provider links, (provider, provider subscription id) -> subscription;
* the due list: ``(current_period_end, id)`` of every subscription no provider bills and not
  ended, kept sorted, so ``due_subscriptions`` reads its head.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

from qzpay.catalog.models import Plan
from qzpay.storage.memory.catalog import CatalogState
from qzpay.storage.memory.records import Committed, Staged, insert_sorted, newest
from qzpay.storage.params import CreateKey
from qzpay.storage.subscription_base import Grant, SubscriptionFilter
from qzpay.subscriptions.models import ENDED, GRANTING, Subscription
from qzpay.subscriptions.registry import SUBSCRIPTION

__all__ = ["SUBSCRIPTION"]

Due = tuple[datetime, str]  # (current period end, subscription id)
_NONE: list[str] = []


def copy_subscription(subscription: Subscription) -> Subscription:
    return subscription.model_copy(update={"metadata": dict(subscription.metadata)})


def _due_key(subscription: Subscription | None) -> Due | None:
    """Where the subscription sits in the due list, or None when it is never due."""
    if subscription is None or subscription.provider is not None or subscription.status in ENDED:
        return None
    end = subscription.current_period_end
    if end.utcoffset() is None:  # never let a naive time make a commit raise half-way
        end = end.replace(tzinfo=UTC)
    return end, subscription.id


def matches(subscription: Subscription, filters: SubscriptionFilter) -> bool:
    return (
        (filters.customer_id is None or subscription.customer_id == filters.customer_id)
        and (filters.status is None or subscription.status == filters.status)
        and (filters.plan_id is None or subscription.plan_id == filters.plan_id)
        and (filters.price_id is None or subscription.price_id == filters.price_id)
    )


def grants_of(
    subscriptions: Iterable[Subscription], plan_of: Callable[[str], Plan | None]
) -> list[Grant]:
    """The grants of ``subscriptions`` (in granting statuses, ordered by id), joined to their
    plans through ``plan_of``; a subscription whose plan is missing grants nothing (as the
    SQL backends' join)."""
    found: list[Grant] = []
    for subscription in subscriptions:
        plan = plan_of(subscription.plan_id)
        if plan is not None:
            found.append(
                Grant(subscription.id, plan.id, tuple(plan.entitlements), dict(plan.limits))
            )
    return found


class SubscriptionState(Committed[Subscription]):
    """The committed subscriptions, and the indexes of their own the module's docstring lists."""

    __slots__ = ("due", "granting", "of_customer")

    def __init__(self) -> None:
        super().__init__(SUBSCRIPTION, copy_subscription)
        self.of_customer: dict[str, list[str]] = {}  # customer id -> its ids, sorted
        self.granting: dict[str, set[str]] = {}  # customer id -> ids in a granting status
        self.due: list[Due] = []  # sorted: earliest period end first

    def _index(self, record_id: str, old: Subscription | None, new: Subscription) -> None:
        if old is None or old.customer_id != new.customer_id:
            if old is not None:
                self._unfile(self.of_customer, old.customer_id, record_id)
            insert_sorted(self.of_customer.setdefault(new.customer_id, []), record_id)
        self._regrant(record_id, old, new)
        self._redue(_due_key(old), _due_key(new))

    @staticmethod
    def _unfile(lists: dict[str, list[str]], key: str, record_id: str) -> None:
        ids = lists.get(key)
        if ids is None:
            return
        at = bisect_left(ids, record_id)
        if at < len(ids) and ids[at] == record_id:
            del ids[at]
        if not ids:
            del lists[key]

    def _regrant(self, subscription_id: str, old: Subscription | None, new: Subscription) -> None:
        if old is not None and old.status in GRANTING:
            held = self.granting.get(old.customer_id)
            if held is not None:
                held.discard(subscription_id)
                if not held:
                    del self.granting[old.customer_id]
        if new.status in GRANTING:
            self.granting.setdefault(new.customer_id, set()).add(subscription_id)

    def _redue(self, before: Due | None, after: Due | None) -> None:
        if before == after:
            return
        if before is not None:
            at = bisect_left(self.due, before)
            if at < len(self.due) and self.due[at] == before:
                del self.due[at]
        if after is not None:
            insort(self.due, after)


class SubscriptionWriter:
    """Subscription reads and writes of MemoryTransaction: staged in ``subscriptions`` (made
    on the transaction's first subscription write) over the committed ones."""

    subscriptions: Staged[Subscription] | None

    if TYPE_CHECKING:  # the transaction's (CatalogTransaction): the plan as it sees it

        def _plan(self, plan_id: str) -> Plan | None: ...

    def _committed_subscriptions(self) -> SubscriptionState:
        raise NotImplementedError  # pragma: no cover - the transaction's

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        return self._committed_subscriptions().read(self.subscriptions, subscription_id)

    async def find_idempotent_subscription(
        self, idempotency_key: str
    ) -> tuple[Subscription, str] | None:
        return self._committed_subscriptions().idempotent(self.subscriptions, idempotency_key)

    async def insert_subscription(
        self, subscription: Subscription, key: CreateKey | None = None
    ) -> None:
        committed = self._committed_subscriptions()
        self.subscriptions = committed.insert(self.subscriptions, subscription, key)

    async def update_subscription(self, before: Subscription, after: Subscription) -> None:
        committed = self._committed_subscriptions()
        self.subscriptions = committed.update(self.subscriptions, before, after)

    async def grants(self, customer_id: str) -> list[Grant]:
        committed = self._committed_subscriptions()
        staged = {} if self.subscriptions is None else self.subscriptions.records
        ids = {i for i in committed.granting.get(customer_id, ()) if i not in staged}
        ids.update(
            i for i, s in staged.items() if s.customer_id == customer_id and s.status in GRANTING
        )
        found = [staged.get(i) or committed.records[i] for i in sorted(ids)]
        return grants_of(found, self._plan)  # plans as this transaction sees them


class SubscriptionReads:
    """The subscription reads of MemoryStorage: copies of committed subscriptions, picked
    under the commit lock."""

    def _subscription_state(self) -> tuple[SubscriptionState, CatalogState, Any]:
        """The committed subscriptions, the committed catalog and the lock that guards them."""
        raise NotImplementedError  # pragma: no cover - the storage's

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        state, _, _ = self._subscription_state()
        found = state.records.get(subscription_id)
        return None if found is None else copy_subscription(found)

    async def find_subscriptions_by_provider_id(
        self, provider_subscription_id: str, *, provider: str | None
    ) -> list[Subscription]:
        state, _, lock = self._subscription_state()
        with lock:
            ids = state.links.find(provider_subscription_id, provider)
            found = [state.records[i] for i in sorted(ids)]
        return [copy_subscription(s) for s in found]

    @staticmethod
    def _candidates(state: SubscriptionState, filters: SubscriptionFilter) -> list[str]:
        """Sorted ids holding every match: the customer's when the filter names one."""
        if filters.customer_id is None:
            return state.ids
        return state.of_customer.get(filters.customer_id, _NONE)

    async def list_subscriptions(
        self, filters: SubscriptionFilter, *, limit: int, offset: int
    ) -> tuple[list[Subscription], int]:
        state, _, lock = self._subscription_state()
        with lock:
            records = state.records
            found = [
                records[i]
                for i in newest(self._candidates(state, filters), None)
                if matches(records[i], filters)
            ]
        page = found[max(0, offset) : max(0, offset) + max(0, limit)]
        return [copy_subscription(s) for s in page], len(found)

    async def scan_subscriptions(
        self, filters: SubscriptionFilter, *, before_id: str | None, limit: int
    ) -> list[Subscription]:
        state, _, lock = self._subscription_state()
        with lock:
            records = state.records
            kept = (
                records[i]
                for i in newest(self._candidates(state, filters), before_id)
                if matches(records[i], filters)
            )
            found = list(islice(kept, max(0, limit)))
        return [copy_subscription(s) for s in found]

    async def grants(self, customer_id: str) -> list[Grant]:
        state, catalog, lock = self._subscription_state()
        with lock:
            ids = sorted(state.granting.get(customer_id, ()))
            return grants_of((state.records[i] for i in ids), catalog.plans.records.get)

    async def due_subscriptions(self, now: datetime, *, limit: int) -> list[Subscription]:
        state, _, lock = self._subscription_state()
        found: list[Subscription] = []
        with lock:
            for period_end, subscription_id in state.due:
                if period_end > now or len(found) >= limit:
                    break
                found.append(state.records[subscription_id])
        return [copy_subscription(s) for s in found]
