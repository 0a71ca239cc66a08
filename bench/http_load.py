"""A bounded HTTP load run against ``qzpay serve`` on 127.0.0.1.

``uv run python -m bench.http_load [--requests 6000] [--clients 50]
[--backend sqlite|memory|postgres] [--postgres-url URL] [--json]``

Starts the real server (``python -m qzpay serve``) in a subprocess on a free loopback port, on a
fresh store, then runs ``--clients`` concurrent HTTP clients, each with its own connection,
which share ``--requests`` requests between them. Each client repeats create → get (what it
just created) → list (its own customers, by a metadata filter; the newest must be the one it
just created). Afterwards every created id is read back and the event log is counted: the run
fails (exit 1) on any error or anything lost. Throughput and latency are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

OPERATIONS = ("create", "get", "list")
BACKENDS = ("sqlite", "memory", "postgres")


@dataclass
class Results:
    latencies_ns: dict[str, list[int]] = field(
        default_factory=lambda: {op: [] for op in OPERATIONS}
    )
    errors: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    base_url: str
    pid: int


@contextmanager
def qzpay_server(database_url: str, api_key: str) -> Iterator[Server]:
    """``python -m qzpay serve`` on a free loopback port."""
    port = _free_port()
    env = {**os.environ, "QZPAY_API_KEY": api_key, "QZPAY_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "qzpay", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"qzpay serve exited: {process.communicate()[1]}")
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("qzpay serve did not become healthy within 30 s")
            time.sleep(0.05)
        yield Server(base_url, process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _client(base_url: str, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60,
        limits=httpx.Limits(max_connections=1),  # one connection per client
    )


async def _timed(results: Results, op: str, request: Any) -> httpx.Response | None:
    started = time.perf_counter_ns()
    try:
        response: httpx.Response = await request
    except httpx.HTTPError as exc:
        results.errors.append(f"{op}: {type(exc).__name__}: {exc}")
        return None
    results.latencies_ns[op].append(time.perf_counter_ns() - started)
    return response


async def _run_client(index: int, requests: int, http: httpx.AsyncClient, results: Results) -> None:
    tag = f"c{index}"
    latest: str | None = None
    for step in range(requests):
        op = OPERATIONS[step % len(OPERATIONS)]
        if op == "create":
            body = {"email": f"{tag}.{step}@example.com", "metadata": {"client": tag}}
            response = await _timed(results, op, http.post("/customers", json=body))
            if response is None:
                continue
            if response.status_code != 201:
                results.errors.append(f"create: {response.status_code} {response.text}")
                continue
            latest = response.json()["id"]
            results.created.append(latest)
        elif op == "get":
            if latest is None:
                continue
            response = await _timed(results, op, http.get(f"/customers/{latest}"))
            if response is not None and (
                response.status_code != 200 or response.json()["id"] != latest
            ):
                results.errors.append(f"get {latest}: {response.status_code}")
        else:
            params = {"metadata[client]": tag, "limit": "10"}
            response = await _timed(results, op, http.get("/customers", params=params))
            if response is None:
                continue
            listed = response.json().get("data") if response.status_code == 200 else None
            if listed is None or (latest is not None and (not listed or listed[0]["id"] != latest)):
                results.errors.append(f"list {tag}: {response.status_code} misses {latest}")


async def _verify(base_url: str, api_key: str, created: list[str], clients: int) -> dict[str, int]:
    """Read back every created id, and count the customer.created events."""
    lost: list[str] = []
    queue = list(created)

    async def reader(http: httpx.AsyncClient) -> None:
        while queue:
            customer_id = queue.pop()
            response = await http.get(f"/customers/{customer_id}")
            if response.status_code != 200 or response.json()["id"] != customer_id:
                lost.append(customer_id)

    async with AsyncExitStack() as stack:
        https = [
            await stack.enter_async_context(_client(base_url, api_key)) for _ in range(clients)
        ]
        await asyncio.gather(*(reader(http) for http in https))
    async with _client(base_url, api_key) as http:
        total = (await http.get("/customers", params={"limit": "1"})).json()["total"]
        events = 0
        after: str | None = None
        while True:
            params = {"limit": "1000", **({"after": after} if after else {})}
            page = (await http.get("/events", params=params)).json()
            events += sum(1 for e in page["data"] if e["type"] == "customer.created")
            if len(page["data"]) < 1000:
                break
            after = page["next_after"]
    return {"lost": len(lost), "listed_total": total, "created_events": events}


def _percentile_ms(values: list[int], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] / 1e6


async def run_load(server: Server, api_key: str, requests: int, clients: int) -> dict[str, Any]:
    base_url = server.base_url
    results = Results()
    shares = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    async with AsyncExitStack() as stack:
        # Clients are built before the clock starts: building one is CPU work (an SSL
        # context) that would otherwise show up as the first requests' latency.
        https = [await stack.enter_async_context(_client(base_url, api_key)) for _ in shares]
        cpu_before = process_cpu_s(server.pid)
        started = time.perf_counter_ns()
        await asyncio.gather(
            *(
                _run_client(i, share, http, results)
                for i, (share, http) in enumerate(zip(shares, https, strict=True))
            )
        )
        elapsed_s = (time.perf_counter_ns() - started) / 1e9
        cpu_after = process_cpu_s(server.pid)
    server_busy = None
    if cpu_before is not None and cpu_after is not None and elapsed_s:
        server_busy = round((cpu_after - cpu_before) / elapsed_s, 2)
    done = sum(len(v) for v in results.latencies_ns.values())
    checks = await _verify(base_url, api_key, results.created, clients)
    consistent = checks["listed_total"] == checks["created_events"] == len(results.created)
    return {
        "requests": done,
        "clients": clients,
        "elapsed_s": round(elapsed_s, 3),
        "requests_per_s": round(done / elapsed_s, 1) if elapsed_s else 0.0,
        # Server CPU time / wall time during the load: near 1.0 means the (single-process)
        # server was the bottleneck; well below, the load generator was.
        "server_cpu_utilization": server_busy,
        "operations": {
            op: {
                "count": len(values),
                "p50_ms": round(_percentile_ms(values, 0.5), 2),
                "p99_ms": round(_percentile_ms(values, 0.99), 2),
            }
            for op, values in results.latencies_ns.items()
        },
        "created": len(results.created),
        "errors": len(results.errors),
        "error_samples": results.errors[:5],
        "lost": checks["lost"] + (0 if consistent else 1),
        **checks,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.http_load", description=__doc__)
    parser.add_argument("--requests", type=int, default=6000, help="total requests (fixed)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--postgres-url", default=None, help="admin URL for a scratch database")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < args.clients:
        parser.error("need --clients >= 1 and --requests >= --clients")

    api_key = secrets.token_urlsafe(32)
    postgres = None
    with tempfile.TemporaryDirectory(prefix="qzpay-http-load-") as workdir:
        if args.backend == "sqlite":
            url = f"sqlite:///{Path(workdir) / 'load.db'}"
        elif args.backend == "memory":
            url = "memory://"
        else:
            from bench.postgres_scratch import PostgresScratch, default_admin_url

            postgres = PostgresScratch(args.postgres_url or default_admin_url())
            asyncio.run(postgres.create())
            url = postgres.url
        try:
            with qzpay_server(url, api_key) as server:
                report = asyncio.run(run_load(server, api_key, args.requests, args.clients))
        finally:
            if postgres is not None:
                asyncio.run(postgres.drop())
    report["backend"] = args.backend
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print(report)
    return report


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=(
            f"qzpay serve ({report['backend']}): {report['requests']} requests from "
            f"{report['clients']} concurrent clients in {report['elapsed_s']} s"
        )
    )
    for column in ("operation", "count", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for op, row in report["operations"].items():
        table.add_row(op, str(row["count"]), f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}")
    console.print(table)
    console.print(
        f"requests/s: {report['requests_per_s']:,.0f} "
        f"(server CPU utilization {report['server_cpu_utilization']})"
    )
    console.print(
        f"created {report['created']}; read back all but {report['lost']}; "
        f"errors {report['errors']}"
    )
    for sample in report["error_samples"]:
        console.print(f"  {sample}", markup=False)


if __name__ == "__main__":
    result = main()
    sys.exit(1 if result["errors"] or result["lost"] else 0)
