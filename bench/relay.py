"""``uv run python -m bench.relay [--n 10000] [--backends sqlite,postgres] [--rate 300]
[--seconds 5] [--nats-url URL] [--json]``: the event relay against a raw nats-py JetStream
publish loop of the same messages, in the same run, and the lag from commit to JetStream ack
under a steady write load. Streams are created per run on the NATS server and deleted after."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nats
from nats.js.api import StorageType, StreamConfig

from bench.postgres_scratch import PostgresScratch, default_admin_url
from qzpay import Billing
from qzpay.events import Event
from qzpay.relay import run_relay


def _names() -> tuple[str, str]:
    token = secrets.token_hex(3)
    return f"QZPAY_BENCH_{token.upper()}", f"qzb{token}"


async def _all_events(billing: Billing) -> list[Event]:
    events: list[Event] = []
    after = None
    while page := await billing.events.list(after=after, limit=1000):
        events.extend(page)
        after = page[-1].id
    return events


async def _fill(billing: Billing, n: int) -> None:
    async def writer(tag: int, count: int) -> None:
        for i in range(count):
            await billing.customers.create(email=f"b{tag}-{i}@example.com")

    await asyncio.gather(*(writer(t, n // 8 + (t < n % 8)) for t in range(8)))


async def _raw(nats_url: str, events: Sequence[Event], max_in_flight: int) -> float:
    """events/s of a plain publish_async loop of the relay's messages, awaiting every ack: the
    same subjects and body bytes (encoded before the clock starts) with ``Nats-Msg-Id``, the
    same in-flight limit, no ``wait_stall``. It leaves out the relay's
    ``Nats-Expected-Last-Msg-Id`` header, so the relay is measured against a slightly cheaper
    loop than its own messages would make."""
    stream, prefix = _names()
    client = await nats.connect(nats_url)
    js = client.jetstream(publish_async_max_pending=max_in_flight)
    await js.add_stream(
        StreamConfig(name=stream, subjects=[f"{prefix}.>"], storage=StorageType.FILE)
    )
    messages = [(f"{prefix}.{e.type}", e.model_dump_json().encode(), e.id) for e in events]
    try:
        started = time.perf_counter()
        futures = [
            await js.publish_async(subject, body, stream=stream, headers={"Nats-Msg-Id": id_})
            for subject, body, id_ in messages
        ]
        await asyncio.gather(*futures)
        return len(events) / (time.perf_counter() - started)
    finally:
        await js.delete_stream(stream)
        await client.close()


async def _relay(billing: Billing, nats_url: str, n: int, stream: str, prefix: str) -> float:
    started = time.perf_counter()
    stats = await run_relay(billing, nats_url, stream=stream, subject_prefix=prefix, once=True)
    elapsed = time.perf_counter() - started
    assert stats.published == n, stats
    return n / elapsed


async def _lag(
    billing: Billing, nats_url: str, rate: float, seconds: float, stream: str, prefix: str
) -> dict[str, float]:
    """Commit-to-ack lag while a writer commits ``rate`` creates/s for ``seconds`` (the relay
    starts caught up: same stream and position as the throughput run)."""
    lags: list[float] = []

    def acked(batch: Sequence[Event]) -> None:
        now = time.time()
        lags.extend(now - e.created_at.timestamp() for e in batch)

    stop = asyncio.Event()
    relay = asyncio.create_task(
        run_relay(
            billing, nats_url, stream=stream, subject_prefix=prefix, stop=stop, on_acked=acked
        )
    )
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    count = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        await billing.customers.create(email=f"lag{count}@example.com")
        count += 1
        await asyncio.sleep(max(0.0, count / rate - (time.perf_counter() - started)))
    await asyncio.sleep(0.5)
    stop.set()
    await relay
    ordered = sorted(lags)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {"writes_per_s": count / elapsed, "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


async def _backend(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    async with Billing(url) as billing:
        await _fill(billing, args.n)
        events = await _all_events(billing)
        raw = await _raw(args.nats_url, events, 1000)
        stream, prefix = _names()
        try:
            relay = await _relay(billing, args.nats_url, len(events), stream, prefix)
            lag = await _lag(billing, args.nats_url, args.rate, args.seconds, stream, prefix)
        finally:
            client = await nats.connect(args.nats_url)
            await client.jetstream().delete_stream(stream)
            await client.close()
    return {
        "events": len(events),
        "relay_events_per_s": round(relay),
        "raw_events_per_s": round(raw),
        "ratio": round(relay / raw, 2),
        **{k: round(v, 1) for k, v in lag.items()},
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as workdir:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                url = f"sqlite:///{Path(workdir) / 'relay.db'}"
                report[backend] = await _backend(backend, url, args)
            elif backend == "postgres":
                scratch = PostgresScratch(args.postgres_url)
                await scratch.create()
                try:
                    report[backend] = await _backend(backend, scratch.url, args)
                finally:
                    await scratch.drop()
            else:
                raise SystemExit(f"unknown backend {backend!r}")
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rate", type=float, default=300.0, help="steady writes/s for the lag")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--postgres-url", default=default_admin_url())
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = asyncio.run(_main(args))
    if args.json:
        print(json.dumps(report))
        return
    print("| backend | relay events/s | raw publish events/s | ratio | lag p50 ms | lag p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for backend, row in report.items():
        print(
            f"| {backend} | {row['relay_events_per_s']:,} | {row['raw_events_per_s']:,} | "
            f"{row['ratio']} | {row['p50_ms']} | {row['p99_ms']} |"
        )
    print(f"(lag at {args.rate:g} writes/s for {args.seconds:g}s)")


if __name__ == "__main__":
    main()
