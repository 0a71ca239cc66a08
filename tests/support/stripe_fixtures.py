"""Pytest fixtures for testing against a real localstripe server.

Register them once for the whole suite by adding to ``tests/conftest.py``::

    pytest_plugins = ["tests.support.stripe_fixtures"]

(``tests/providers/conftest.py`` re-exports them until that line exists.)

``localstripe`` is started once per session: it is slow to start and every test creates its
data with unique emails, so tests do not see each other's customers. Everything else is per
test, bound to the test's event loop.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from qzpay.providers.stripe import StripeProvider
from tests.support.fault_proxy import FaultProxy
from tests.support.localstripe import API_KEY, LocalStripe, start_localstripe
from tests.support.webhook_receiver import WebhookReceiver

WEBHOOK_SECRET = "whsec_qzpay_test"

ProviderFactory = Callable[..., StripeProvider]


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    """A private localstripe (loopback only, memory only) for the whole session."""
    server = start_localstripe()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def localstripe_url(localstripe: LocalStripe) -> str:
    return localstripe.url


@pytest.fixture
async def fault_proxy(localstripe_url: str) -> AsyncIterator[FaultProxy]:
    """A fault-injecting proxy in front of localstripe, fresh (no rules, no log) per test."""
    async with FaultProxy(localstripe_url) as proxy:
        yield proxy


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
async def make_stripe_provider(localstripe_url: str) -> AsyncIterator[ProviderFactory]:
    """Build StripeProviders aimed at localstripe (or ``api_base=``); all closed at teardown."""
    providers: list[StripeProvider] = []

    def make(**options: Any) -> StripeProvider:
        options.setdefault("api_base", localstripe_url)
        options.setdefault("webhook_secret", WEBHOOK_SECRET)
        provider = StripeProvider(API_KEY, **options)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        await provider.close()


@pytest.fixture
def stripe_provider(make_stripe_provider: ProviderFactory) -> StripeProvider:
    """A provider talking straight to localstripe."""
    return make_stripe_provider()


@pytest.fixture
def proxied_stripe_provider(
    make_stripe_provider: ProviderFactory, fault_proxy: FaultProxy
) -> StripeProvider:
    """A provider whose every request goes through ``fault_proxy``."""
    return make_stripe_provider(api_base=fault_proxy.url)


def unique_email(label: str = "customer") -> str:
    """An address no other test uses (the store is shared by the whole session)."""
    return f"{label}.{secrets.token_hex(6)}@example.com"
