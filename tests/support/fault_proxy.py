"""A loopback HTTP/1.1 proxy that injects network and server faults, controlled by the test.

It sits between the code under test and a real server (localstripe), records every request it
receives, and for each one applies the first matching injected :class:`Fault` (or passes it
through). Faults model what a client can observe of a real network:

* ``Fault.reset()``: the connection is reset after the request arrived, before forwarding.
  The client sent its request and got no answer, exactly as after a drop; it cannot tell the
  two apart, so for the client this is ambiguous too.
* ``Fault.drop()``: the request is forwarded (the server applies it), then the connection is
  closed without an answer: the textbook ambiguous outcome.
* ``Fault.delay(s)``: wait ``s`` seconds, then forward and answer (the request is applied even
  if the client gave up meanwhile, as a slow server would).
* ``Fault.respond(status)``: answer without forwarding (``server_error()`` 500,
  ``rate_limited()`` 429), with a Stripe-shaped error body.

A connection that is *refused* (nothing accepted it, so nothing was sent) cannot be decided
per request; :meth:`FaultProxy.refusing` stops listening for the duration of a ``with`` block.

Idempotency keys: :meth:`FaultProxy.key_reuses` lists every key that was sent with two different
requests (method, path with query, or body). With ``replay_idempotency=True`` the proxy also
plays Stripe's part, which localstripe does not: a request carrying a key seen before is answered
with the first answer for that key if it is the same request, and with Stripe's 400
``idempotency_error`` if it is not, without reaching the server.

Written for the tests, on asyncio streams only, so no client library's own retry or pooling
behaviour hides what happened on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

FaultKind = Literal["pass", "reset", "drop", "delay", "respond"]

# Headers that describe one connection, not the message: never copied across the proxy.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}
_REASONS |= {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do with one matching request; build it with the class methods."""

    kind: FaultKind
    seconds: float = 0.0
    status: int = 0
    body: bytes = b""

    @classmethod
    def passthrough(cls) -> Fault:
        return cls("pass")

    @classmethod
    def reset(cls) -> Fault:
        return cls("reset")

    @classmethod
    def drop(cls) -> Fault:
        return cls("drop")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        return cls("delay", seconds=seconds)

    @classmethod
    def respond(cls, status: int, body: bytes | None = None) -> Fault:
        if body is None:
            error = {"type": "api_error", "message": f"fault proxy: injected HTTP {status}"}
            body = json.dumps({"error": error}).encode()
        return cls("respond", status=status, body=body)

    @classmethod
    def server_error(cls) -> Fault:
        return cls.respond(500)

    @classmethod
    def rate_limited(cls) -> Fault:
        error = {
            "type": "invalid_request_error",
            "code": "rate_limit",
            "message": "fault proxy: injected rate limit",
        }
        return cls.respond(429, json.dumps({"error": error}).encode())


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the proxy received it, and the fault it got (``"pass"`` if none)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    fault: FaultKind

    def form(self) -> dict[str, str]:
        """The form-encoded body (what the Stripe SDK sends), blank values kept."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def identity(self) -> RequestIdentity:
        """What makes this request this request: method, path with query, and the body's
        content (parsed, so that the order of fields does not matter)."""
        target = f"{self.path}?{self.query}" if self.query else self.path
        return RequestIdentity(self.method, target, _content(self.headers, self.body))


@dataclass(frozen=True, slots=True)
class RequestIdentity:
    """A request as an idempotency key must name it: sent again, it is the same request."""

    method: str
    target: str
    content: str


def key_reuses(
    requests: Iterable[RecordedRequest], header: str = "idempotency-key"
) -> dict[str, list[RequestIdentity]]:
    """The idempotency keys (in ``header``) sent with more than one different request, each
    with those requests in the order first sent; empty when every key names one request."""
    seen: dict[str, list[RequestIdentity]] = {}
    for request in requests:
        key = request.headers.get(header.lower())
        if key is None:
            continue
        identities = seen.setdefault(key, [])
        identity = request.identity()
        if identity not in identities:
            identities.append(identity)
    return {key: identities for key, identities in seen.items() if len(identities) > 1}


def _content(headers: dict[str, str], body: bytes) -> str:
    kind = headers.get("content-type", "")
    text = body.decode("utf-8", "replace")
    if "json" in kind and body:
        with contextlib.suppress(ValueError):
            return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    if "x-www-form-urlencoded" in kind:
        return json.dumps(sorted(parse_qsl(text, keep_blank_values=True)))
    return text


Matcher = Callable[[RecordedRequest], bool]
_Answer = tuple[int, list[tuple[str, str]], bytes]


@dataclass
class _Rule:
    fault: Fault
    matches: Matcher
    remaining: int


@dataclass
class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream``; use as ``async with FaultProxy(url)``."""

    upstream: str
    replay_idempotency: bool = False
    requests: list[RecordedRequest] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)
    _replies: dict[str, tuple[RequestIdentity, _Answer]] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _port: int = 0
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and cut every connection, cancelling requests still in progress."""
        await self._stop_listening()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def inject(
        self,
        fault: Fault,
        *,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        where: Matcher | None = None,
        times: int = 1,
    ) -> None:
        """Apply ``fault`` to the next ``times`` requests matching every given condition.

        ``path`` is the exact path (query excluded) or a pattern that must match it fully.
        Rules are tried in the order they were injected; a used-up rule is ignored.
        """

        def matches(request: RecordedRequest) -> bool:
            if method is not None and request.method != method.upper():
                return False
            if isinstance(path, str) and request.path != path:
                return False
            if isinstance(path, re.Pattern) and not path.fullmatch(request.path):
                return False
            return where is None or where(request)

        self._rules.append(_Rule(fault, matches, times))

    def matching(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """The recorded requests with this method and exact path."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper()) and (path is None or r.path == path)
        ]

    def key_reuses(self, header: str = "idempotency-key") -> dict[str, list[RequestIdentity]]:
        """Every idempotency key this proxy saw sent with two different requests (see the
        module function :func:`key_reuses`); ``x-idempotency-key`` for MercadoPago."""
        return key_reuses(self.requests, header)

    @contextlib.asynccontextmanager
    async def refusing(self) -> AsyncIterator[None]:
        """Inside the block nothing listens on the port: connecting fails, nothing is sent.

        Open connections are cut too, so a pooled keep-alive connection cannot be reused.
        """
        await self._stop_listening()
        try:
            yield
        finally:
            await self.start()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    def _choose(self, request: RecordedRequest) -> Fault:
        for rule in self._rules:
            if rule.remaining > 0 and rule.matches(request):
                rule.remaining -= 1
                return rule.fault
        return Fault.passthrough()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while await self._one_exchange(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # Only close() cancels; ending quietly keeps asyncio from logging the stream
            # callback's "exception" for a handler that was shut down on purpose.
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()

    async def _one_exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Handle one request on a kept-alive connection; False when the connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        request_line, headers = _parse_head(head)
        method, target, _version = request_line.split(" ", 2)
        body = await _read_body(reader, headers)
        path, _, query = target.partition("?")
        probe = RecordedRequest(method.upper(), path, query, headers, body, "pass")
        fault = self._choose(probe)
        self.requests.append(
            RecordedRequest(method.upper(), path, query, headers, body, fault.kind)
        )

        if fault.kind == "reset":
            writer.transport.abort()
            return False
        if fault.kind == "respond":
            json_type = [("Content-Type", "application/json")]
            await _write_response(writer, fault.status, json_type, fault.body)
            return headers.get("connection", "").lower() != "close"
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        status, response_headers, response_body = await self._answer(probe, target)
        if fault.kind == "drop":
            writer.close()
            return False
        await _write_response(writer, status, response_headers, response_body)
        return headers.get("connection", "").lower() != "close"

    async def _answer(self, request: RecordedRequest, target: str) -> _Answer:
        """Forward, or with ``replay_idempotency`` answer a keyed request as Stripe would."""
        key = request.headers.get("idempotency-key")
        if not self.replay_idempotency or key is None or request.method == "GET":
            return await self._forward(request.method, target, request.headers, request.body)
        identity = request.identity()
        if key in self._replies:
            first, answer = self._replies[key]
            if first == identity:
                return answer
            error = {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same "
                "parameters they were first used with (fault proxy)",
            }
            body = json.dumps({"error": error}).encode()
            return 400, [("Content-Type", "application/json")], body
        answer = await self._forward(request.method, target, request.headers, request.body)
        if not 400 <= answer[0] < 500:  # Stripe saves no result for a refused request
            self._replies[key] = (identity, answer)
        return answer

    async def _forward(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> _Answer:
        """Send the request upstream on a fresh connection and read the whole answer."""
        upstream = urlsplit(self.upstream)
        host = upstream.hostname or "127.0.0.1"
        port = upstream.port or 80
        reader, writer = await asyncio.open_connection(host, port)
        try:
            lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}"]
            lines += [f"{k}: {v}" for k, v in headers.items() if k not in _HOP_BY_HOP]
            lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
            writer.write("\r\n".join(lines).encode("latin-1") + body)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, response_headers = _parse_head(head)
            status = int(status_line.split(" ", 2)[1])
            if status in (204, 304) or 100 <= status < 200:
                response_body = b""
            elif "content-length" in response_headers or "transfer-encoding" in response_headers:
                response_body = await _read_body(reader, response_headers)
            else:
                response_body = await reader.read()
            kept = [(k, v) for k, v in response_headers.items() if k not in _HOP_BY_HOP]
            return status, kept, response_body
        finally:
            writer.close()


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    first, *rest = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in rest:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return first, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return bytes(chunks)
            chunks += await reader.readexactly(size)
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0"))
    return await reader.readexactly(length) if length else b""


async def _write_response(
    writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines += [f"Content-Length: {len(body)}", "", ""]
    writer.write("\r\n".join(lines).encode("latin-1") + body)
    await writer.drain()
