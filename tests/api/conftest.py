"""Fixtures: the API on a real uvicorn server, over every storage backend."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from qzpay import Billing
from qzpay.api import APIKeyAuth, create_app
from tests.api.live import API_KEY, LiveServer, serving


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
