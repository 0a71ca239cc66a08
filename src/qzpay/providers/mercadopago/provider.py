"""MercadoPagoProvider: the object a Billing is given, holding one adapter per MercadoPago
resource on one shared client (and so one thread pool)."""

from __future__ import annotations

from typing import Final

from qzpay.providers.base import ProviderEvent
from qzpay.providers.common import Delivery, WebhookProvider, check_client_settings
from qzpay.providers.mercadopago.customers import MercadoPagoCustomers
from qzpay.providers.mercadopago.prices import MercadoPagoPrices
from qzpay.providers.mercadopago.subscriptions import MercadoPagoSubscriptions
from qzpay.providers.mercadopago.transport import PROVIDER, MercadoPagoClient
from qzpay.providers.mercadopago.webhooks import parse_webhook

MAX_PAGE_SIZE: Final = 100


class MercadoPagoProvider(WebhookProvider):
    """MercadoPago. One instance owns one thread pool; ``close()`` it when done.

    ``api_base`` points the SDK at another server (a local test double). ``timeout`` bounds
    each wait for the server (connect excepted: ``connect_timeout``, after which the request is
    known not to have been sent); a slow trickle of bytes can take longer in total.
    ``webhook_tolerance`` (seconds), when set, rejects notifications whose signed ``ts`` is
    further from now; it is off by default, as in the SDK: MercadoPago's documentation does not
    say whether a redelivery is signed anew, and a replay only makes qzpay re-fetch.

    ``back_url`` is where MercadoPago sends a subscriber back after its checkout; MercadoPago
    requires one on every subscription plan and subscription, so neither prices nor
    subscriptions can be created without it (``provider.prices``: a recurring price is a
    ``preapproval_plan``; qzpay plans have no MercadoPago object, so this provider has no
    ``plans``; ``provider.subscriptions``: a subscription is a ``preapproval``).
    """

    name: str = PROVIDER

    def __init__(
        self,
        access_token: str,
        webhook_secret: str | None = None,
        api_base: str | None = None,
        *,
        timeout: float = 20.0,
        connect_timeout: float = 5.0,
        webhook_tolerance: int | None = None,
        page_size: int = MAX_PAGE_SIZE,
        max_workers: int = 4,
        back_url: str | None = None,
    ) -> None:
        check_client_settings(
            timeout=timeout,
            connect_timeout=connect_timeout,
            page_size=page_size,
            max_page_size=MAX_PAGE_SIZE,
        )
        if webhook_tolerance is not None and webhook_tolerance <= 0:
            raise ValueError("webhook_tolerance must be a positive number of seconds or None")
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        if back_url is not None and not back_url.startswith(("https://", "http://")):
            raise ValueError("back_url must be an http(s) URL")
        super().__init__(webhook_secret)
        self._webhook_tolerance = webhook_tolerance
        self._client = MercadoPagoClient(
            access_token,
            api_base,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_workers=max_workers,
        )
        self.customers = MercadoPagoCustomers(self._client, page_size=page_size)
        self.prices = MercadoPagoPrices(self._client, page_size=page_size, back_url=back_url)
        self.subscriptions = MercadoPagoSubscriptions(
            self._client, page_size=page_size, back_url=back_url
        )

    def _verify(self, delivery: Delivery, secret: str) -> ProviderEvent:
        """Verify and parse a notification; its ``query`` holds the signed ``data.id`` (see
        :func:`~qzpay.providers.mercadopago.webhooks.parse_webhook`)."""
        return parse_webhook(
            delivery.payload,
            delivery.headers,
            delivery.query,
            secret=secret,
            tolerance=self._webhook_tolerance,
        )

    async def close(self) -> None:
        """Stop the thread pool, letting requests in flight finish (their timeouts bound it)."""
        await self._client.close()
