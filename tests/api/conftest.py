"""Fixtures: the API on a real uvicorn server, over every storage backend."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from qzpay import Billing
from qzpay.api import APIKeyAuth, create_app
from qzpay.config import ENVIRONMENT_VARIABLES
from tests.api.live import API_KEY, LiveServer, serving

PROVIDER_VARIABLES = ENVIRONMENT_VARIABLES


@pytest.fixture(autouse=True)
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No payment provider from the environment unless a test sets one: ``app_from_env`` and
    the servers the load test starts read these, and must never reach a real Stripe."""
    for name in PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(storage_url: str) -> Iterator[LiveServer]:
    """create_app over a fresh store of the parametrized backend, with API_KEY required."""
    billing = Billing(storage_url)
    app = create_app(billing, auth=APIKeyAuth(API_KEY))
    with serving(app, billing) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http
