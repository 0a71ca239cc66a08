"""The subscriptions' part of the Storage / Transaction protocol (``qzpay.storage.base``
inherits it): their reads and writes, the entitlement read, and the due read of ``run_due``.

Access is granted by a subscription whose status is in
:data:`~qzpay.subscriptions.models.GRANTING`; :meth:`SubscriptionStorage.grants` answers
"what may this customer use?" in one indexed read over those subscriptions only (never the
customer's ended ones), joined to their plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from qzpay.storage.params import CreateKey
from qzpay.subscriptions.models import Subscription, SubscriptionStatus


@dataclass(frozen=True, slots=True)
class SubscriptionFilter:
    """Filters of ``list_subscriptions`` / ``scan_subscriptions`` (each an equality)."""

    customer_id: str | None = None
    status: SubscriptionStatus | None = None
    plan_id: str | None = None
    price_id: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """What one subscription in a granting status gives its customer: its plan's entitlement
    keys and limits."""

    subscription_id: str
    plan_id: str
    entitlements: tuple[str, ...]
    limits: Mapping[str, int] = field(default_factory=dict)


class SubscriptionTransaction(Protocol):
    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        """Read a subscription for change; backends that can lock the row do so until
        commit."""
        ...

    async def find_idempotent_subscription(
        self, idempotency_key: str
    ) -> tuple[Subscription, str] | None:
        """The subscription a create with this key made, and that request's fingerprint."""
        ...

    async def insert_subscription(
        self, subscription: Subscription, key: CreateKey | None = None
    ) -> None:
        """Insert a new subscription (and ``key``, if it was created with an idempotency
        key). ConflictError codes: ``idempotency_key_reused``, ``provider_id_taken`` (its
        provider subscription id is another subscription's)."""
        ...

    async def update_subscription(self, before: Subscription, after: Subscription) -> None:
        """Store ``after`` over ``before`` (same id); ``provider_id_taken`` as for inserts."""
        ...

    async def grants(self, customer_id: str) -> list[Grant]:
        """The customer's grants as this transaction sees them (its own writes included),
        by subscription id. Not locked: read the customer for change first (``get_customer``)
        so that two changes of one customer's subscriptions are serialized."""
        ...


class SubscriptionStorage(Protocol):
    async def get_subscription(self, subscription_id: str) -> Subscription | None: ...

    async def find_subscriptions_by_provider_id(
        self, provider_subscription_id: str, *, provider: str | None
    ) -> list[Subscription]:
        """Subscriptions with this provider subscription id (at most one per provider)."""
        ...

    async def list_subscriptions(
        self, filters: SubscriptionFilter, *, limit: int, offset: int
    ) -> tuple[list[Subscription], int]:
        """One page, newest first, and the total number of matches."""
        ...

    async def scan_subscriptions(
        self, filters: SubscriptionFilter, *, before_id: str | None, limit: int
    ) -> list[Subscription]:
        """Keyset page: matches with an id below ``before_id`` (all if None), newest first."""
        ...

    async def grants(self, customer_id: str) -> list[Grant]:
        """The customer's grants (committed): one indexed read of its subscriptions in a
        granting status, joined to their plans; ordered by subscription id."""
        ...

    async def due_subscriptions(self, now: datetime, *, limit: int) -> list[Subscription]:
        """Subscriptions no provider bills (``provider`` None) whose current period has ended
        by ``now`` and that are not ended (status not in ``ENDED``), earliest period end
        first: the work of ``run_due``."""
        ...
