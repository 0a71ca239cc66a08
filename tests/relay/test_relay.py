"""The event relay against a real NATS server: every event in the stream exactly once, in log
order, through concurrent writers, SIGKILLed relays, a broker outage, and a lease takeover."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
import typer
from typer.testing import CliRunner

from qzpay import Billing
from qzpay.relay import relay_status, run_relay
from qzpay.relay.cli import relay_command
from tests.conftest import _admin, _with_database
from tests.relay.conftest import OwnNats, Target
from tests.relay.support import (
    delete_stream,
    log_ids,
    spawn_relay,
    spawn_writers,
    stream_ids,
    wait_all,
    wait_for,
)


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """A database of this test's own (relays and writers connect from other processes)."""
    name = f"qzpay_relay_{secrets.token_hex(5)}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(postgres_url, name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'relay.db'}?synchronous=NORMAL"
    else:
        url = str(request.getfixturevalue("fresh_postgres"))
    async with Billing(url):  # migrate once, before processes race to
        pass
    return url


async def caught_up(billing: Billing, stream: str) -> bool:
    status = await relay_status(billing, stream=stream)
    return status.lag_events == 0 and status.position is not None


async def assert_exactly_once_in_order(database_url: str, nats_url: str, target: Target) -> int:
    expected = await log_ids(database_url)
    found = await stream_ids(nats_url, target.stream, target.prefix)
    assert len(found) == len(set(found)), "an event is in the stream twice"
    assert found == expected
    return len(found)


async def test_ten_thousand_events_from_four_writers(
    database_url: str, nats_url: str, target: Target
) -> None:
    writers = spawn_writers(database_url, processes=4, each=2500)
    stop = asyncio.Event()
    async with Billing(database_url) as billing:
        relay = asyncio.create_task(
            run_relay(
                billing,
                nats_url,
                stream=target.stream,
                subject_prefix=target.prefix,
                stop=stop,
                poll_interval=0.02,
            )
        )
        await asyncio.to_thread(wait_all, writers)
        await wait_for(lambda: caught_up(billing, target.stream), within=60)
        stop.set()
        stats = await relay
    assert stats.published == 10_000
    assert await assert_exactly_once_in_order(database_url, nats_url, target) == 10_000


async def test_sigkilled_relays_lose_and_repeat_nothing(
    tmp_path: Path, nats_url: str, target: Target
) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}?synchronous=NORMAL"
    async with Billing(url):
        pass
    writers = spawn_writers(url, processes=2, each=2000, pause=0.005)
    rng = random.Random()
    for _ in range(10):
        relay = spawn_relay(url, nats_url, target.stream, target.prefix, "--lease-seconds", "0.5")
        await asyncio.sleep(rng.uniform(0.9, 1.8))  # ~0.7 s to start, then publishing
        relay.send_signal(signal.SIGKILL)
        relay.wait()
    await asyncio.to_thread(wait_all, writers)
    final = spawn_relay(url, nats_url, target.stream, target.prefix, "--once")
    assert await asyncio.to_thread(final.wait, 60) == 0
    assert await assert_exactly_once_in_order(url, nats_url, target) == 4000


async def test_broker_outage_pauses_and_resumes(
    tmp_path: Path, own_nats: OwnNats, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'outage.db'}?synchronous=NORMAL"
    target = Target(stream="OUTAGE", prefix="outage")
    async with Billing(url) as billing:
        writers = spawn_writers(url, processes=2, each=1500, pause=0.002)
        stop = asyncio.Event()
        caplog.set_level(logging.INFO, logger="qzpay.relay")
        relay = asyncio.create_task(
            run_relay(
                billing,
                own_nats.url,
                stream=target.stream,
                subject_prefix=target.prefix,
                stop=stop,
                max_backoff=0.5,
                ack_timeout=1.0,
            )
        )
        await wait_for(lambda: _published_at_least(billing, target.stream, 500), within=30)
        own_nats.stop()
        await asyncio.sleep(1.5)
        own_nats.start()
        await asyncio.to_thread(wait_all, writers)
        await wait_for(lambda: caught_up(billing, target.stream), within=30)
        stop.set()
        stats = await relay
    assert stats.pauses >= 1
    assert "is unavailable" in caplog.text
    assert "resuming" in caplog.text
    assert await assert_exactly_once_in_order(url, own_nats.url, target) == 3000


async def _published_at_least(billing: Billing, stream: str, count: int) -> bool:
    return (await relay_status(billing, stream=stream)).published >= count


async def test_second_relay_takes_over_within_the_lease(
    tmp_path: Path, nats_url: str, target: Target
) -> None:
    url = f"sqlite:///{tmp_path / 'lease.db'}?synchronous=NORMAL"
    lease = 1.5
    async with Billing(url) as billing:
        first = spawn_relay(
            url, nats_url, target.stream, target.prefix, "--lease-seconds", str(lease)
        )
        await wait_for(lambda: _holder_is(billing, target.stream, first.pid), within=20)
        second = spawn_relay(
            url, nats_url, target.stream, target.prefix, "--lease-seconds", str(lease)
        )
        writers = spawn_writers(url, processes=1, each=1500, pause=0.002)
        for _ in range(10):  # the second waits while the first publishes
            await asyncio.sleep(0.2)
            assert await _holder_is(billing, target.stream, first.pid)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = asyncio.get_running_loop().time()
        await wait_for(lambda: _holder_is(billing, target.stream, second.pid), within=lease + 2)
        took = asyncio.get_running_loop().time() - killed_at
        assert took <= lease + 0.5
        await asyncio.to_thread(wait_all, writers)
        await wait_for(lambda: caught_up(billing, target.stream), within=30)
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, 20) == 0
        status = await relay_status(billing, stream=target.stream)
    assert status.holder is None or not status.lease_active  # released on SIGTERM
    assert await assert_exactly_once_in_order(url, nats_url, target) == 1500


async def _holder_is(billing: Billing, stream: str, pid: int) -> bool:
    status = await relay_status(billing, stream=stream)
    return status.lease_active and f":{pid}:" in (status.holder or "")


async def test_memory_storage_and_message_shape(nats_url: str, target: Target) -> None:
    async with Billing("memory://") as billing:
        customer = await billing.customers.create(email="shape@example.com")
        await billing.customers.update(customer.id, name="Shape")
        stats = await run_relay(
            billing, nats_url, stream=target.stream, subject_prefix=target.prefix, once=True
        )
        assert stats.published == 2
        events = await billing.events.list()
        client = await nats.connect(nats_url)
        try:
            js = client.jetstream()
            subscription = await js.pull_subscribe(f"{target.prefix}.customer.*", "shape")
            messages = await subscription.fetch(2, timeout=5)
        finally:
            await client.close()
    assert [m.subject for m in messages] == [
        f"{target.prefix}.customer.created",
        f"{target.prefix}.customer.updated",
    ]
    for message, event in zip(messages, events, strict=True):
        assert (message.headers or {})["Nats-Msg-Id"] == event.id
        assert json.loads(message.data) == event.model_dump(mode="json")


async def test_existing_stream_is_used_as_is_and_reported(
    tmp_path: Path, nats_url: str, target: Target
) -> None:
    from nats.js.api import StorageType, StreamConfig

    client = await nats.connect(nats_url)
    try:
        await client.jetstream().add_stream(
            StreamConfig(
                name=target.stream,
                subjects=[f"{target.prefix}.>"],
                storage=StorageType.MEMORY,
                duplicate_window=60,
            )
        )
    finally:
        await client.close()
    url = f"sqlite:///{tmp_path / 'existing.db'}"
    async with Billing(url) as billing:
        await billing.customers.create(email="existing@example.com")
        stats = await run_relay(
            billing, nats_url, stream=target.stream, subject_prefix=target.prefix, once=True
        )
    assert stats.stream is not None
    assert not stats.stream.created
    assert any("storage memory" in d for d in stats.stream.differences)
    result = await asyncio.to_thread(
        CliRunner().invoke,
        _cli(),
        [
            "relay",
            "--status",
            "--json",
            "--database-url",
            url,
            "--to",
            nats_url,
            "--stream",
            target.stream,
            "--subject-prefix",
            target.prefix,
        ],
    )
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["position"] == stats.position
    assert status["lag_events"] == 0
    assert status["holder"] is None
    assert any("storage memory" in d for d in status["stream"]["differences"])
    await delete_stream(nats_url, target.stream)


def _cli() -> typer.Typer:  # the command as the main CLI registers it

    app = typer.Typer()
    app.command("relay")(relay_command)
    app.command("other")(lambda: None)  # two commands: "relay" is then a subcommand name
    return app


async def test_refused_publish_stops_every_later_page_in_flight(
    nats_url: str, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    """Several pages are in flight at once; when JetStream refuses one event (too large for
    the stream here), every later one in flight is refused too (Nats-Expected-Last-Msg-Id),
    whichever page it is in: the stream and the position end right before it, and once the
    stream accepts it the relay goes on from there, each event once and in order."""
    from nats.js.api import StorageType, StreamConfig

    client = await nats.connect(nats_url)
    js = client.jetstream()
    config = StreamConfig(
        name=target.stream,
        subjects=[f"{target.prefix}.>"],
        storage=StorageType.FILE,
        max_msg_size=2048,
    )
    await js.add_stream(config)
    big = {f"k{i}": "x" * 400 for i in range(8)}  # this event's body is over 3 kB
    try:
        async with Billing("memory://") as billing:
            for i in range(600):
                await billing.customers.create(
                    email=f"p{i}@example.com", metadata=big if i == 250 else None
                )
            events = await billing.events.list(limit=1000)
            stop = asyncio.Event()
            caplog.set_level(logging.INFO, logger="qzpay.relay")
            relay = asyncio.create_task(
                run_relay(
                    billing,
                    nats_url,
                    stream=target.stream,
                    subject_prefix=target.prefix,
                    stop=stop,
                    batch_size=100,
                    max_in_flight=400,
                    max_backoff=0.2,
                )
            )
            await wait_for(lambda: _published_at_least(billing, target.stream, 250), within=20)
            await asyncio.sleep(1.0)  # the relay retries the refused event meanwhile
            status = await relay_status(billing, stream=target.stream)
            assert status.position == events[249].id
            assert status.published == 250
            found = await stream_ids(nats_url, target.stream, target.prefix)
            assert found == [e.id for e in events[:250]]
            config.max_msg_size = -1
            await js.update_stream(config)
            await wait_for(lambda: caught_up(billing, target.stream), within=20)
            stop.set()
            stats = await relay
        assert stats.pauses >= 1
        assert "paused" in caplog.text
        found = await stream_ids(nats_url, target.stream, target.prefix)
        assert found == [e.id for e in events]
    finally:
        await client.close()
