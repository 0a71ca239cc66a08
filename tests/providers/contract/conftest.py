"""``provider_kit``: each contract test runs once per provider, against its test server."""

from __future__ import annotations

import pytest

from tests.providers.contract.kit import MercadoPagoKit, ProviderKit, StripeKit
from tests.support import fake_mercadopago, stripe_fixtures
from tests.support.stripe_sdk import stripe_sdk

__all__ = ["provider_kit", "stripe_sdk"]

BACK_URL = "https://example.com/subscribed"
"""Where MercadoPago sends a subscriber back (needed for its subscription plans)."""


@pytest.fixture(params=["stripe", "mercadopago"])
def provider_kit(request: pytest.FixtureRequest) -> ProviderKit:
    """One provider, its test server, a fault proxy in front of it, and ways to read the
    server's copy and sign deliveries without the provider (see ``kit.py``)."""
    if request.param == "stripe":
        return StripeKit(
            request.getfixturevalue("make_stripe_provider"),
            request.getfixturevalue("fault_proxy"),
            request.getfixturevalue("stripe_sdk"),
            request.getfixturevalue("localstripe_url"),
            stripe_fixtures.WEBHOOK_SECRET,
        )
    make_mercadopago = request.getfixturevalue("make_mercadopago_provider")
    return MercadoPagoKit(
        lambda **options: make_mercadopago(**{"back_url": BACK_URL, **options}),
        request.getfixturevalue("mercadopago_proxy"),
        request.getfixturevalue("fake_mercadopago"),
        fake_mercadopago.WEBHOOK_SECRET,
    )
