"""Run localstripe as a private, loopback-only test server.

Run as ``python -m tests.support.localstripe --port 0`` (0 picks a free port). The launcher
fixes two things about stock localstripe without touching site-packages:

* stock localstripe binds every interface (``::``); this binds 127.0.0.1 only;
* stock localstripe pickles its whole store to ``/tmp/localstripe.pickle`` after every write
  (slow, and shared by every instance on the machine); this replaces the dump with a no-op
  and never loads the file, so each run starts empty and shares nothing.
* stock localstripe has Products but no Prices, and sends no product update or delete events;
  :mod:`tests.support.localstripe_prices` adds both (see there).
* stock localstripe bills Plan-based subscriptions only;
  :mod:`tests.support.localstripe_subscriptions` makes them Price-based, with invoices, hosted
  invoice pages, idempotency keys and test hooks (see there).

It prints ``LISTENING <port>`` once the socket is bound and exits when its parent dies, so a
killed test run leaves no server behind. The helpers below (:func:`start_localstripe` and the
webhook registration) are what the fixtures use; importing this module patches nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

API_KEY = "sk_test_qzpay_localstripe"
"""localstripe accepts any key starting with ``sk_``; this one makes test traffic recognisable."""

_REPO_ROOT = Path(__file__).resolve().parents[2]
_READY_LINE = "LISTENING "


@dataclass
class LocalStripe:
    """A running launcher process and the base URL it serves."""

    url: str
    process: subprocess.Popen[bytes]

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate by PID (SIGTERM, then SIGKILL) and reap it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_localstripe(timeout: float = 20.0) -> LocalStripe:
    """Start the launcher and return once it answers an authenticated API call."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.localstripe", "--port", "0"],
            cwd=_REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(_REPO_ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        deadline = time.monotonic() + timeout
        try:
            port = _read_port(process, deadline)
            url = f"http://127.0.0.1:{port}"
            _wait_until_answering(url, process, deadline)
        except BaseException as exc:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
            stderr.seek(0)
            output = stderr.read().decode("utf-8", "replace")
            raise RuntimeError(f"localstripe did not start: {exc}\n{output}") from exc
    return LocalStripe(url=url, process=process)


def _read_port(process: subprocess.Popen[bytes], deadline: float) -> int:
    assert process.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            line = process.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"launcher exited with status {process.wait()}")
            if line.startswith(_READY_LINE):
                return int(line[len(_READY_LINE) :])
        elif process.poll() is not None:
            raise RuntimeError(f"launcher exited with status {process.returncode}")
    raise TimeoutError("launcher did not report its port")


def _wait_until_answering(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    request = urllib.request.Request(
        f"{url}/v1/customers?limit=1", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    while True:
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if process.poll() is not None:
            raise RuntimeError(f"launcher exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer")
        time.sleep(0.05)


async def register_webhook(
    base_url: str,
    name: str,
    *,
    url: str,
    secret: str,
    events: Sequence[str] | None = None,
) -> None:
    """Have localstripe sign and POST events to ``url`` (``POST /_config/webhooks/<name>``).

    Registrations are global to the server and cannot be deleted: re-register the same name
    with :func:`mute_webhook` when done.
    """
    body: dict[str, object] = {"url": url, "secret": secret}
    if events is not None:
        body["events"] = list(events)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/_config/webhooks/{name}", json=body) as response,
    ):
        response.raise_for_status()


async def wipe_localstripe(base_url: str) -> None:
    """Empty the whole store (``DELETE /_config/data``), for tests that compare whole accounts."""
    async with aiohttp.ClientSession() as session, session.delete(f"{base_url}/_config/data") as r:
        r.raise_for_status()


async def mute_webhook(base_url: str, name: str) -> None:
    """Point ``name`` at an event type that never happens (localstripe cannot unregister)."""
    await register_webhook(
        base_url,
        name,
        url="http://127.0.0.1:9/muted",
        secret="whsec_muted",
        events=["qzpay.test.muted"],
    )


# -- the launcher (runs in the child process) ---------------------------------------------


def _disable_pickle_store() -> None:
    """Make localstripe's store memory-only: never write (or read) /tmp/localstripe.pickle."""
    from localstripe import resources  # type: ignore[import-untyped]

    def _no_dump(self: object) -> None:
        return None

    resources.Store.dump_to_disk = _no_dump


async def _exit_with_parent(parent: int) -> None:
    """SIGTERM ourselves once the parent is gone, so an aborted test run leaves no server."""
    # Polling is the portable way: no event or signal announces that the parent died.
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)

    _disable_pickle_store()
    from aiohttp import web
    from localstripe.server import app  # type: ignore[import-untyped]

    from tests.support import localstripe_prices, localstripe_subscriptions

    localstripe_prices.install(app)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    localstripe_subscriptions.install(app, base_url=f"http://127.0.0.1:{port}")

    parent = os.getppid()
    tasks: set[asyncio.Task[None]] = set()

    async def watch_parent(_: web.Application) -> None:
        tasks.add(asyncio.create_task(_exit_with_parent(parent)))

    app.on_startup.append(watch_parent)

    print(f"{_READY_LINE}{port}", flush=True)
    # Nothing else may go to the pipe: the parent stops reading it after the first line.
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()
