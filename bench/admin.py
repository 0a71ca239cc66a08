"""Admin console pages against the JSON API calls that fetch the same data, at 100k customers.

``uv run python -m bench.admin [--customers 100000] [--rounds 200] [--json]``

Bulk-loads ``--customers`` customers into a scratch SQLite file (``bench.scale``'s loader:
qzpay's schema, one executemany transaction), adds 1,000 more through ``Billing`` (so the event
log has events, one customer has an update), then starts the real server (``python -m qzpay
serve``) on a free loopback port and times, over HTTP with keep-alive, each admin page against
its JSON twin, alternating them, ``--rounds`` times each:

* ``list``: ``/admin/customers`` (50 newest) vs ``GET /customers?limit=50``;
* ``list_keyset``: ``/admin/customers?before=<id>`` vs ``GET /customers?limit=50&starting_after=``;
* ``search_email``: ``/admin/customers?email=`` vs ``GET /customers?email=``;
* ``customer``: ``/admin/customers/<id>`` (fields, links, pending task, timeline) vs
  ``GET /customers/<id>``.

The target: each page's p50 at most 2x its JSON twin's. The first customer page of a process
(cold: templates compiled, connections opened) is reported separately. Exit status 1 when a
target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.scale import _load_sqlite, _upgrade
from qzpay import Billing
from qzpay.ids import IdGenerator

API_KEY = "bench-admin-key-0123456789abcdef"
TARGET = 2.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _seed(url: str) -> tuple[str, str]:
    """1,000 customers with events; the id of one that was updated, and its email."""
    async with Billing(storage=url) as billing:
        made = [
            await billing.customers.create(email=f"live{i}@bench.example.com", name=f"Live {i}")
            for i in range(1000)
        ]
        target = made[500]
        await billing.customers.update(target.id, name="Renamed", metadata={"tier": "gold"})
        return target.id, target.email


def _start(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "QZPAY_API_KEY": API_KEY, "QZPAY_DATABASE_URL": url}
    for name in ("STRIPE_API_KEY", "MERCADOPAGO_ACCESS_TOKEN"):
        env.pop(name, None)
    command = [sys.executable, "-m", "qzpay", "serve", "--port", str(port)]
    command += ["--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def _wait(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def _time(client: httpx.Client, path: str) -> float:
    start = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code}")
    return elapsed


def measure(base: str, target_id: str, target_email: str, rounds: int) -> dict[str, Any]:
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {API_KEY}"})
    admin = httpx.Client(base_url=base, follow_redirects=False)
    signed = admin.post("/admin/sign-in", data={"api_key": API_KEY})
    if signed.status_code != 303:
        raise RuntimeError("could not sign in")
    first = admin.get("/admin/customers").text
    cursor = re.findall(r"/admin/customers/(cus_[0-9A-Z]+)", first)[-1]
    pairs = {
        "list": ("/admin/customers", "/customers?limit=50"),
        "list_keyset": (
            f"/admin/customers?before={cursor}",
            f"/customers?limit=50&starting_after={cursor}",
        ),
        "search_email": (
            f"/admin/customers?email={target_email}",
            f"/customers?email={target_email}",
        ),
        "customer": (f"/admin/customers/{target_id}", f"/customers/{target_id}"),
    }
    cold = _time(admin, f"/admin/customers/{target_id}")  # the first view of the process
    results: dict[str, Any] = {"cold_customer_page_ms": round(cold * 1000, 2)}
    try:
        for name, (page, json_path) in pairs.items():
            for _ in range(10):  # warm-up
                _time(admin, page)
                _time(api, json_path)
            pages, calls = [], []
            for _ in range(rounds):
                pages.append(_time(admin, page))
                calls.append(_time(api, json_path))
            page_ms = statistics.median(pages) * 1000
            api_ms = statistics.median(calls) * 1000
            results[name] = {
                "page_p50_ms": round(page_ms, 3),
                "json_p50_ms": round(api_ms, 3),
                "ratio": round(page_ms / api_ms, 2),
                "met": page_ms <= TARGET * api_ms,
            }
    finally:
        api.close()
        admin.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qzpay-bench-admin-") as scratch:
        path = Path(scratch) / "admin.db"
        url = f"sqlite:///{path}"
        asyncio.run(_upgrade(url))
        generator = IdGenerator("cus_")
        ids = [generator.new() for _ in range(args.customers)]
        started = time.perf_counter()
        _load_sqlite(path, ids, 0, len(ids))
        target_id, target_email = asyncio.run(_seed(url))
        load_s = time.perf_counter() - started
        port = _free_port()
        process = _start(url, port)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait(base, process)
            results = measure(base, target_id, target_email, args.rounds)
        finally:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(15)
    results = {"customers": args.customers + 1000, "load_s": round(load_s, 1), **results}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{results['customers']} customers (loaded in {results['load_s']} s)")
        print(f"cold customer page (first view): {results['cold_customer_page_ms']} ms")
        for name, row in results.items():
            if isinstance(row, dict):
                verdict = "met" if row["met"] else "MISSED"
                print(
                    f"{name:13} page {row['page_p50_ms']:8.3f} ms  json {row['json_p50_ms']:8.3f}"
                    f" ms  ratio {row['ratio']:5.2f}  {verdict}"
                )
    return 0 if all(r["met"] for r in results.values() if isinstance(r, dict)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
