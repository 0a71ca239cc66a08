"""MercadoPago behind the PaymentProvider protocol, via the official ``mercadopago`` SDK (3.x).

``provider.py`` holds the provider object; ``transport.py`` the SDK on its thread pool
(re-rooted at ``api_base``, never resending) and the classification of its failures;
``customers.py`` the customer adapter (one customer per email: see there), ``prices.py`` and
``subscriptions.py`` (``preapproval``) the others, each over one SDK resource through
``resource.py``; ``mapping.py`` the
field mapping, with its table; ``webhooks.py`` the ``x-signature`` check. Only plain Python
values leave this package; SDK objects and errors are converted inside it.
"""

from qzpay.providers.mercadopago.customers import MercadoPagoCustomers, MercadoPagoEmailTaken
from qzpay.providers.mercadopago.mapping import split_name
from qzpay.providers.mercadopago.prices import MercadoPagoPrices
from qzpay.providers.mercadopago.provider import MAX_PAGE_SIZE, MercadoPagoProvider
from qzpay.providers.mercadopago.subscriptions import MercadoPagoSubscriptions
from qzpay.providers.mercadopago.transport import idempotency_key
from qzpay.providers.mercadopago.webhooks import sign_manifest

__all__ = [
    "MAX_PAGE_SIZE",
    "MercadoPagoCustomers",
    "MercadoPagoEmailTaken",
    "MercadoPagoPrices",
    "MercadoPagoProvider",
    "MercadoPagoSubscriptions",
    "idempotency_key",
    "sign_manifest",
    "split_name",
]
