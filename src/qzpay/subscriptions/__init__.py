"""Subscriptions (a customer's subscription to a price) and the entitlements they grant."""

from qzpay.subscriptions.models import (
    GRANTING,
    STATUSES,
    EntitlementsChange,
    Subscription,
    SubscriptionStatus,
)

__all__ = ["GRANTING", "STATUSES", "EntitlementsChange", "Subscription", "SubscriptionStatus"]
