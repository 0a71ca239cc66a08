"""The same SQL work as qzpay's PostgreSQL backend, done with asyncpg directly.

One connection, prepared statements, one INSERT per transaction for create (the fsync-bound
figure the targets are set against), a primary-key SELECT for get, the same page and count
queries for list, one UPDATE per transaction for update and delete, and create with 8 in flight
over a pool of 8. Same schema (qzpay's own migrations), so the ratio is qzpay's overhead.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import asyncpg

from bench.stats import Samples
from bench.workload import IN_FLIGHT, LIST_CALLS, email_of, expect, measure_async, provider_id_of
from qzpay.storage.postgres import PostgresStorage

COLUMNS = (
    "id, email, name, phone, address, metadata, provider_ids, created_at, updated_at, deleted_at"
)
INSERT = (
    "INSERT INTO customers (id, email, email_key, name, metadata, provider_ids, created_at, "
    "updated_at) VALUES ($1, $2, $3, $4, $5::jsonb, '{}'::jsonb, $6, $6)"
)


async def run_raw_postgres(url: str, n: int) -> dict[str, Samples | None]:
    storage = PostgresStorage(url)
    await storage.upgrade()
    await storage.close()
    db = await asyncpg.connect(url)
    try:
        return await _phases(db, url, n)
    finally:
        await db.close()


async def _phases(db: asyncpg.Connection, url: str, n: int) -> dict[str, Samples | None]:
    out: dict[str, Samples | None] = {}
    ids = [f"cus_raw_{i:08d}" for i in range(n)]
    now = datetime.now(UTC)
    insert = await db.prepare(INSERT)

    async def create(i: int) -> None:
        async with db.transaction():
            await insert.fetch(
                ids[i], email_of(i), email_of(i), f"User {i}", json.dumps(_meta(i)), now
            )

    out["create"], _ = await measure_async(n, create)
    await db.copy_records_to_table(
        "customer_metadata",
        records=[(ids[i], k, v) for i in range(n) for k, v in _meta(i).items()],
        columns=["customer_id", "key", "value"],
    )
    await db.copy_records_to_table(
        "customer_links",
        records=[("stripe", provider_id_of(i), ids[i]) for i in range(n)],
        columns=["provider", "provider_customer_id", "customer_id"],
    )
    await db.execute("ANALYZE")

    select = f"SELECT {COLUMNS} FROM customers"
    get = await db.prepare(f"{select} WHERE id = $1")
    out["get"], rows = await measure_async(n, lambda i: get.fetchrow(ids[i]))
    expect(all(r is not None for r in rows), "raw get: missing rows")
    by_provider = await db.prepare(
        f"{select} WHERE id IN (SELECT customer_id FROM customer_links "
        "WHERE provider_customer_id = $1)"
    )
    out["get_by_external_id"], _ = await measure_async(
        n, lambda i: by_provider.fetch(provider_id_of(i))
    )
    calls = min(LIST_CALLS, n)
    live = " WHERE deleted_at IS NULL"
    page = await db.prepare(f"{select}{live} ORDER BY id DESC LIMIT 20 OFFSET $1")
    count = await db.prepare(f"SELECT count(*) FROM customers{live}")

    async def list_offset(i: int) -> None:
        await page.fetch((i * 20) % n)
        await count.fetchval()

    out["list_offset"], _ = await measure_async(calls, list_offset)
    by_email = await db.prepare(
        f"{select}{live} AND email_key = $1 ORDER BY id DESC LIMIT 20 OFFSET 0"
    )
    out["list_email"], _ = await measure_async(calls, lambda i: by_email.fetch(email_of(i * 7 % n)))
    by_metadata = await db.prepare(
        f"{select}{live} AND id IN (SELECT customer_id FROM customer_metadata "
        "WHERE key = $1 AND value = $2) ORDER BY id DESC LIMIT 20 OFFSET 0"
    )
    out["list_metadata"], _ = await measure_async(
        calls, lambda i: by_metadata.fetch("seq", str(i * 7 % n))
    )
    update = await db.prepare(
        "UPDATE customers SET name = $1, metadata = $2::jsonb, updated_at = $3 WHERE id = $4"
    )

    async def do_update(i: int) -> None:
        async with db.transaction():
            await update.fetch(
                f"User {i} v2", json.dumps({"plan": "enterprise", "seq": str(i)}), now, ids[i]
            )

    out["update"], _ = await measure_async(n, do_update)
    delete = await db.prepare("UPDATE customers SET deleted_at = $1, updated_at = $1 WHERE id = $2")

    async def do_delete(i: int) -> None:
        async with db.transaction():
            await delete.fetch(now, ids[i])

    out["delete"], _ = await measure_async(n, do_delete)
    out["create_concurrent"] = await _create_concurrent(url, n, now)
    return out


async def _create_concurrent(url: str, n: int, now: datetime) -> Samples:
    samples = Samples()
    clock = time.perf_counter_ns
    pool = await asyncpg.create_pool(url, min_size=IN_FLIGHT, max_size=IN_FLIGHT)
    next_index = iter(range(n, 2 * n))

    async def worker() -> None:
        async with pool.acquire() as connection:
            insert = await connection.prepare(INSERT)
            for i in next_index:
                before = clock()
                async with connection.transaction():
                    await insert.fetch(
                        f"cus_raw_{i:08d}",
                        email_of(i),
                        email_of(i),
                        f"User {i}",
                        json.dumps(_meta(i)),
                        now,
                    )
                samples.latencies_ns.append(clock() - before)

    try:
        started = clock()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        samples.wall_ns = clock() - started
    finally:
        await pool.close()
    return samples


def _meta(i: int) -> dict[str, str]:
    return {"plan": "pro", "seq": str(i)}
