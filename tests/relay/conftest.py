"""NATS for the relay tests: the server on 127.0.0.1:4222 (or QZPAY_TEST_NATS_URL), skipped off
CI when it is not reachable and a failure with CI=true; a stream and subject prefix per test; and
a private nats-server for outage tests."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.relay.support import delete_stream

NATS_URL = os.environ.get("QZPAY_TEST_NATS_URL", "nats://127.0.0.1:4222")
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _reachable(url: str) -> bool:
    host, _, port = url.removeprefix("nats://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def nats_url() -> str:
    if not _reachable(NATS_URL):
        message = f"NATS is not reachable at {NATS_URL}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI=true: the relay tests must run)")
        pytest.skip(message)
    return NATS_URL


@dataclass(frozen=True)
class Target:
    stream: str
    prefix: str


@pytest.fixture
async def target(nats_url: str) -> AsyncIterator[Target]:
    """A stream name and subject prefix of this test's own (streams may not share subjects)."""
    token = secrets.token_hex(4)
    chosen = Target(stream=f"QZPAY_TEST_{token.upper()}", prefix=f"qzt{token}")
    yield chosen
    await delete_stream(nats_url, chosen.stream)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnNats:
    """A nats-server of this test's own (never the shared one), with its own store directory."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _reachable(self.url):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"nats-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def own_nats(nats_url: str, tmp_path: Path) -> Iterator[OwnNats]:
    server = OwnNats(tmp_path / "nats-store")
    server.start()
    try:
        yield server
    finally:
        server.stop()
