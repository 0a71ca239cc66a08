"""The subscriptions' row layout, shared by SQLite and PostgreSQL (as
:mod:`qzpay.storage.catalog_rows` is for plans and prices): one table of columns from which
the column list, row mapper, argument builders and list filters derive.
"""

from __future__ import annotations

from qzpay.storage.layout import STAMPS, Layout, same
from qzpay.storage.subscription_base import SubscriptionFilter
from qzpay.subscriptions.models import SUBSCRIPTION_FIELDS, Subscription
from qzpay.subscriptions.registry import ENTITLEMENTS_CHANGED, SUBSCRIPTION

__all__ = ["ENTITLEMENTS_CHANGED", "SUBSCRIPTION", "SUBSCRIPTION_ROWS"]
# SUBSCRIPTION and ENTITLEMENTS_CHANGED: registered in qzpay.records whenever storage is loaded.

SUBSCRIPTION_ROWS: Layout[Subscription, SubscriptionFilter] = Layout(
    "subscription",
    Subscription,
    (
        *same("id", "customer_id", "price_id", "plan_id", "quantity", "status"),
        *same("current_period_start", "current_period_end", codec="time"),
        *same("trial_start", "trial_end", codec="maybe_time"),
        *same("cancel_at_period_end", codec="flag"),
        *same("canceled_at", "ended_at", codec="maybe_time"),
        *same("payment_url", "provider", "provider_subscription_id"),
        *same("metadata", codec="json"),
        *STAMPS,
    ),
    # Every field an event reports but the customer (a subscription never changes hands),
    # and the time of the change.
    updated=(*(f for f in SUBSCRIPTION_FIELDS if f != "customer_id"), "updated_at"),
    filters=("customer_id", "status", "plan_id", "price_id"),
)

GRANTED_STATUSES_SQL = "('trialing', 'active', 'past_due')"
"""The granting statuses as an SQL list: the predicate of the ``subscriptions_granting``
partial index, written the same way so the planner uses it."""
ENDED_STATUSES_SQL = "('canceled', 'incomplete_expired')"
"""The ended statuses as an SQL list: the predicate of the ``subscriptions_due`` index."""
