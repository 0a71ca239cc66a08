"""The HTTP edge: request bodies are capped (413 problem+json), and the server's logs never
hold a credential. Real uvicorn servers on 127.0.0.1, real clients (httpx and raw sockets)."""

from __future__ import annotations

import io
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from qzpay import Billing
from qzpay.api import (
    DEFAULT_MAX_BODY_BYTES,
    APIKeyAuth,
    RedactCredentials,
    create_app,
    create_router,
    redact_credentials_in_logs,
)
from qzpay.api.server import REDACTED, app_from_env, redact_credentials
from qzpay.config import MAX_BODY_BYTES_ENV, ConfigError, max_body_bytes_from_env
from tests.api.live import API_KEY, LiveServer, serving
from tests.api.test_routes import assert_problem

CHUNK = 64 * 1024


def padded(head: bytes, tail: bytes, size: int) -> bytes:
    """Valid JSON of exactly ``size`` bytes: ``head``, blanks, ``tail``."""
    assert size >= len(head) + len(tail)
    return head + b" " * (size - len(head) - len(tail)) + tail


def create_body(size: int) -> bytes:
    return padded(b'{"email": "big@example.com",', b'"name": "Big"}', size)


def update_body(size: int) -> bytes:
    return padded(b'{"name": "Changed"', b"}", size)


def chunked(body: bytes) -> Iterator[bytes]:
    """An iterator body: httpx sends it chunked, without Content-Length."""
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


def send(client: httpx.Client, method: str, path: str, body: bytes, framing: str) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if framing == "content-length":
        response = client.request(method, path, content=body, headers=headers)
        assert response.request.headers["content-length"] == str(len(body))
    else:
        response = client.request(method, path, content=chunked(body), headers=headers)
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
    return response


def assert_too_large(response: httpx.Response, limit: int) -> None:
    problem = assert_problem(response, 413, "payload_too_large")
    assert problem["title"] == "Payload too large"
    assert problem["type"] == "tag:qzpay,2025:problem:payload_too_large"
    assert str(limit) in problem["detail"]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    billing = Billing(f"sqlite:///{tmp_path / 'edge.db'}")
    with serving(create_app(billing, auth=APIKeyAuth(API_KEY)), billing) as server:
        yield server


def read_response_head(sock: socket.socket, timeout: float = 10) -> bytes:
    """Read from ``sock`` until the end of an HTTP response's headers (or the timeout)."""
    sock.settimeout(timeout)
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(65536)
        if not data:
            break
        received += data
    return received


class TestBodyCap:
    @pytest.mark.parametrize("framing", ["content-length", "chunked"])
    @pytest.mark.parametrize("route", ["create", "update"])
    def test_json_body_over_the_cap_is_a_413_problem(
        self, live: LiveServer, route: str, framing: str
    ) -> None:
        over = DEFAULT_MAX_BODY_BYTES + 1
        with live.client() as client:
            if route == "create":
                response = send(client, "POST", "/customers", create_body(over), framing)
            else:
                customer = client.post("/customers", json={"email": "a@example.com"}).json()
                path = f"/customers/{customer['id']}"
                response = send(client, "PATCH", path, update_body(over), framing)
            assert_too_large(response, DEFAULT_MAX_BODY_BYTES)
            # Nothing was created or changed: no customer from the body, no event for it.
            listed = client.get("/customers").json()
            events = [e["type"] for e in client.get("/events").json()["data"]]
            assert client.get("/health").status_code == 200  # and the server is fine
        if route == "create":
            assert listed["total"] == 0
            assert events == []
        else:
            assert [c["name"] for c in listed["data"]] == [None]
            assert events == ["customer.created"]

    @pytest.mark.parametrize("framing", ["content-length", "chunked"])
    def test_a_body_of_exactly_the_cap_is_accepted(self, live: LiveServer, framing: str) -> None:
        with live.client() as client:
            response = send(
                client, "POST", "/customers", create_body(DEFAULT_MAX_BODY_BYTES), framing
            )
        assert response.status_code == 201, response.text
        assert response.json()["name"] == "Big"

    def test_an_oversized_content_length_is_refused_before_the_body_is_sent(
        self, live: LiveServer
    ) -> None:
        """Content-Length says 1 TB and no byte of the body follows: the 413 comes at once,
        so the server did not wait to read (let alone hold) the body."""
        host, port = live.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /customers HTTP/1.1\r\n"
                b"Host: edge\r\n"
                b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: 1000000000000\r\n\r\n"
                b'{"email": "big@example.com", '
            )
            head = read_response_head(sock)
        assert head.startswith(b"HTTP/1.1 413 "), head
        assert b"content-type: application/problem+json" in head.lower()

    def test_a_chunked_body_is_cut_off_at_the_cap_not_read_to_its_end(
        self, live: LiveServer
    ) -> None:
        """A chunked body that never ends: the server answers 413 once the cap is passed,
        while the client is still sending (the terminating chunk is never sent)."""
        host, port = live.base_url.removeprefix("http://").split(":")
        chunk = b"%x\r\n" % CHUNK + b" " * CHUNK + b"\r\n"
        first = b'{"email": "a@example.com", '
        sent = 0
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /customers HTTP/1.1\r\n"
                b"Host: edge\r\n"
                b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"
                b"Content-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(first) + first + b"\r\n"
            )
            while sent < 8 * DEFAULT_MAX_BODY_BYTES:
                sock.sendall(chunk)
                sent += CHUNK
                if sent > DEFAULT_MAX_BODY_BYTES and select.select([sock], [], [], 0.05)[0]:
                    break  # answered, though the body has not ended
            else:
                pytest.fail("no answer after 8 MiB of an unfinished body")
            head = read_response_head(sock)
        assert head.startswith(b"HTTP/1.1 413 "), head
        assert sent > DEFAULT_MAX_BODY_BYTES  # it read up to the cap, then stopped

    def test_body_cap_is_configurable(self, tmp_path: Path) -> None:
        limit = 2048
        billing = Billing(f"sqlite:///{tmp_path / 'small.db'}")
        app = create_app(billing, auth=APIKeyAuth(API_KEY), max_body_bytes=limit)
        with serving(app, billing) as server, server.client() as client:
            for framing in ("content-length", "chunked"):
                accepted = send(client, "POST", "/customers", create_body(limit), framing)
                assert accepted.status_code == 201, accepted.text
                refused = send(client, "POST", "/customers", create_body(limit + 1), framing)
                assert_too_large(refused, limit)
                patch = f"/customers/{accepted.json()['id']}"
                assert_too_large(
                    send(client, "PATCH", patch, update_body(limit + 1), framing), limit
                )
                assert send(client, "PATCH", patch, update_body(limit), framing).status_code == 200
            # The webhook route has the same cap (and is refused before any signature check).
            hook = client.post("/webhooks/stripe", content=b"{" + b" " * limit + b"}")
            assert_too_large(hook, limit)
            assert client.get("/customers").json()["total"] == 2

    def test_body_cap_of_a_router_mounted_in_your_app(self, tmp_path: Path) -> None:
        billing = Billing(f"sqlite:///{tmp_path / 'mounted.db'}")
        web = FastAPI()
        web.include_router(create_router(billing, auth=None, max_body_bytes=512), prefix="/billing")

        @web.post("/elsewhere")  # the host app's own routes are not the router's business
        async def elsewhere(payload: dict[str, Any]) -> int:
            return len(payload)

        async def close_billing() -> None:
            await billing.close()

        with serving(web) as server, server.client(None) as client:
            try:
                for framing in ("content-length", "chunked"):
                    refused = send(client, "POST", "/billing/customers", create_body(513), framing)
                    assert_too_large(refused, 512)
                    created = send(client, "POST", "/billing/customers", create_body(512), framing)
                    assert created.status_code == 201, created.text
                big = {"email": "x" * 2000}
                assert client.post("/elsewhere", json=big).json() == 1
            finally:
                server.run(close_billing())

    @pytest.mark.parametrize("value", [0, -1, True, 1.5, "1024"])
    def test_the_cap_must_be_a_positive_number_of_bytes(self, value: Any) -> None:
        with pytest.raises(ValueError, match="max_body_bytes"):
            create_router(Billing("memory://"), auth=None, max_body_bytes=value)

    def test_body_cap_from_the_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("QZPAY_API_KEY", API_KEY)
        monkeypatch.setenv("QZPAY_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
        monkeypatch.setenv(MAX_BODY_BYTES_ENV, "1000")
        with serving(app_from_env()) as server, server.client() as client:
            for framing in ("content-length", "chunked"):
                refused = send(client, "POST", "/customers", create_body(1001), framing)
                assert_too_large(refused, 1000)
                created = send(client, "POST", "/customers", create_body(1000), framing)
                assert created.status_code == 201, created.text
        for wrong in ("0", "-5", "1MiB", "ten"):
            monkeypatch.setenv(MAX_BODY_BYTES_ENV, wrong)
            with pytest.raises(ConfigError, match=MAX_BODY_BYTES_ENV) as raised:
                app_from_env()
            assert raised.value.args[0].startswith(MAX_BODY_BYTES_ENV)
        assert max_body_bytes_from_env({}) is None
        assert max_body_bytes_from_env({MAX_BODY_BYTES_ENV: " "}) is None
        assert max_body_bytes_from_env({MAX_BODY_BYTES_ENV: "4096"}) == 4096

    def test_413_is_documented_on_the_routes_that_take_a_body(self) -> None:
        spec = create_app(Billing("memory://"), auth=None).openapi()
        for path, method in [
            ("/customers", "post"),
            ("/customers/{customer_id}", "patch"),
            ("/webhooks/{provider}", "post"),
        ]:
            problem = spec["paths"][path][method]["responses"]["413"]
            assert list(problem["content"]) == ["application/problem+json"]


# -- qzpay serve, as a process ---------------------------------------------------------------


class Served:
    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
        self.process, self.base_url, self.log = process, base_url, log


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator[Any]:
    """Start ``python -m qzpay serve ARGS`` (its stdout and stderr into one file); stopped
    with SIGINT at the end of the test, or by ``stop``."""
    started: list[Served] = []

    def start(*args: str, env: dict[str, str]) -> Served:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log = tmp_path / f"serve-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "qzpay", "serve", "--port", str(port), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "QZPAY_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}", **env},
            )
        served = Served(process, f"http://127.0.0.1:{port}", log)
        started.append(served)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{served.base_url}/health", timeout=1).status_code == 200:
                    return served
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)

    yield start
    for served in started:
        stop(served)


def stop(served: Served) -> str:
    """SIGINT the server, wait for it, and return everything it logged."""
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGINT)
        try:
            served.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait()
    return served.log.read_text(encoding="utf-8", errors="replace")


class TestServe:
    def test_access_log_redacts_credentials_in_query_string(self, start_serve: Any) -> None:
        served = start_serve("--log-level", "debug", env={"QZPAY_API_KEY": API_KEY})
        bearer = {"Authorization": f"Bearer {API_KEY}"}
        secrets = [f"SECRET{n:02}" for n in range(1, 16)]
        with httpx.Client(base_url=served.base_url, timeout=30) as http:
            ok = http.get(
                f"/customers?api_key={secrets[0]}&Token={secrets[1]}&password={secrets[2]}",
                headers=bearer,
            )
            assert ok.status_code == 200
            # A key anywhere but the Authorization header is refused (and still not logged).
            assert http.get(f"/customers?api_key={API_KEY}").status_code == 401
            assert http.get(f"/customers?API_KEY={API_KEY}", headers=bearer).status_code == 200
            mixed = (
                f"/customers?Api%5Fkey={secrets[3]}&key={secrets[4]}&KEY={secrets[5]}"
                f"&Secret={secrets[6]}&api%255Fkey={secrets[7]}&limit=5"
            )
            assert http.get(mixed).status_code == 401
            repeated = f"/health?token={secrets[8]}&token={secrets[9]}&x-api-key={secrets[10]}"
            assert http.get(repeated).status_code == 200
            assert http.get(f"/nowhere?PassWord={secrets[11]}").status_code == 404
            created = http.post(
                f"/customers?token={secrets[12]}", json={"email": "a@example.com"}, headers=bearer
            )
            assert created.status_code == 201
            wrong = {"Authorization": f"Bearer {secrets[13]}"}
            assert http.get("/customers", headers=wrong).status_code == 401
            basic = {"Authorization": f"Basic {secrets[14]}"}
            assert http.get("/events", headers=basic).status_code == 401
        log = stop(served)
        assert served.process.returncode == 0, log
        assert API_KEY not in log
        for secret in secrets:
            assert secret not in log, secret
        assert f'"GET /customers?api_key={REDACTED}&Token={REDACTED}&password={REDACTED} ' in log
        assert f"Api%5Fkey={REDACTED}&key={REDACTED}&KEY={REDACTED}&Secret={REDACTED}" in log
        assert "&limit=5 HTTP/1.1" in log  # the other parameters are kept
        assert f'"GET /health?token={REDACTED}&token={REDACTED}&x-api-key={REDACTED} ' in log
        assert f'"GET /nowhere?PassWord={REDACTED} HTTP/1.1" 404' in log

    def test_qzpay_serve_body_cap_from_its_option_or_the_environment(
        self, start_serve: Any
    ) -> None:
        served = start_serve(
            "--max-body-bytes", "4096", env={"QZPAY_API_KEY": API_KEY, MAX_BODY_BYTES_ENV: "99"}
        )
        headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        with httpx.Client(base_url=served.base_url, headers=headers, timeout=30) as http:
            assert_too_large(http.post("/customers", content=create_body(4097)), 4096)
            assert http.post("/customers", content=create_body(4096)).status_code == 201
        stop(served)
        served = start_serve(env={"QZPAY_API_KEY": API_KEY, MAX_BODY_BYTES_ENV: "300"})
        with httpx.Client(base_url=served.base_url, headers=headers, timeout=30) as http:
            assert_too_large(http.post("/customers", content=create_body(301)), 300)
            assert http.post("/customers", content=create_body(300)).status_code == 201


# -- the filter itself, on uvicorn's error logger and qzpay's own ----------------------------


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged on uvicorn.error and qzpay.api (DEBUG and up), with the redaction
    installed as ``serve`` installs it; the loggers are restored afterwards."""
    names = ("uvicorn.error", "qzpay.api")
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg.level, list(lg.filters), lg.propagate) for lg in loggers]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
        lg.propagate = False
    redact_credentials_in_logs()
    redact_credentials_in_logs()  # installing twice adds one filter
    try:
        assert all(sum(isinstance(f, RedactCredentials) for f in lg.filters) == 1 for lg in loggers)
        yield stream
    finally:
        for lg, (level, filters, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.filters[:] = filters
            lg.propagate = propagate


def test_error_logs_that_echo_a_request_are_redacted(captured: io.StringIO) -> None:
    error = logging.getLogger("uvicorn.error")
    # uvicorn's WebSocket lines carry the path with its query string.
    error.info('%s - "WebSocket %s" %d', "127.0.0.1:5000", "/ws?Token=SECRET-A&v=1", 403)
    # A request line inside the message itself, with a format that has no arguments.
    error.warning('bad request: "GET /customers?Api%5FKey=SECRET-B HTTP/1.1"')
    # The ASGI scope's headers, as uvicorn's trace logging shows them.
    scope = {"path": "/customers", "headers": [(b"authorization", b"Bearer SECRET-C")]}
    error.debug("ASGI scope=%s", scope)
    error.debug("headers %s", {"Authorization": "Basic SECRET-D", "Host": "x"})
    try:
        raise RuntimeError("request to /x?password=SECRET-E failed; Authorization: SECRET-F")
    except RuntimeError:
        logging.getLogger("qzpay.api").exception("on %s", "/x?secret=SECRET-G")
    logged = captured.getvalue()
    for secret in "ABCDEFG":
        assert f"SECRET-{secret}" not in logged, logged
    assert '"WebSocket /ws?Token=[REDACTED]&v=1" 403' in logged
    assert "(b'authorization', b'[REDACTED]')" in logged
    assert "'Host': 'x'" in logged
    assert "Traceback" in logged
    assert "RuntimeError: request to /x?password=[REDACTED] failed" in logged


def test_redact_credentials_text() -> None:
    cases = {
        "/c?api_key=s1&limit=5": f"/c?api_key={REDACTED}&limit=5",
        "/c?API_KEY=s1&Api-Key=s2": f"/c?API_KEY={REDACTED}&Api-Key={REDACTED}",
        "/c?api%5fkey=s1": f"/c?api%5fkey={REDACTED}",
        "/c?client_secret=s1&access_token=s2": (
            f"/c?client_secret={REDACTED}&access_token={REDACTED}"
        ),
        "/c?metadata[token]=s1": f"/c?metadata[token]={REDACTED}",
        "/c?next=/d?token=s1&a=b": f"/c?next=/d?token={REDACTED}&a=b",
        "/c?password=a;b&x=1": f"/c?password={REDACTED}&x=1",
        "Authorization: Bearer abc": f"Authorization: {REDACTED}",
        "sent bearer abc.def": f"sent bearer {REDACTED}",
        "/c?email=a@b.co&limit=10": "/c?email=a@b.co&limit=10",
        "nothing to hide": "nothing to hide",
    }
    for text, expected in cases.items():
        assert redact_credentials(text) == expected, text


def test_exported_names() -> None:
    import qzpay.api

    for name in ("DEFAULT_MAX_BODY_BYTES", "RedactCredentials", "redact_credentials_in_logs"):
        assert name in qzpay.api.__all__
    assert DEFAULT_MAX_BODY_BYTES == 1024 * 1024
