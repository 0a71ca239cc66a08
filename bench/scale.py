"""Scale: do the documented look-ups stay flat from 10k to 1M customers?

Customers are bulk-loaded straight into qzpay's schema (COPY on PostgreSQL, one executemany
transaction on SQLite) in the exact form qzpay writes, then each look-up is timed through
Billing at each size. Walking all customers with ``iterate()`` runs in a child process so its
peak RSS is its own.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.postgres_scratch import PostgresScratch
from qzpay import Billing
from qzpay._time import to_micros
from qzpay.customers.service import scan_filters
from qzpay.ids import IdGenerator

SAMPLES = 300
BATCH = 50_000
OPS = ("get", "get_by_external_id", "list_email", "list_metadata", "iterate_page")


def _rows(ids: list[str], start: int, stop: int) -> Iterator[tuple[Any, ...]]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(start, stop):
        moment = base + timedelta(microseconds=i)
        yield (ids[i], f"user{i}@scale.example.com", f"User {i}", i, moment)


async def _load_postgres(url: str, ids: list[str], start: int, stop: int) -> None:
    import asyncpg

    db = await asyncpg.connect(url)
    try:
        for low in range(start, stop, BATCH):
            high = min(stop, low + BATCH)
            customers, metadata, links = [], [], []
            for cid, email, name, i, moment in _rows(ids, low, high):
                meta = {"plan": "pro", "seq": str(i)}
                customers.append(
                    (
                        cid,
                        email,
                        email,
                        name,
                        json.dumps(meta),
                        json.dumps({"stripe": f"cus_scale_{i}"}),
                        moment,
                        moment,
                    )
                )
                metadata += [(cid, "plan", "pro"), (cid, "seq", str(i))]
                links.append(("stripe", f"cus_scale_{i}", cid))
            columns = [
                "id",
                "email",
                "email_key",
                "name",
                "metadata",
                "provider_ids",
                "created_at",
                "updated_at",
            ]
            await db.copy_records_to_table("customers", records=customers, columns=columns)
            await db.copy_records_to_table(
                "customer_metadata", records=metadata, columns=["customer_id", "key", "value"]
            )
            await db.copy_records_to_table(
                "customer_links",
                records=links,
                columns=["provider", "provider_customer_id", "customer_id"],
            )
        await db.execute("ANALYZE")
    finally:
        await db.close()


def _load_sqlite(path: Path, ids: list[str], start: int, stop: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")
        for low in range(start, stop, BATCH):
            high = min(stop, low + BATCH)
            rows = list(_rows(ids, low, high))
            db.executemany(
                "INSERT INTO customers (id, email, email_key, name, metadata, provider_ids, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        cid,
                        email,
                        email,
                        name,
                        json.dumps({"plan": "pro", "seq": str(i)}),
                        json.dumps({"stripe": f"cus_scale_{i}"}),
                        to_micros(m),
                        to_micros(m),
                    )
                    for cid, email, name, i, m in rows
                ],
            )
            db.executemany(
                "INSERT INTO customer_metadata (customer_id, key, value) VALUES (?, ?, ?)",
                [
                    (cid, k, v)
                    for cid, _, _, i, _ in rows
                    for k, v in (("plan", "pro"), ("seq", str(i)))
                ],
            )
            db.executemany(
                "INSERT INTO customer_links (provider, provider_customer_id, customer_id) "
                "VALUES (?, ?, ?)",
                [("stripe", f"cus_scale_{i}", cid) for cid, _, _, i, _ in rows],
            )
        db.execute("COMMIT")
        db.execute("ANALYZE")
    finally:
        db.close()


async def _p50s(url: str, ids: list[str], size: int) -> dict[str, float]:
    rng = random.Random(size)
    picks = [rng.randrange(size) for _ in range(SAMPLES)]
    filters = scan_filters(None, None, False, 100, {})
    async with Billing(storage=url) as billing:
        c = billing.customers
        ops: dict[str, Callable[[int], Awaitable[object]]] = {
            "get": lambda i: c.get(ids[i]),
            "get_by_external_id": lambda i: c.get_by_external_id(f"cus_scale_{i}"),
            "list_email": lambda i: c.list(limit=20, email=f"user{i}@scale.example.com"),
            "list_metadata": lambda i: c.list(limit=20, metadata={"seq": str(i)}),
            "iterate_page": lambda i: c.scan_page(filters, ids[min(size - 1, i + 100)], 100),
        }
        result: dict[str, float] = {}
        for name, op in ops.items():
            for i in picks[:20]:  # warm the caches and prepared statements
                await op(i)
            latencies = []
            for i in picks:
                before = time.perf_counter_ns()
                found = await op(i)
                latencies.append(time.perf_counter_ns() - before)
                if not found:
                    raise AssertionError(f"scale {name}: nothing found for {i}")
            latencies.sort()
            result[name] = latencies[len(latencies) // 2] / 1000
    return result


def _walk_peak_rss(url: str, expected: int) -> float:
    """Walk every customer with iterate() in a child process; its peak RSS in MB."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.scale_walk", url, str(expected)],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    ).stdout
    return float(json.loads(output)["peak_rss_mb"])


def run_scale(
    backends: list[str], sizes: list[int], workdir: Path, postgres: PostgresScratch | None
) -> dict[str, Any]:
    sizes = sorted(sizes)
    generator = IdGenerator("cus_")
    ids = [generator.new() for _ in range(sizes[-1])]
    report: dict[str, Any] = {}
    for backend in backends:
        if backend == "postgres":
            assert postgres is not None
            asyncio.run(postgres.reset())
            url = postgres.url
        else:
            path = workdir / "scale.db"
            url = f"sqlite:///{path}"
        asyncio.run(_upgrade(url))
        loaded = 0
        per_size: dict[int, dict[str, float]] = {}
        for size in sizes:
            if backend == "postgres":
                asyncio.run(_load_postgres(url, ids, loaded, size))
            else:
                _load_sqlite(workdir / "scale.db", ids, loaded, size)
            loaded = size
            per_size[size] = asyncio.run(_p50s(url, ids, size))
        small, large = sizes[0], sizes[-1]
        report[backend] = {
            op: {
                **{f"p50_us_{_label(s)}": round(per_size[s][op], 1) for s in sizes},
                "ratio": round(per_size[large][op] / per_size[small][op], 2),
            }
            for op in OPS
        }
        report[backend][f"iterate_{_label(large)}_peak_rss_mb"] = _walk_peak_rss(url, large)
    return report


async def _upgrade(url: str) -> None:
    async with Billing(storage=url) as billing:
        await billing.storage.upgrade()


def _label(size: int) -> str:
    return f"{size // 1_000_000}m" if size % 1_000_000 == 0 else f"{size // 1000}k"
