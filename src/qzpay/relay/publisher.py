"""Publishing pages of events to JetStream, chained one to the next, and collecting the acks.

Every publish after the first of a pipeline carries ``Nats-Expected-Last-Msg-Id`` = the id of
the event published before it (across pages too), so JetStream stores an event only right after
its predecessor: if one publish is lost or refused, every later one in flight is refused as
well, whichever page it belongs to. That is what lets several pages be in flight at once.

Cost: ``publish_async`` is called without ``wait_stall``. With a timeout, nats-py wraps the wait
for its in-flight semaphore in ``asyncio.wait_for``, which on Python 3.11 makes a task per
message and so yields to the event loop after every publish: nats-py's flusher then writes each
message with its own ``send()`` call (the relay measured 7x slower than the same loop without
it). The relay never has more than ``max_in_flight`` publishes outstanding (nats-py's semaphore
has that size) and cancels the ones it gives up on, so the semaphore never has to be waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from qzpay.events import Event
from qzpay.relay.jetstream import EXPECTED_LAST_MSG_ID, MSG_ID, Broken, PubAck, StreamSettings

try:
    from nats.js import JetStreamContext
except ImportError as exc:  # pragma: no cover - jetstream.py raised the helpful error already
    raise ImportError('the event relay needs nats-py: pip install "qzpay[nats]"') from exc


@dataclass(slots=True)
class Flight:
    """A page of events published, with one future per event (its ack), in log order."""

    events: list[Event]
    futures: list[asyncio.Future[PubAck]]

    def probably_acked(self) -> bool:
        """Whether the last ack is in (acks come in publish order on one connection)."""
        return not self.futures or self.futures[-1].done()

    def cancel(self, start: int = 0) -> None:
        for future in self.futures[start:]:
            future.cancel()


@dataclass(frozen=True, slots=True)
class Acks:
    """How a flight went: its first ``acked`` events were acknowledged (``duplicates`` of them
    as already stored), and ``failure`` is why the next one was not (None if all were)."""

    acked: int
    duplicates: int
    failure: BaseException | None


class Publisher:
    """Publishes pages in log order on one JetStream connection; one per run of the pipeline
    (its first publish carries no expectation: the stream may hold anything before it)."""

    def __init__(self, js: JetStreamContext, settings: StreamSettings) -> None:
        self._publish = js.publish_async
        self._prefix = f"{settings.subject_prefix}."
        self._stream = settings.name
        self._previous: str | None = None

    async def publish(self, events: Sequence[Event]) -> Flight:
        publish, prefix, stream = self._publish, self._prefix, self._stream
        previous = self._previous
        futures: list[asyncio.Future[PubAck]] = []
        try:
            for event in events:
                headers = {MSG_ID: event.id}
                if previous is not None:
                    headers[EXPECTED_LAST_MSG_ID] = previous
                futures.append(
                    await publish(
                        prefix + event.type,
                        event.model_dump_json().encode(),
                        stream=stream,
                        headers=headers,
                    )
                )
                previous = event.id
        except BaseException:
            Flight([], futures).cancel()
            raise
        self._previous = previous
        return Flight(list(events), futures)


async def collect(flight: Flight, broken: asyncio.Event, ack_timeout: float) -> Acks:
    """Await the flight's acks in order, each for up to ``ack_timeout`` seconds, stopping at the
    first failure; the futures after the acknowledged prefix are cancelled."""
    waiter: asyncio.Future[Any] | None = None
    acked = duplicates = 0
    failure: BaseException | None = None
    try:
        for future in flight.futures:
            if not future.done():
                if waiter is None:
                    waiter = asyncio.ensure_future(broken.wait())
                await asyncio.wait(
                    [cast("asyncio.Future[Any]", future), waiter],
                    timeout=ack_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            if not future.done() or future.cancelled():
                failure = Broken("no acknowledgement from JetStream")
                break
            exc = future.exception()
            if exc is not None:
                failure = exc
                break
            if future.result().duplicate:
                duplicates += 1
            acked += 1
    finally:
        if waiter is not None:
            waiter.cancel()
        flight.cancel(acked)
    return Acks(acked, duplicates, failure)
