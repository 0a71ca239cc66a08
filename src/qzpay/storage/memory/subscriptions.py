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
from qzpay.errors import ConflictError
from qzpay.storage.memory.catalog import CatalogState, Links, newest
from qzpay.storage.params import CreateKey
from qzpay.storage.subscription_base import Grant, SubscriptionFilter
from qzpay.subscriptions.models import ENDED, GRANTING, Subscription
from qzpay.subscriptions.registry import SUBSCRIPTION

__all__ = ["SUBSCRIPTION"]

Due = tuple[datetime, str]  # (current period end, subscription id)
_NONE: list[str] = []


def copy_subscription(subscription: Subscription) -> Subscription:
    return subscription.model_copy(update={"metadata": dict(subscription.metadata)})


def _insert(ids: list[str], record_id: str) -> None:
    if not ids or ids[-1] < record_id:  # the usual case: a new id is the largest yet
        ids.append(record_id)
    else:
        insort(ids, record_id)


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


class SubscriptionWrites:
    """What one transaction wrote to subscriptions (private copies), landed at commit."""

    __slots__ = ("keys", "subscriptions")

    def __init__(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self.keys: dict[str, tuple[str, str]] = {}  # idempotency key -> (id, fingerprint)


class SubscriptionState:
    """The committed subscriptions; changed only by ``apply``, under the store's commit lock."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self.ids: list[str] = []  # sorted: creation order
        self.of_customer: dict[str, list[str]] = {}  # customer id -> its ids, sorted
        self.granting: dict[str, set[str]] = {}  # customer id -> ids in a granting status
        self.links = Links()
        self.due: list[Due] = []  # sorted: earliest period end first
        self.keys: dict[str, tuple[str, str]] = {}

    def apply(self, writes: SubscriptionWrites) -> None:
        for subscription_id, new in writes.subscriptions.items():
            old = self.subscriptions.get(subscription_id)
            self.subscriptions[subscription_id] = new
            if old is None:
                _insert(self.ids, subscription_id)
            if old is None or old.customer_id != new.customer_id:
                if old is not None:
                    self._unfile(self.of_customer, old.customer_id, subscription_id)
                _insert(self.of_customer.setdefault(new.customer_id, []), subscription_id)
            self._regrant(subscription_id, old, new)
            before = {} if old is None else old.provider_subscription_ids
            self.links.change(subscription_id, before, new.provider_subscription_ids)
            self._redue(_due_key(old), _due_key(new))
        self.keys.update(writes.keys)

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


def _taken(provider: str, remote: str, owner: str) -> ConflictError:
    return ConflictError(
        f"{provider} subscription {remote!r} is already linked to subscription {owner}",
        code="provider_id_taken",
    )


class SubscriptionWriter:
    """Subscription writes of MemoryTransaction: staged in ``subscriptions`` (a
    SubscriptionWrites, made on the first write) over the committed state."""

    subscriptions: SubscriptionWrites | None

    if TYPE_CHECKING:  # the transaction's (CatalogTransaction): the plan as it sees it

        def _plan(self, plan_id: str) -> Plan | None: ...

    def _committed_subscriptions(self) -> SubscriptionState:
        raise NotImplementedError  # pragma: no cover - the transaction's

    def _staged_subscriptions(self) -> SubscriptionWrites:
        if self.subscriptions is None:
            self.subscriptions = SubscriptionWrites()
        return self.subscriptions

    def _subscription(self, subscription_id: str) -> Subscription | None:
        staged = self.subscriptions
        found = None if staged is None else staged.subscriptions.get(subscription_id)
        if found is None:
            return self._committed_subscriptions().subscriptions.get(subscription_id)
        return found

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        subscription = self._subscription(subscription_id)
        return None if subscription is None else copy_subscription(subscription)

    def _subscription_key(self, idempotency_key: str) -> tuple[str, str] | None:
        staged = self.subscriptions
        found = None if staged is None else staged.keys.get(idempotency_key)
        if found is None:
            return self._committed_subscriptions().keys.get(idempotency_key)
        return found

    async def find_idempotent_subscription(
        self, idempotency_key: str
    ) -> tuple[Subscription, str] | None:
        found = self._subscription_key(idempotency_key)
        if found is None:
            return None
        subscription = self._subscription(found[0])
        assert subscription is not None
        return copy_subscription(subscription), found[1]

    def _subscription_link_owner(self, provider: str, remote: str) -> str | None:
        staged: dict[str, Subscription] = {}
        if self.subscriptions is not None:
            staged = self.subscriptions.subscriptions
        for subscription_id, subscription in staged.items():
            if (
                subscription.provider == provider
                and subscription.provider_subscription_id == remote
            ):
                return subscription_id
        owner = self._committed_subscriptions().links.links.get((provider, remote))
        # A committed owner this transaction rewrote no longer holds it (checked just above).
        return None if owner in staged else owner

    def _check_subscription_link(self, before: Subscription | None, after: Subscription) -> None:
        provider, remote = after.provider, after.provider_subscription_id
        if provider is None or remote is None:
            return
        if before is not None and (before.provider, before.provider_subscription_id) == (
            provider,
            remote,
        ):
            return
        owner = self._subscription_link_owner(provider, remote)
        if owner is not None and owner != after.id:
            raise _taken(provider, remote, owner)

    async def insert_subscription(
        self, subscription: Subscription, key: CreateKey | None = None
    ) -> None:
        if key is not None and self._subscription_key(key.idempotency_key) is not None:
            raise ConflictError("idempotency key already used", code="idempotency_key_reused")
        self._check_subscription_link(None, subscription)
        staged = self._staged_subscriptions()
        if key is not None:
            staged.keys[key.idempotency_key] = (subscription.id, key.request_fingerprint or "")
        staged.subscriptions[subscription.id] = copy_subscription(subscription)

    async def update_subscription(self, before: Subscription, after: Subscription) -> None:
        self._check_subscription_link(before, after)
        self._staged_subscriptions().subscriptions[after.id] = copy_subscription(after)

    async def grants(self, customer_id: str) -> list[Grant]:
        committed = self._committed_subscriptions()
        staged: dict[str, Subscription] = {}
        if self.subscriptions is not None:
            staged = self.subscriptions.subscriptions
        ids = {i for i in committed.granting.get(customer_id, ()) if i not in staged}
        ids.update(
            i for i, s in staged.items() if s.customer_id == customer_id and s.status in GRANTING
        )
        found = [staged.get(i) or committed.subscriptions[i] for i in sorted(ids)]
        return grants_of(found, self._plan)  # plans as this transaction sees them


class SubscriptionReads:
    """The subscription reads of MemoryStorage: copies of committed subscriptions, picked
    under the commit lock."""

    def _subscription_state(self) -> tuple[SubscriptionState, CatalogState, Any]:
        """The committed subscriptions, the committed catalog and the lock that guards them."""
        raise NotImplementedError  # pragma: no cover - the storage's

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        state, _, _ = self._subscription_state()
        found = state.subscriptions.get(subscription_id)
        return None if found is None else copy_subscription(found)

    async def find_subscriptions_by_provider_id(
        self, provider_subscription_id: str, *, provider: str | None
    ) -> list[Subscription]:
        state, _, lock = self._subscription_state()
        with lock:
            ids = state.links.find(provider_subscription_id, provider)
            found = [state.subscriptions[i] for i in sorted(ids)]
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
            records = state.subscriptions
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
            records = state.subscriptions
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
            return grants_of((state.subscriptions[i] for i in ids), catalog.plans.get)

    async def due_subscriptions(self, now: datetime, *, limit: int) -> list[Subscription]:
        state, _, lock = self._subscription_state()
        found: list[Subscription] = []
        with lock:
            for period_end, subscription_id in state.due:
                if period_end > now or len(found) >= limit:
                    break
                found.append(state.subscriptions[subscription_id])
        return [copy_subscription(s) for s in found]
