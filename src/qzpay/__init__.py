"""qzpay: provider-agnostic billing for Python."""

from qzpay.billing import Billing, SyncBilling
from qzpay.customers.models import Address, Customer
from qzpay.events import Event
from qzpay.page import Page
from qzpay.subscriptions.models import EntitlementsChange, Subscription

__all__ = [
    "Address",
    "Billing",
    "Customer",
    "EntitlementsChange",
    "Event",
    "Page",
    "Subscription",
    "SyncBilling",
]
__version__ = "0.1.0"
