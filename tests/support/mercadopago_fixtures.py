"""Pytest fixtures for testing against the fake MercadoPago server (tests.support.fake_mercadopago).

Register them once for the whole suite by adding to ``tests/conftest.py``::

    pytest_plugins = ["tests.support.stripe_fixtures", "tests.support.mercadopago_fixtures"]

The fake is started once per session (it answers from its own thread, so it serves every test's
event loop); tests keep apart by using unique emails. ``isolated_mercadopago`` starts a private
one for tests that change its behaviour or need to see everything it stores. Providers and
proxies are per test, bound to the test's event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from qzpay.providers.mercadopago import MercadoPagoProvider
from tests.support.fake_mercadopago import (
    ACCESS_TOKEN,
    WEBHOOK_SECRET,
    FakeMercadoPago,
    NotificationReceiver,
    running,
    unique_email,
)
from tests.support.fault_proxy import FaultProxy

MercadoPagoFactory = Callable[..., MercadoPagoProvider]

__all__ = [
    "MercadoPagoFactory",
    "fake_mercadopago",
    "isolated_mercadopago",
    "make_mercadopago_provider",
    "mercadopago_provider",
    "mercadopago_proxy",
    "notification_receiver",
    "proxied_mercadopago_provider",
    "unique_email",
]


@pytest.fixture(scope="session")
def fake_mercadopago() -> Iterator[FakeMercadoPago]:
    """The fake MercadoPago shared by the session (loopback only, memory only)."""
    with running() as fake:
        yield fake


@pytest.fixture
def isolated_mercadopago() -> Iterator[FakeMercadoPago]:
    """A private fake for one test."""
    with running() as fake:
        yield fake


@pytest.fixture
async def mercadopago_proxy(fake_mercadopago: FakeMercadoPago) -> AsyncIterator[FaultProxy]:
    """A fault-injecting proxy in front of the shared fake, fresh (no rules, no log) per test."""
    async with FaultProxy(fake_mercadopago.url) as proxy:
        yield proxy


@pytest.fixture
async def make_mercadopago_provider(
    fake_mercadopago: FakeMercadoPago,
) -> AsyncIterator[MercadoPagoFactory]:
    """Build MercadoPagoProviders aimed at the fake (or ``api_base=``); closed at teardown."""
    providers: list[MercadoPagoProvider] = []

    def make(**options: Any) -> MercadoPagoProvider:
        options.setdefault("api_base", fake_mercadopago.url)
        options.setdefault("webhook_secret", WEBHOOK_SECRET)
        provider = MercadoPagoProvider(options.pop("access_token", ACCESS_TOKEN), **options)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        await provider.close()


@pytest.fixture
def mercadopago_provider(make_mercadopago_provider: MercadoPagoFactory) -> MercadoPagoProvider:
    """A provider talking straight to the shared fake."""
    return make_mercadopago_provider()


@pytest.fixture
def proxied_mercadopago_provider(
    make_mercadopago_provider: MercadoPagoFactory, mercadopago_proxy: FaultProxy
) -> MercadoPagoProvider:
    """A provider whose every request goes through ``mercadopago_proxy``."""
    return make_mercadopago_provider(api_base=mercadopago_proxy.url)


@pytest.fixture
async def notification_receiver() -> AsyncIterator[NotificationReceiver]:
    async with NotificationReceiver() as receiver:
        yield receiver
