"""Stripe behind the PaymentProvider protocol, via the official SDK's async client.

``provider.py`` holds the provider object, ``transport.py`` the SDK client (retries off) and
its error classification, ``customers.py``, ``plans.py``, ``prices.py`` and
``subscriptions.py`` the adapters (each over one SDK service through ``resource.py``),
``mapping.py`` and ``catalog_mapping.py`` the field mappings (over ``fields.py``: how Stripe
writes and reads any field) and ``webhooks.py`` the signature check. Only plain Python values
leave this package; SDK objects and errors are converted inside it.
"""

from qzpay.providers.stripe.customers import StripeCustomers
from qzpay.providers.stripe.plans import StripePlans
from qzpay.providers.stripe.prices import StripePrices
from qzpay.providers.stripe.provider import MAX_PAGE_SIZE, StripeProvider
from qzpay.providers.stripe.subscriptions import StripeSubscriptions
from qzpay.providers.stripe.webhooks import DEFAULT_WEBHOOK_TOLERANCE

__all__ = [
    "DEFAULT_WEBHOOK_TOLERANCE",
    "MAX_PAGE_SIZE",
    "StripeCustomers",
    "StripePlans",
    "StripePrices",
    "StripeProvider",
    "StripeSubscriptions",
]
