"""Payment providers behind one provider-neutral protocol.

Provider implementations live in their own packages (``qzpay.providers.stripe``) and are not
imported here, so their SDKs stay optional dependencies.
"""

from qzpay.providers.base import (
    QZPAY_CUSTOMER_ID_KEY,
    CustomerAdapter,
    PaymentProvider,
    ProviderCustomer,
    ProviderEvent,
)

__all__ = [
    "QZPAY_CUSTOMER_ID_KEY",
    "CustomerAdapter",
    "PaymentProvider",
    "ProviderCustomer",
    "ProviderEvent",
]
