"""StripeProvider: the object a Billing is given, holding one adapter per Stripe resource."""

from __future__ import annotations

from typing import Final

from qzpay.providers.base import ProviderEvent
from qzpay.providers.common import Delivery, WebhookProvider, check_client_settings
from qzpay.providers.stripe.customers import StripeCustomers
from qzpay.providers.stripe.plans import StripePlans
from qzpay.providers.stripe.prices import StripePrices
from qzpay.providers.stripe.subscriptions import StripeSubscriptions
from qzpay.providers.stripe.transport import PROVIDER, StripeTransport
from qzpay.providers.stripe.webhooks import DEFAULT_WEBHOOK_TOLERANCE, parse_webhook

MAX_PAGE_SIZE: Final = 100


class StripeProvider(WebhookProvider):
    """Stripe. One instance owns one connection pool; ``close()`` it when done.

    Use an instance from one event loop only: pooled connections belong to the loop that
    opened them.

    ``api_base`` points the client at another server (a local test double); every SDK base
    address is redirected so nothing reaches the real API by accident. ``timeout`` bounds a
    whole request; ``connect_timeout`` bounds opening the connection, which is the one wait
    after which the request is known not to have been sent.
    """

    name: str = PROVIDER

    def __init__(
        self,
        api_key: str,
        webhook_secret: str | None = None,
        api_base: str | None = None,
        *,
        timeout: float = 20.0,
        connect_timeout: float = 5.0,
        webhook_tolerance: int = DEFAULT_WEBHOOK_TOLERANCE,
        page_size: int = MAX_PAGE_SIZE,
    ) -> None:
        check_client_settings(
            timeout=timeout,
            connect_timeout=connect_timeout,
            page_size=page_size,
            max_page_size=MAX_PAGE_SIZE,
        )
        if webhook_tolerance <= 0:
            # The SDK treats a tolerance of 0 as "never expire"; refuse that silently weak setting.
            raise ValueError("webhook_tolerance must be a positive number of seconds")
        super().__init__(webhook_secret)
        self._webhook_tolerance = webhook_tolerance
        self._transport = StripeTransport(
            api_key, api_base, timeout=timeout, connect_timeout=connect_timeout
        )
        self.customers = StripeCustomers(self._transport, page_size=page_size)
        self.plans = StripePlans(self._transport, page_size=page_size)
        self.prices = StripePrices(self._transport, page_size=page_size)
        self.subscriptions = StripeSubscriptions(self._transport, page_size=page_size)

    def _verify(self, delivery: Delivery, secret: str) -> ProviderEvent:
        """Verify and parse a delivery (see :func:`~qzpay.providers.stripe.webhooks.parse_webhook`).

        Its ``query`` is unused (Stripe signs only the body); it is part of the protocol for
        providers that sign query parameters.
        """
        return parse_webhook(
            delivery.payload, delivery.headers, secret=secret, tolerance=self._webhook_tolerance
        )

    async def close(self) -> None:
        await self._transport.close()
