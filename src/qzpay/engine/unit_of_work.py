"""The unit of work: one storage transaction, the events recorded in it, and their handlers.

Every change is written with its events in one transaction (neither exists without the other);
the in-process handlers run after the commit, in the order the events were recorded, and not
at all when the transaction rolls back. This is the only place handlers are dispatched from.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from qzpay.events import Event, EventBus, new_event
from qzpay.ids import event_ids
from qzpay.storage.base import Storage, SupportsOptimisticWrites, Transaction, WriteConflict


class Versioned(Protocol):
    @property
    def updated_at(self) -> datetime: ...


class UnitOfWork:
    """``async with UnitOfWork(storage, bus) as work:`` write through ``work.tx``, record
    events with ``work.emit``; on normal exit commit, then dispatch."""

    __slots__ = ("_bus", "_events", "_transaction", "tx")

    tx: Transaction

    def __init__(self, storage: Storage, bus: EventBus, *, optimistic: bool = False) -> None:
        self._transaction: AbstractAsyncContextManager[Transaction] = (
            storage.optimistic_transaction()
            if optimistic and isinstance(storage, SupportsOptimisticWrites)
            else storage.transaction()
        )
        self._bus = bus
        self._events: list[Event[Any]] = []

    async def __aenter__(self) -> Self:
        self.tx = await self._transaction.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        suppressed = await self._transaction.__aexit__(exc_type, exc, tb)
        if exc_type is None:
            bus = self._bus
            for event in self._events:
                # Checked per event: a handler may subscribe another. With none, dispatch is
                # a no-op; skipping it saves a coroutine per event.
                if bus.has_handlers:
                    await bus.dispatch(event)
        return suppressed

    async def emit(
        self, event_type: str, data: Versioned, previous: dict[str, Any] | None = None
    ) -> Event[Any]:
        """Append an event about ``data`` (stamped with its ``updated_at``) to the transaction;
        its handlers run once the transaction has committed. ``event_type`` is a registered
        resource's (``qzpay.records``) and ``data`` that resource's record."""
        event = new_event(
            event_type,
            data,
            id=event_ids.new(),
            previous=previous,
            created_at=data.updated_at,
        )
        await self.tx.append_event(event)
        self._events.append(event)
        return event


class Units:
    """Opens units of work on one storage, dispatching to one bus."""

    __slots__ = ("bus", "optimistic", "storage")

    def __init__(self, storage: Storage, bus: EventBus) -> None:
        self.storage = storage
        self.bus = bus
        # Checked once: isinstance against a runtime protocol costs microseconds per call.
        self.optimistic = isinstance(storage, SupportsOptimisticWrites)

    def __call__(self, *, optimistic: bool = False) -> UnitOfWork:
        """A unit of work; ``optimistic`` asks for a transaction that reads without locking
        and fails the commit with WriteConflict if the record changed meanwhile (backends
        without one give an ordinary transaction). Use it only for a block that can be
        recomputed from a fresh read: see :func:`retrying`."""
        return UnitOfWork(self.storage, self.bus, optimistic=optimistic and self.optimistic)


MAX_OPTIMISTIC_ATTEMPTS = 8
"""How often a read-change-write block is recomputed after WriteConflicts before it takes the
locking path, which always succeeds (so a hot record degrades to today's speed, never fails)."""

T = TypeVar("T")


async def retrying(units: Units, block: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Run ``block`` in an optimistic unit of work, recomputing it from a fresh read on each
    WriteConflict; after MAX_OPTIMISTIC_ATTEMPTS, once more under the backend's locks.

    PostgreSQL then commits an update or delete in one round trip after its read instead of
    four (BEGIN + lock, SELECT FOR UPDATE, write, COMMIT): see qzpay.storage.postgres."""
    if units.optimistic:
        for _ in range(MAX_OPTIMISTIC_ATTEMPTS):
            try:
                async with units(optimistic=True) as work:
                    result = await block(work)
                return result
            except WriteConflict:
                continue
    async with units() as work:
        result = await block(work)
    return result
