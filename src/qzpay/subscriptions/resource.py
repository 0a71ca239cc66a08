"""Subscriptions as an engine resource (:mod:`qzpay.engine.resource`): how one is read and
written in a storage transaction, the name of a change's event, and its provider link.

A subscription has at most one provider, so its links are ``{provider:
provider_subscription_id}`` (:attr:`Subscription.provider_subscription_ids`), set through
:meth:`SubscriptionResource.with_links`. It is never deleted: its end is the change to
``canceled``, whose event is ``subscription.canceled``.
"""

from __future__ import annotations

from collections.abc import Mapping

from qzpay.engine.resource import Resource
from qzpay.storage.base import Storage, Transaction
from qzpay.storage.params import create_key
from qzpay.subscriptions.models import Subscription
from qzpay.subscriptions.registry import SUBSCRIPTION


class SubscriptionResource(Resource[Subscription]):
    name = SUBSCRIPTION.name
    links_field = SUBSCRIPTION.links_field
    model = Subscription

    def __init__(self) -> None:
        super().__init__()
        self.canceled = f"{self.name}.canceled"

    def update_event(self, before: Subscription, after: Subscription) -> str:
        if after.status == "canceled" and before.status != "canceled":
            return self.canceled
        return self.updated

    def with_links(self, record: Subscription, links: Mapping[str, str]) -> Subscription:
        if len(links) > 1:
            raise ValueError(f"a subscription has one provider, not {sorted(links)}")
        provider, remote_id = next(iter(links.items()), (None, None))
        return record.model_copy(
            update={"provider": provider, "provider_subscription_id": remote_id}
        )

    async def get(self, tx: Transaction, record_id: str) -> Subscription | None:
        return await tx.get_subscription(record_id)

    async def get_committed(self, storage: Storage, record_id: str) -> Subscription | None:
        return await storage.get_subscription(record_id)

    async def insert(
        self,
        tx: Transaction,
        record: Subscription,
        *,
        idempotency_key: str | None,
        fingerprint: str | None,
    ) -> None:
        await tx.insert_subscription(record, create_key(idempotency_key, fingerprint))

    async def update(self, tx: Transaction, before: Subscription, after: Subscription) -> None:
        await tx.update_subscription(before, after)

    async def find_created(
        self, tx: Transaction, idempotency_key: str
    ) -> tuple[Subscription, str] | None:
        return await tx.find_idempotent_subscription(idempotency_key)


SUBSCRIPTIONS = SubscriptionResource()
