"""Helpers for the relay tests: reading a whole stream, the log, and writer/relay processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import nats
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig

from qzpay import Billing

ROOT = Path(__file__).resolve().parents[2]


async def delete_stream(url: str, stream: str) -> None:
    client = await nats.connect(url, allow_reconnect=False)
    try:
        await client.jetstream().delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await client.close()


async def stream_ids(url: str, stream: str, prefix: str) -> list[str]:
    """Every message's Nats-Msg-Id, in stream order (an ephemeral pull consumer)."""
    client = await nats.connect(url, allow_reconnect=False)
    try:
        js = client.jetstream()
        total = (await js.stream_info(stream)).state.messages
        subscription = await js.pull_subscribe(
            f"{prefix}.>", stream=stream, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
        )
        ids: list[str] = []
        while len(ids) < total:
            for message in await subscription.fetch(1000, timeout=5):
                ids.append((message.headers or {})["Nats-Msg-Id"])
        await subscription.unsubscribe()
        return ids
    finally:
        await client.close()


async def log_ids(database_url: str) -> list[str]:
    async with Billing(database_url) as billing:
        ids: list[str] = []
        after = None
        while page := await billing.events.list(after=after, limit=1000):
            ids.extend(e.id for e in page)
            after = page[-1].id
        return ids


def spawn_writers(
    database_url: str, processes: int, each: int, pause: float = 0.0
) -> list[subprocess.Popen[bytes]]:
    code = (
        "import asyncio, sys, time\n"
        "from qzpay import Billing\n"
        "async def main(url, n, pause, tag):\n"
        "    async with Billing(url) as billing:\n"
        "        for i in range(n):\n"
        "            await billing.customers.create(email=f'w{tag}-{i}@example.com')\n"
        "            if pause: await asyncio.sleep(pause)\n"
        "asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))\n"
    )
    return [
        subprocess.Popen(
            [sys.executable, "-c", code, database_url, str(each), str(pause), str(tag)], cwd=ROOT
        )
        for tag in range(processes)
    ]


def wait_all(processes: list[subprocess.Popen[bytes]], timeout: float = 120) -> None:
    for process in processes:
        assert process.wait(timeout=timeout) == 0


def spawn_relay(
    database_url: str, nats_url: str, stream: str, prefix: str, *extra: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qzpay.relay",
            "--to",
            nats_url,
            "--database-url",
            database_url,
            "--stream",
            stream,
            "--subject-prefix",
            prefix,
            *extra,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def wait_for(predicate, within: float, interval: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(interval)
