"""Where every subscription change is committed: the subscription, its event, and — when the
change alters what the customer may use — ``customer.entitlements_changed``, in one unit of
work (handlers run after the commit).

Whether access changed is decided from the customer's grants as the transaction sees them
before and after the write (:meth:`~qzpay.storage.base.Transaction.grants`), with the customer
read for change first, so that two changes of one customer's subscriptions are serialized and
each event's ``before`` is the previous event's ``after``. The reads are skipped when the
change cannot alter access (neither version grants, or both grant the same plan).
"""

from __future__ import annotations

from qzpay.customers.models import Customer
from qzpay.engine.intents import Attempt, racing, replay
from qzpay.engine.unit_of_work import UnitOfWork, Units
from qzpay.errors import ConflictError, NotFoundError
from qzpay.storage.base import Grant, SyncTask, Transaction
from qzpay.subscriptions.models import EntitlementsChange, Subscription
from qzpay.subscriptions.registry import ENTITLEMENTS_CHANGED
from qzpay.subscriptions.resource import SUBSCRIPTIONS


def entitlement_keys(grants: list[Grant]) -> list[str]:
    """The sorted, de-duplicated entitlement keys ``grants`` give."""
    return sorted({key for grant in grants for key in grant.entitlements})


def _may_change_access(before: Subscription | None, after: Subscription) -> bool:
    granted = before is not None and before.grants_access
    if not granted and not after.grants_access:
        return False
    return not (
        granted and after.grants_access and before is not None and before.plan_id == after.plan_id
    )


async def live_customer(tx: Transaction, customer_id: str) -> Customer:
    """The customer read for change; NotFoundError if unknown, ConflictError
    ``customer_deleted`` if deleted."""
    customer = await tx.get_customer(customer_id)
    if customer is None:
        raise NotFoundError(f"no customer {customer_id!r}")
    if customer.deleted_at is not None:
        raise ConflictError(
            f"customer {customer_id} is deleted and cannot subscribe", code="customer_deleted"
        )
    return customer


async def write(
    work: UnitOfWork,
    before: Subscription | None,
    after: Subscription,
    *,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
) -> Subscription:
    """Insert ``after`` (``before`` None) or store it over ``before``, with its events; the
    stored subscription (``before`` itself when nothing user-visible changed)."""
    tx = work.tx
    access = _may_change_access(before, after)
    if before is None:
        await live_customer(tx, after.customer_id)
    elif access:
        await tx.get_customer(after.customer_id)  # serializes the customer's access changes
    granted = entitlement_keys(await tx.grants(after.customer_id)) if access else None
    if before is None:
        await SUBSCRIPTIONS.insert(
            tx, after, idempotency_key=idempotency_key, fingerprint=fingerprint
        )
        await work.emit(SUBSCRIPTIONS.created, after)
    else:
        previous = before.changed_fields(after)
        if not previous:
            return before
        await SUBSCRIPTIONS.update(tx, before, after)
        await work.emit(SUBSCRIPTIONS.update_event(before, after), after, previous)
    if granted is not None:
        now_granted = entitlement_keys(await tx.grants(after.customer_id))
        if now_granted != granted:
            change = EntitlementsChange(
                customer_id=after.customer_id,
                before=granted,
                after=now_granted,
                changed_at=after.updated_at,
            )
            await work.emit(ENTITLEMENTS_CHANGED, change)
    return after


async def insert_new(
    units: Units,
    record: Subscription,
    key: str | None,
    fingerprint: str | None,
    *,
    task: SyncTask | None = None,
) -> Subscription:
    """Commit a new subscription with its events (and ``task``, provider work for it); for a
    retry with ``key``, the subscription the first call made instead (not ``record``)."""

    async def attempt(state: Attempt) -> Subscription:
        async with units() as work:
            if key is not None:
                earlier = await replay(SUBSCRIPTIONS, work.tx, key, fingerprint)
                if earlier is not None:
                    return earlier
            state.inserting = True
            stored = await write(work, None, record, idempotency_key=key, fingerprint=fingerprint)
            if task is not None:
                await work.tx.put_sync_task(task)
        return stored

    return await racing(attempt)
