"""The relay loop: the durable event log, in order and without loss, into a JetStream stream.

Order: events are read with ``billing.events.list(after=position)`` and published in that order
on one connection. Each publish after the first of a run carries ``Nats-Expected-Last-Msg-Id``
(the previous event's id), so JetStream stores an event only right after its predecessor: if
one publish is lost, every later one in flight is refused, and the relay resumes from the last
event acknowledged. That holds across pages, so up to ``max_in_flight`` events (several pages)
are in flight at once (see ``qzpay.relay.publisher``). ``Nats-Msg-Id`` (the event id) makes a
replayed event a duplicate, which JetStream acknowledges without storing again (it checks the id
before the expectation).

Loss: the position (the last event JetStream acknowledged) is written to qzpay's database only
after the acks of everything up to it, so a crash replays at most the unacknowledged tail. On
start the relay also reads the stream's last message id and, if it is a few events ahead of the
stored position, moves the position there: a replay after the de-duplication window ends is
avoided too.

Lease: one relay per name publishes; the others wait. The lease lasts ``lease_seconds``, is
renewed by its holder (every third of it, and by every position write) and is taken over when
it runs out. Position writes name the holder and fail for anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from qzpay.billing import Billing
from qzpay.errors import QZPayError, StorageError
from qzpay.events import Event
from qzpay.relay.backends import relay_state_for
from qzpay.relay.jetstream import (
    BROKER_ERRORS,
    WRONG_LAST_MSG_ID,
    Broken,
    Connection,
    Retention,
    StreamReport,
    StreamSettings,
    ensure_stream,
    last_message_id,
)
from qzpay.relay.publisher import Flight, Publisher, collect
from qzpay.relay.state import RelayState, new_holder_id

logger = logging.getLogger("qzpay.relay")

AckedHook = Callable[[Sequence[Event]], object]


class LeaseLost(Exception):
    """Another relay holds the lease now: stop publishing."""


@dataclass
class RelayStats:
    """What one ``run_relay`` call did (events acknowledged and stored as the position)."""

    holder: str
    published: int = 0
    duplicates: int = 0
    position: str | None = None
    stream: StreamReport | None = None
    pauses: int = 0
    caught_up: bool = False


@dataclass(frozen=True)
class RelayConfig:
    nats_url: str
    stream: StreamSettings
    name: str
    batch_size: int = 500
    max_in_flight: int = 1000
    poll_interval: float = 0.05
    lease_seconds: float = 5.0
    ack_timeout: float = 5.0
    max_backoff: float = 5.0
    summary_interval: float = 60.0
    once: bool = False
    on_acked: AckedHook | None = field(default=None, compare=False)


async def run_relay(
    billing: Billing,
    nats_url: str,
    *,
    stream: str = "QZPAY",
    subject_prefix: str = "qzpay",
    stop: asyncio.Event | None = None,
    name: str | None = None,
    retention: Retention = "limits",
    max_age: float | None = None,
    max_bytes: int | None = None,
    duplicate_window: float = 120.0,
    batch_size: int = 500,
    max_in_flight: int = 1000,
    poll_interval: float = 0.05,
    lease_seconds: float = 5.0,
    ack_timeout: float = 5.0,
    max_backoff: float = 5.0,
    summary_interval: float = 60.0,
    once: bool = False,
    holder: str | None = None,
    on_acked: AckedHook | None = None,
) -> RelayStats:
    """Relay ``billing``'s event log to the JetStream stream ``stream`` until ``stop`` is set.

    Each event goes to ``<subject_prefix>.<event type>`` with its JSON as the body (as in
    ``GET /events``) and ``Nats-Msg-Id`` = its id. ``name`` (default: the stream name) keys the
    stored position and lease. With ``once``, return as soon as the log is relayed to its end
    (after taking the lease). Broker and database outages pause the relay with a log line and
    it resumes by itself; ``on_acked`` is called with each batch once it is acknowledged and
    its position stored.
    """
    if batch_size < 1 or max_in_flight < batch_size:
        raise ValueError("need 1 <= batch_size <= max_in_flight")
    if lease_seconds <= 0 or ack_timeout <= 0:
        raise ValueError("lease_seconds and ack_timeout must be positive")
    settings = StreamSettings(
        stream, subject_prefix, retention, max_age, max_bytes, duplicate_window
    )
    config = RelayConfig(
        nats_url,
        settings,
        name or stream,
        batch_size=min(batch_size, 1000),
        max_in_flight=max_in_flight,
        poll_interval=poll_interval,
        lease_seconds=lease_seconds,
        ack_timeout=ack_timeout,
        max_backoff=max_backoff,
        summary_interval=summary_interval,
        once=once,
        on_acked=on_acked,
    )
    relay = _Relay(billing, config, stop or asyncio.Event(), holder or new_holder_id())
    return await relay.run()


class _Relay:
    def __init__(self, billing: Billing, config: RelayConfig, stop: asyncio.Event, holder: str):
        self.billing = billing
        self.config = config
        self.state: RelayState = relay_state_for(billing.storage)
        self.stop = stop
        self.stats = RelayStats(holder=holder)
        self.lost = asyncio.Event()
        self.connection: Connection | None = None
        self._renewed_at = 0.0
        self._backoff = 0.0
        self._summary_at = time.monotonic()
        self._summary_count = 0
        self._last_event: Event | None = None

    @property
    def holder(self) -> str:
        return self.stats.holder

    # -- the lease ------------------------------------------------------------------------
    async def run(self) -> RelayStats:
        name, waiting = self.config.name, False
        try:
            while not self.stop.is_set():
                try:
                    acquired = await self.state.try_acquire_lease(
                        name, self.holder, self.config.lease_seconds
                    )
                except StorageError as exc:
                    await self._pause("the database is unavailable", exc)
                    continue
                if not acquired:
                    if not waiting:
                        record = None
                        with contextlib.suppress(StorageError):
                            record = await self.state.get(name)
                        logger.info(
                            "relay %s: lease held by %s; waiting to take over",
                            name,
                            record.holder if record else "another relay",
                        )
                        waiting = True
                    await self._sleep(min(1.0, self.config.lease_seconds / 4))
                    continue
                waiting = False
                self._renewed_at = time.monotonic()
                self.lost.clear()
                logger.info("relay %s: publishing as %s", name, self.holder)
                try:
                    if await self._hold():
                        break
                except LeaseLost:
                    logger.warning("relay %s: lost the lease; stopped publishing", name)
        finally:
            await self._close_connection()
            with contextlib.suppress(QZPayError):
                await self.state.release_lease(name, self.holder)
        self._summary(final=True)
        return self.stats

    async def _renew(self) -> None:
        interval = self.config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                ok = await self.state.renew_lease(
                    self.config.name, self.holder, self.config.lease_seconds
                )
            except StorageError as exc:
                if time.monotonic() - self._renewed_at > self.config.lease_seconds:
                    logger.warning("relay %s: cannot renew the lease (%s)", self.config.name, exc)
                    self.lost.set()
                    return
                continue
            if not ok:
                self.lost.set()
                return
            self._renewed_at = time.monotonic()

    async def _hold(self) -> bool:
        """Publish while holding the lease; True when done (``once``, or stopped)."""
        renewer = asyncio.create_task(self._renew())
        try:
            while not self.stop.is_set():
                if self.lost.is_set():
                    raise LeaseLost
                try:
                    if self.connection is None or self.connection.broken.is_set():
                        await self._connect()
                    position = await self._start_position()
                    done = await self._pump(position)
                    self._backoff = 0.0
                    if done:
                        return True
                except BROKER_ERRORS as exc:
                    await self._close_connection()
                    await self._pause(f"NATS at {self.config.nats_url} is unavailable", exc)
                except StorageError as exc:
                    await self._pause("the database is unavailable", exc)
            return True
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _pause(self, why: str, exc: BaseException) -> None:
        self._backoff = min(self.config.max_backoff, max(0.2, self._backoff * 2))
        self.stats.pauses += 1
        logger.warning(
            "relay %s paused: %s (%s); retrying in %.1fs from event %s",
            self.config.name,
            why,
            str(exc) or type(exc).__name__,
            self._backoff,
            self.stats.position or "(start)",
        )
        await self._sleep(self._backoff)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    # -- the broker -----------------------------------------------------------------------
    async def _connect(self) -> None:
        await self._close_connection()
        self.connection = await Connection.open(
            self.config.nats_url,
            name=f"qzpay-relay {self.holder}",
            max_in_flight=self.config.max_in_flight,
        )
        self.stats.stream = await ensure_stream(self.connection.js, self.config.stream)
        if self.stats.pauses:
            logger.info("relay %s: connected to NATS again; resuming", self.config.name)

    async def _close_connection(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()

    async def _start_position(self) -> str | None:
        """The stored position, moved forward to the stream's last message when that is an
        event a little further on in the log (acknowledged, but the position not yet written)."""
        record = await self.state.get(self.config.name)
        position = record.position if record else None
        assert self.connection is not None
        last = await last_message_id(self.connection.js, self.config.stream.name)
        if last is not None and last != position:
            cursor, seen = position, 0
            while seen < 4 * self.config.max_in_flight:
                page = await self.billing.events.list(after=cursor, limit=1000)
                ids = [e.id for e in page]
                if last in ids:
                    count = seen + ids.index(last) + 1
                    await self._store(last, count)
                    logger.info(
                        "relay %s: the stream already holds %d events after the stored "
                        "position; continuing after %s",
                        self.config.name,
                        count,
                        last,
                    )
                    position = last
                    break
                if len(page) < 1000:
                    break
                cursor, seen = page[-1].id, seen + len(page)
        self.stats.position = position
        return position

    async def _store(self, position: str, count: int) -> None:
        ok = await self.state.set_position(
            self.config.name, self.holder, position, count, self.config.lease_seconds
        )
        if not ok:
            self.lost.set()
            raise LeaseLost
        self._renewed_at = time.monotonic()
        self.stats.position = position
        self.stats.published += count

    # -- publishing -----------------------------------------------------------------------
    async def _pump(self, position: str | None) -> bool:
        """Publish from ``position`` on; True once caught up with ``once``, False on stop.

        Pages are published while the acks of earlier ones come in, up to ``max_in_flight``
        events unacknowledged; the next page is read meanwhile. Acks are collected oldest page
        first, and the position stored for the acknowledged prefix (see ``_settle``)."""
        config, cursor = self.config, position
        assert self.connection is not None
        publisher = Publisher(self.connection.js, config.stream)
        flights: deque[Flight] = deque()
        read: asyncio.Task[list[Event]] | None = None
        try:
            while not self.stop.is_set():
                if self.lost.is_set():
                    raise LeaseLost
                if read is None:
                    read = asyncio.create_task(self._read(cursor))
                page = await read
                read = None
                if not page:
                    await self._settle(flights, keep=0)
                    self.stats.caught_up = True
                    self._summary()
                    if config.once:
                        return True
                    await self._sleep(config.poll_interval)
                    continue
                self.stats.caught_up = False
                await self._settle(flights, keep=config.max_in_flight - len(page))
                flights.append(await publisher.publish(page))
                cursor = page[-1].id
                read = asyncio.create_task(self._read(cursor))
                self._summary()
            await self._settle(flights, keep=0)
            return False
        finally:
            for flight in flights:
                flight.cancel()
            if read is not None:
                read.cancel()
                with contextlib.suppress(asyncio.CancelledError, QZPayError):
                    await read

    async def _read(self, after: str | None) -> list[Event]:
        return await self.billing.events.list(after=after, limit=self.config.batch_size)

    async def _settle(self, flights: deque[Flight], *, keep: int) -> None:
        """Collect the acks of the oldest flights, in order: those already acknowledged, and
        more until at most ``keep`` events are left in flight. Store the position of the last
        of the contiguous acknowledged prefix (one write for them all), then raise if a publish
        failed (the flights after it are cancelled, and all is resent from the position)."""
        assert self.connection is not None
        in_flight = sum(len(flight.futures) for flight in flights)
        acked: list[Event] = []
        failure: BaseException | None = None
        while flights and (in_flight > keep or flights[0].probably_acked()):
            flight = flights.popleft()
            in_flight -= len(flight.futures)
            acks = await collect(flight, self.connection.broken, self.config.ack_timeout)
            self.stats.duplicates += acks.duplicates
            acked.extend(flight.events[: acks.acked])
            if acks.failure is not None:
                failure = acks.failure
                break
        if acked:
            await self._store(acked[-1].id, len(acked))
            self._last_event = acked[-1]
            self._summary_count += len(acked)
            if self.config.on_acked is not None:
                self.config.on_acked(acked)
        if failure is not None:
            if getattr(failure, "err_code", None) == WRONG_LAST_MSG_ID:
                failure = Broken(f"an earlier publish was lost ({failure}); resending")
            raise failure

    def _summary(self, *, final: bool = False) -> None:
        now = time.monotonic()
        elapsed = now - self._summary_at
        if not final and elapsed < self.config.summary_interval:
            return
        last = self._last_event
        age = f"{time.time() - last.created_at.timestamp():.1f}s" if last else "-"
        logger.info(
            "relay %s%s: %d events in %.0fs (%.0f/s); %d in all, %d duplicates; position %s "
            "(relayed %s after its commit); %s",
            self.config.name,
            " stopped" if final else "",
            self._summary_count,
            elapsed,
            self._summary_count / elapsed if elapsed else 0.0,
            self.stats.published,
            self.stats.duplicates,
            self.stats.position or "(start)",
            age,
            "caught up" if self.stats.caught_up else "behind",
        )
        self._summary_at, self._summary_count = now, 0
