"""Reading the durable event log: events of every registered resource, in commit order, each
with its ``data`` decoded as its resource's model (``qzpay.events.event_class``)."""

from __future__ import annotations

from typing import Any

from qzpay.customers import validation as v
from qzpay.events import Event
from qzpay.limits import DEFAULT_EVENT_PAGE, MAX_EVENT_PAGE
from qzpay.storage.base import Storage


class EventLog:
    """Reads the durable event log, so another process can consume events reliably."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def list(
        self, *, after: str | None = None, limit: int = DEFAULT_EVENT_PAGE
    ) -> list[Event[Any]]:
        """Events in commit order, starting after the event id ``after``."""
        if after is not None:
            v.check_id(after, "after")
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_EVENT_PAGE
        ):
            v.fail("limit", "out_of_range", f"must be an integer from 1 to {MAX_EVENT_PAGE}")
        return await self._storage.list_events(after=after, limit=limit)

    async def get(self, event_id: str) -> Event[Any] | None:
        return await self._storage.get_event(v.check_id(event_id, "event_id"))
