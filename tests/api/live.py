"""A real uvicorn server on 127.0.0.1, on a free port, in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI

from qzpay import Billing

T = TypeVar("T")
API_KEY = "test-key-0123456789abcdef"


@dataclass
class LiveServer:
    base_url: str
    loop: asyncio.AbstractEventLoop
    billing: Billing | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's event loop (where its Billing lives)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def client(self, key: str | None = API_KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


@contextmanager
def serving(app: FastAPI, billing: Billing | None = None) -> Iterator[LiveServer]:
    """Serve ``app`` (lifespan included) until the block exits."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP,
    # and without it every keep-alive request waits ~40 ms on a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; we keep the socket: no race
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    loop = asyncio.new_event_loop()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if failure or not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            raise RuntimeError(f"the test server did not start: {failure!r}")
        time.sleep(0.005)
    try:
        yield LiveServer(base_url=f"http://127.0.0.1:{port}", loop=loop, billing=billing)
    finally:
        server.should_exit = True
        thread.join(15)
        loop.close()
        sock.close()
        if failure:
            raise failure[0]
