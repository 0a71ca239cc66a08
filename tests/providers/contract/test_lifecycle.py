"""A provider's resources and its test server: closing, and staying on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qzpay.errors import ProviderSyncError
from tests.factories import idempotency_key, stored_customer
from tests.providers.contract.kit import SDK_WARNING, ProviderKit

pytestmark = pytest.mark.filterwarnings(SDK_WARNING)


async def test_close_is_idempotent_and_a_closed_provider_refuses_calls_unambiguously(
    provider_kit: ProviderKit,
) -> None:
    """Nothing is sent after close(): a call is refused with RuntimeError (a programming
    error), never reported as a sync failure that may have been applied."""
    provider = provider_kit.make()
    assert await provider.customers.retrieve(provider_kit.unknown_id) is None  # opens the pool

    await provider.close()
    await provider.close()

    with pytest.raises(RuntimeError):
        await provider.customers.retrieve(provider_kit.unknown_id)


async def test_async_with_closes_the_provider(
    provider_kit: ProviderKit,
) -> None:
    async with provider_kit.make() as provider:
        assert await provider.customers.retrieve(provider_kit.unknown_id) is None

    with pytest.raises(RuntimeError):
        await provider.customers.retrieve(provider_kit.unknown_id)


async def test_a_closed_provider_sends_nothing(provider_kit: ProviderKit) -> None:
    """What both providers already agree on: after close() a call fails and sends nothing."""
    provider = provider_kit.make(proxied=True)
    await provider.close()

    with pytest.raises((RuntimeError, ProviderSyncError)):
        await provider.customers.create(stored_customer(), idempotency_key=idempotency_key())

    assert provider_kit.proxy.requests == []


async def test_environment_proxies_are_ignored(
    provider_kit: ProviderKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # discard port: nothing answers
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    provider = provider_kit.make()  # made after the environment changed

    assert await provider.customers.retrieve(provider_kit.unknown_id) is None


def test_the_test_server_listens_on_loopback_only(provider_kit: ProviderKit) -> None:
    port = int(provider_kit.server_url.rsplit(":", 1)[1])
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            pytest.skip("needs Linux /proc/net")
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                listening.append(address)

    assert listening == ["0100007F"]  # 127.0.0.1, and nothing on IPv6
