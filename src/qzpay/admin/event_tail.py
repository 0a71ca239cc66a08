"""The newest events of the log, for pages that show them newest first.

The event log only pages forward (``billing.events.list(after=, limit=)``) and has no query by
customer, so the console keeps a window of the latest ``size`` events in memory: the first
read walks the whole log once (``MAX_EVENT_PAGE`` events a request: O(total events), about a
second per 100k events on SQLite), every later read fetches only the events committed since.
A customer's timeline is that window filtered by ``data.id``; older history is not shown (the
page says so).

Freshness: a read fetches new events at most once per ``max_age`` seconds (one second) per
process; ``stale()`` (called after every form the console handles) and ``fresh=True`` (the
Events page) fetch at once. So the console's own changes show immediately, and changes made
elsewhere (the JSON API, another process) within ``max_age``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Final

from qzpay.errors import NotFoundError
from qzpay.event_log import EventLog
from qzpay.events import Event
from qzpay.limits import DEFAULT_EVENT_PAGE, MAX_EVENT_PAGE

DEFAULT_WINDOW: Final = 5_000
DEFAULT_MAX_AGE: Final = 1.0


class EventTail:
    def __init__(
        self, log: EventLog, size: int = DEFAULT_WINDOW, max_age: float = DEFAULT_MAX_AGE
    ) -> None:
        self._log = log
        self.size = size
        self.max_age = max_age
        self._fresh_until = 0.0  # time.monotonic() until which the window counts as fresh
        self._generation = 0  # bumped by stale(): a fetch running then may have missed it
        self._window: deque[Event] = deque(maxlen=size)
        self._last: str | None = None
        self._lock = asyncio.Lock()
        self.seen = 0
        """How many events the walk has read (the log's length, once caught up)."""

    def stale(self) -> None:
        """The next read fetches new events (after a change the caller made)."""
        self._fresh_until = 0.0
        self._generation += 1

    async def refresh(self, *, fresh: bool = False) -> None:
        """Fetch the events committed since the last fetch, unless one finished less than
        ``max_age`` seconds ago (and ``fresh`` is False)."""
        if not fresh and time.monotonic() < self._fresh_until:
            return
        async with self._lock:
            if not fresh and time.monotonic() < self._fresh_until:
                return  # another read fetched while this one waited
            started, generation = time.monotonic(), self._generation
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
                    if generation == self._generation:
                        self._fresh_until = started + self.max_age
                    return

    async def latest(
        self,
        *,
        event_type: str | None = None,
        customer_id: str | None = None,
        limit: int = DEFAULT_EVENT_PAGE,
        fresh: bool = False,
    ) -> list[Event]:
        """Up to ``limit`` of the window's events, newest first, matching the filters
        (``fresh``: fetch new events whatever ``max_age`` says)."""
        await self.refresh(fresh=fresh)
        found: list[Event] = []
        for event in reversed(self._window):
            if event_type and event.type != event_type:
                continue
            if customer_id and event.data.id != customer_id:
                continue
            found.append(event)
            if len(found) >= limit:
                break
        return found
