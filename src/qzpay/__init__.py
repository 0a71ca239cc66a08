"""qzpay: provider-agnostic billing for Python."""

from qzpay.billing import Billing, SyncBilling
from qzpay.customers.models import Address, Customer
from qzpay.events import Event
from qzpay.page import Page

__all__ = ["Address", "Billing", "Customer", "Event", "Page", "SyncBilling"]
__version__ = "0.1.0"
