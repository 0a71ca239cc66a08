"""A real PostgresStorage with a hook after each appended event, to fail or stall a write
between the change and its commit. The hook gets the transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from qzpay.events import Event
from qzpay.storage.postgres import PostgresStorage


class HookedStorage(PostgresStorage):
    def __init__(
        self,
        url: str,
        after_append: Callable[[Any], Awaitable[None]],
        *,
        optimistic: bool = True,
    ) -> None:
        """``optimistic=False`` makes updates and deletes take the locking transaction (BEGIN,
        SELECT FOR UPDATE, write, COMMIT) that the one-round-trip path falls back to."""
        super().__init__(url)
        self.after_append = after_append
        self.enabled = True
        self.optimistic = optimistic

    def transaction(self) -> Any:
        return self._hooked(super().transaction())

    def optimistic_transaction(self) -> Any:
        if not self.optimistic:
            return self.transaction()
        return self._hooked(super().optimistic_transaction())

    @asynccontextmanager
    async def _hooked(self, transaction: Any) -> AsyncIterator[Any]:
        async with transaction as tx:
            original = tx.append_event

            async def append_event(event: Event) -> None:
                await original(event)
                if self.enabled:
                    await self.after_append(tx)

            tx.append_event = append_event
            yield tx
