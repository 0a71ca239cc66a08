"""Subscriptions in the record registry (:mod:`qzpay.records`): how storage decodes a
subscription it keeps as JSON (a sync task's snapshot, an event's data), its links, and
``customer.entitlements_changed``, a customer event whose data is an
:class:`~qzpay.subscriptions.models.EntitlementsChange`.

Imported by the subscriptions' storage code as well as by their engine resource, so any
process that can read a subscription from storage has them registered.
"""

from __future__ import annotations

from qzpay.records import register, register_event
from qzpay.subscriptions.models import EntitlementsChange, Subscription

# Never deleted: a subscription ends as ``canceled`` (``subscription.canceled``).
SUBSCRIPTION = register(
    "subscription",
    Subscription,
    links_field="provider_subscription_ids",
    events=("created", "updated", "canceled"),
)
ENTITLEMENTS_CHANGED = register_event("customer", "entitlements_changed", EntitlementsChange)
