"""A loopback HTTP endpoint that records webhook deliveries exactly as they arrive.

The raw body and headers are kept untouched because signature checks are over the exact bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Delivery:
    body: bytes
    headers: dict[str, str]  # names as sent


@dataclass
class WebhookReceiver:
    """Answers every ``POST`` on any path with 200 and keeps it in ``deliveries``."""

    deliveries: list[Delivery] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    _port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/webhooks"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = site.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def wait_for(self, predicate: Callable[[Delivery], bool]) -> Delivery:
        """The first delivery satisfying ``predicate``; bound the wait with ``asyncio.timeout``."""
        async with self._arrived:
            while True:
                for delivery in self.deliveries:
                    if predicate(delivery):
                        return delivery
                await self._arrived.wait()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self._arrived:
            self.deliveries.append(Delivery(body=body, headers=dict(request.headers)))
            self._arrived.notify_all()
        return web.Response(text="ok")
