"""A real PostgresStorage with a hook after each appended event, to fail or stall a write
between the change and its commit. The hook gets the transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from qzpay.events import Event
from qzpay.storage.postgres import PostgresStorage


class HookedStorage(PostgresStorage):
    def __init__(self, url: str, after_append: Callable[[Any], Awaitable[None]]) -> None:
        super().__init__(url)
        self.after_append = after_append
        self.enabled = True

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:  # type: ignore[override]
        async with super().transaction() as tx:
            original = tx.append_event

            async def append_event(event: Event) -> None:
                await original(event)
                if self.enabled:
                    await self.after_append(tx)

            tx.append_event = append_event  # type: ignore[method-assign]
            yield tx
