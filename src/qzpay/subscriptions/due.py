"""``run_due``: the time-driven transitions of subscriptions kept without a provider.

A provider runs renewals of the subscriptions it bills; for free subscriptions kept here,
``run_due`` does: a period that has ended rolls over (the new one starts exactly at the old
end, one period per change, so a worker that was down catches up period by period, each with
its ``subscription.updated``), and a subscription cancelled at period end becomes ``canceled``
at that end (``subscription.canceled``, and ``customer.entitlements_changed`` when it was the
customer's only access to something).

Several workers may run it at once: each reads the due list, then re-reads each subscription
for change (locked where the backend locks) and applies only what is still due, so each
transition is applied exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from qzpay._time import utcnow
from qzpay.catalog.models import Price
from qzpay.customers.validation import fail
from qzpay.limits import MAX_DUE_PASSES, MAX_SYNC_BATCH
from qzpay.storage.base import Storage
from qzpay.subscriptions.local import Local


@dataclass(frozen=True, slots=True)
class DueReport:
    """What one ``run_due`` did: periods rolled over, subscriptions ended."""

    renewed: int = 0
    canceled: int = 0


async def run_due(storage: Storage, local: Local, now: datetime | None, *, batch: int) -> DueReport:
    if now is None:
        now = utcnow()
    elif not isinstance(now, datetime) or now.utcoffset() is None:
        fail("now", "invalid_type", "must be a timezone-aware datetime or None")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_SYNC_BATCH:
        fail("limit", "out_of_range", f"must be an integer from 1 to {MAX_SYNC_BATCH}")
    prices: dict[str, Price | None] = {}
    renewed = canceled = 0
    for _ in range(MAX_DUE_PASSES):
        due = await storage.due_subscriptions(now, limit=batch)
        applied = 0
        for record in due:
            if record.price_id not in prices:
                prices[record.price_id] = await storage.get_price(record.price_id)
            price = prices[record.price_id]
            if price is None:  # pragma: no cover - a price is never deleted
                continue
            outcome = await local.roll(record.id, price, now)
            applied += outcome is not None
            renewed += outcome == "renewed"
            canceled += outcome == "canceled"
        if not applied:
            break  # nothing due, or all of it applied by another worker meanwhile
    return DueReport(renewed=renewed, canceled=canceled)
