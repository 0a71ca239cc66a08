"""The newest events of the log, for the Events page (newest first).

The event log only pages forward (``billing.events.list(after=, limit=)``), so the console keeps
a window of the latest ``size`` events in memory: the first read walks the whole log once
(``MAX_EVENT_PAGE`` events a request: O(total events), about a second per 100k events on
SQLite), every later read fetches only the events committed since, so every read is current.
A customer's timeline does not use it: it is one indexed read of that customer's events
(``Storage.list_record_events``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

from qzpay.errors import NotFoundError
from qzpay.event_log import EventLog
from qzpay.events import Event
from qzpay.limits import DEFAULT_EVENT_PAGE, MAX_EVENT_PAGE

DEFAULT_WINDOW: Final = 5_000


class EventTail:
    def __init__(self, log: EventLog, size: int = DEFAULT_WINDOW) -> None:
        self._log = log
        self.size = size
        self._window: deque[Event] = deque(maxlen=size)
        self._last: str | None = None
        self._lock = asyncio.Lock()
        self.seen = 0
        """How many events the walk has read (the log's length, once caught up)."""

    async def refresh(self) -> None:
        """Fetch the events committed since the last fetch."""
        async with self._lock:
            while True:
                try:
                    batch = await self._log.list(after=self._last, limit=MAX_EVENT_PAGE)
                except NotFoundError:  # the event we stopped at is gone (a reset store)
                    self._window.clear()
                    self._last, self.seen = None, 0
                    continue
                self._window.extend(batch)
                self.seen += len(batch)
                if batch:
                    self._last = batch[-1].id
                if len(batch) < MAX_EVENT_PAGE:
                    return

    async def latest(
        self,
        *,
        event_type: str | None = None,
        limit: int = DEFAULT_EVENT_PAGE,
    ) -> list[Event]:
        """Up to ``limit`` of the window's events, newest first (of ``event_type`` only, if
        given)."""
        await self.refresh()
        found: list[Event] = []
        for event in reversed(self._window):
            if event_type and event.type != event_type:
                continue
            found.append(event)
            if len(found) >= limit:
                break
        return found
