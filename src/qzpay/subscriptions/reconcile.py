"""Comparing qzpay's subscriptions with one provider's, and the safe repairs.

The provider owns a subscription's billing state, so every repair goes one way: the provider's
copy is applied here (never pushed there). ``billing.subscriptions.reconcile(provider)``
reports:

* ``drift``: a linked subscription whose stored state differs from the provider's
  (``fix``: apply the provider's copy, with the usual events);
* ``missing_locally``: a provider subscription that carries a qzpay id qzpay does not hold, or
  none at all (made in the dashboard or Stripe Checkout); ``fix`` adopts one whose customer
  and price qzpay knows at that provider (``unmanaged`` lists those it cannot adopt);
* ``missing_at_provider``: a subscription billed by this provider whose copy is gone there
  (reported only: nothing here can recreate a billing history);
* ``pending``: subscriptions with provider work still pending (``sync_pending`` finishes them).

``in_sync`` is True when there is no drift and nothing is missing on either side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qzpay.providers.subscriptions import ProviderSubscription, SubscriptionAdapter
from qzpay.reconcile_common import DIFFERS, Verdict
from qzpay.storage.base import SubscriptionFilter
from qzpay.subscriptions.billed import Billed
from qzpay.subscriptions.inbound import adopt
from qzpay.subscriptions.models import Subscription
from qzpay.subscriptions.remote_state import absorb

PAGE = 500


@dataclass(frozen=True, slots=True)
class SubscriptionDrift:
    """A linked subscription whose provider copy differs: field -> (stored, provider)."""

    subscription_id: str
    provider_subscription_id: str
    fields: dict[str, tuple[Any, Any]]


@dataclass
class SubscriptionReconcileReport(Verdict):
    """What ``billing.subscriptions.reconcile`` found (and, with ``fix``, did)."""

    provider: str
    local_subscriptions: int = 0
    provider_subscriptions: int = 0
    drift: list[SubscriptionDrift] = field(default_factory=list, metadata=DIFFERS)
    missing_locally: list[str] = field(default_factory=list, metadata=DIFFERS)
    """Provider subscription ids with no subscription here."""
    unmanaged: list[str] = field(default_factory=list)
    """Of those, the ones ``fix`` cannot adopt (unknown customer or price here)."""
    missing_at_provider: list[str] = field(default_factory=list, metadata=DIFFERS)
    pending: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)


async def _locals(billed: Billed, provider: str) -> dict[str, Subscription]:
    """Every subscription billed by ``provider``, by id (a keyset walk)."""
    found: dict[str, Subscription] = {}
    before: str | None = None
    while True:
        page = await billed.storage.scan_subscriptions(
            SubscriptionFilter(), before_id=before, limit=PAGE
        )
        if not page:
            return found
        found.update((s.id, s) for s in page if s.provider == provider)
        before = page[-1].id


async def reconcile(
    billed: Billed, provider: str, adapter: SubscriptionAdapter, *, fix: bool
) -> SubscriptionReconcileReport:
    report = SubscriptionReconcileReport(provider)
    local = await _locals(billed, provider)
    report.local_subscriptions = len(local)
    by_remote = {
        s.provider_subscription_id: s for s in local.values() if s.provider_subscription_id
    }
    seen: set[str] = set()
    async for remote in adapter.list():
        report.provider_subscriptions += 1
        record = by_remote.get(remote.id)
        if record is None and remote.qzpay_subscription_id in local:
            record = local[remote.qzpay_subscription_id]
        if record is None:
            await _missing(billed, report, provider, remote, fix=fix)
            continue
        seen.add(record.id)
        await _compare(billed, report, record, remote, fix=fix)
    for record in local.values():
        if record.id in seen:
            continue
        if record.provider_subscription_id is None:
            report.pending.append(record.id)
        else:
            report.missing_at_provider.append(record.id)
    tasks = await billed.storage.list_sync_tasks(limit=PAGE)
    report.pending.extend(
        t.record_id
        for t in tasks
        if t.resource == "subscription" and t.record_id not in report.pending
    )
    return report


async def _missing(
    billed: Billed,
    report: SubscriptionReconcileReport,
    provider: str,
    remote: ProviderSubscription,
    *,
    fix: bool,
) -> None:
    report.missing_locally.append(remote.id)
    if remote.qzpay_subscription_id is not None:
        report.unmanaged.append(remote.id)  # an intent undone here, or another qzpay's
        return
    if not fix:
        return
    adopted = await adopt(billed, provider, remote)
    if adopted is None:
        report.unmanaged.append(remote.id)
    else:
        report.fixed.append(adopted)


async def _compare(
    billed: Billed,
    report: SubscriptionReconcileReport,
    record: Subscription,
    remote: ProviderSubscription,
    *,
    fix: bool,
) -> None:
    expected = await absorb(billed.storage, record, remote, now=record.updated_at)
    differences = {
        name: (getattr(record, name), getattr(expected, name))
        for name in record.changed_fields(expected)
    }
    if not differences:
        return
    report.drift.append(SubscriptionDrift(record.id, remote.id, differences))
    if fix:
        await billed.apply(record.id, remote)
        report.fixed.append(record.id)
