"""The subscriptions' row layout, shared by SQLite and PostgreSQL (as
:mod:`qzpay.storage.catalog_rows` is for plans and prices): one table of columns from which
the column list, row mapper, argument builders and list filters derive.
"""

from __future__ import annotations

from qzpay.storage.catalog_rows import Layout
from qzpay.storage.subscription_base import SubscriptionFilter
from qzpay.subscriptions.models import SUBSCRIPTION_FIELDS, Subscription
from qzpay.subscriptions.registry import ENTITLEMENTS_CHANGED, SUBSCRIPTION

__all__ = ["ENTITLEMENTS_CHANGED", "SUBSCRIPTION", "SUBSCRIPTION_ROWS"]
# SUBSCRIPTION and ENTITLEMENTS_CHANGED: registered in qzpay.records whenever storage is loaded.

SUBSCRIPTION_ROWS: Layout[Subscription, SubscriptionFilter] = Layout(
    "subscription",
    Subscription,
    (
        ("id", "id", None),
        ("customer_id", "customer_id", None),
        ("price_id", "price_id", None),
        ("plan_id", "plan_id", None),
        ("quantity", "quantity", None),
        ("status", "status", None),
        ("current_period_start", "current_period_start", "time"),
        ("current_period_end", "current_period_end", "time"),
        ("trial_start", "trial_start", "maybe_time"),
        ("trial_end", "trial_end", "maybe_time"),
        ("cancel_at_period_end", "cancel_at_period_end", "flag"),
        ("canceled_at", "canceled_at", "maybe_time"),
        ("ended_at", "ended_at", "maybe_time"),
        ("payment_url", "payment_url", None),
        ("provider", "provider", None),
        ("provider_subscription_id", "provider_subscription_id", None),
        ("metadata", "metadata", "json"),
        ("created_at", "created_at", "time"),
        ("updated_at", "updated_at", "time"),
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
