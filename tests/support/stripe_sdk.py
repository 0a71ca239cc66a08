"""The official Stripe SDK aimed straight at localstripe, for tests that act at Stripe the way
another system would (making or checking customers behind qzpay's back).

``stripe_sdk`` is a fixture; ``tests/sync/conftest.py`` makes it available there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import stripe

from qzpay.providers.base import QZPAY_CUSTOMER_ID_KEY
from tests.support.localstripe import API_KEY


@pytest.fixture
async def stripe_sdk(localstripe_url: str) -> AsyncIterator[stripe.StripeClient]:
    """A StripeClient talking to localstripe directly (no proxy, no retries)."""
    http = stripe.HTTPXClient()
    client = stripe.StripeClient(
        API_KEY, base_addresses={"api": localstripe_url}, http_client=http, max_network_retries=0
    )
    yield client
    await http.close_async()  # type: ignore[no-untyped-call]


async def stripe_copy(client: stripe.StripeClient, email: str, customer_id: str) -> str:
    """A Stripe customer carrying ``customer_id`` in its metadata, made outside qzpay; its id."""
    made = await client.v1.customers.create_async(
        {"email": email, "metadata": {QZPAY_CUSTOMER_ID_KEY: customer_id}}
    )
    return str(made.id)


async def live_at_stripe(client: stripe.StripeClient, provider_customer_id: str) -> bool:
    """Whether this Stripe customer exists and is not deleted."""
    try:
        found = await client.v1.customers.retrieve_async(provider_customer_id)
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:  # localstripe's answer for a deleted customer
            return False
        raise
    return not found.to_dict().get("deleted")
