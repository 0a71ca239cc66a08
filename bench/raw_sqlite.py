"""The same SQL work as qzpay's SQLite backend, done with the stdlib driver directly.

One INSERT per transaction for create, a primary-key SELECT for get, the same page (and count)
queries for list, one UPDATE per transaction for update and delete. Same file settings (WAL,
synchronous=FULL), same schema (qzpay's own migrations), so the ratio is qzpay's overhead.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from bench.stats import Samples
from bench.workload import LIST_CALLS, email_of, expect, measure_sync, provider_id_of
from qzpay.storage.sqlite import SQLiteStorage

COLUMNS = (
    "id, email, name, phone, address, metadata, provider_ids, created_at, updated_at, deleted_at"
)


def run_raw_sqlite(path: Path, n: int) -> dict[str, Samples | None]:
    asyncio.run(_schema(path))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    out: dict[str, Samples | None] = {}
    ids = [f"cus_raw_{i:08d}" for i in range(n)]

    def create(i: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO customers (id, email, email_key, name, metadata, provider_ids, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ids[i],
                email_of(i),
                email_of(i),
                f"User {i}",
                json.dumps({"plan": "pro", "seq": str(i)}),
                "{}",
                i,
                i,
            ),
        )
        db.execute("COMMIT")

    out["create"], _ = measure_sync(n, create)
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO customer_metadata (customer_id, key, value) VALUES (?, ?, ?)",
        [(ids[i], k, v) for i in range(n) for k, v in (("plan", "pro"), ("seq", str(i)))],
    )
    db.executemany(
        "INSERT INTO customer_links (provider, provider_customer_id, customer_id) VALUES (?, ?, ?)",
        [("stripe", provider_id_of(i), ids[i]) for i in range(n)],
    )
    db.execute("COMMIT")

    select = f"SELECT {COLUMNS} FROM customers"
    out["get"], rows = measure_sync(
        n, lambda i: db.execute(f"{select} WHERE id = ?", (ids[i],)).fetchone()
    )
    expect(all(r is not None for r in rows), "raw get: missing rows")
    out["get_by_external_id"], _ = measure_sync(
        n,
        lambda i: db.execute(
            f"{select} WHERE id IN (SELECT customer_id FROM customer_links "
            "WHERE provider_customer_id = ?)",
            (provider_id_of(i),),
        ).fetchall(),
    )
    calls = min(LIST_CALLS, n)
    live = " WHERE deleted_at IS NULL"

    def list_offset(i: int) -> None:
        db.execute(f"{select}{live} ORDER BY id DESC LIMIT 20 OFFSET ?", ((i * 20) % n,)).fetchall()
        db.execute(f"SELECT count(*) FROM customers{live}").fetchone()

    out["list_offset"], _ = measure_sync(calls, list_offset)
    out["list_email"], _ = measure_sync(
        calls,
        lambda i: db.execute(
            f"{select}{live} AND email_key = ? ORDER BY id DESC LIMIT 20 OFFSET 0",
            (email_of(i * 7 % n),),
        ).fetchall(),
    )
    out["list_metadata"], _ = measure_sync(
        calls,
        lambda i: db.execute(
            f"{select}{live} AND id IN (SELECT customer_id FROM customer_metadata "
            "WHERE key = ? AND value = ?) ORDER BY id DESC LIMIT 20 OFFSET 0",
            ("seq", str(i * 7 % n)),
        ).fetchall(),
    )

    def update(i: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "UPDATE customers SET name = ?, metadata = ?, updated_at = ? WHERE id = ?",
            (f"User {i} v2", json.dumps({"plan": "enterprise", "seq": str(i)}), i + 1, ids[i]),
        )
        db.execute("COMMIT")

    def delete(i: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "UPDATE customers SET deleted_at = ?, updated_at = ? WHERE id = ?", (i, i, ids[i])
        )
        db.execute("COMMIT")

    out["update"], _ = measure_sync(n, update)
    out["delete"], _ = measure_sync(n, delete)
    out["create_concurrent"] = None  # SQLite has one writer: there is no raw concurrency to match
    db.close()
    return out


async def _schema(path: Path) -> None:
    storage = SQLiteStorage(path)
    await storage.upgrade()
    await storage.close()
