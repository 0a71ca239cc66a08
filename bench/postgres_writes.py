"""``uv run python -m bench.postgres_writes [--n 2000] [--repeats 3] [--postgres-url URL]``:
PostgreSQL updates and deletes (issue 16) through ``Billing``, against the raw driver's one
UPDATE per transaction, in the same run, with the WAL each operation writes.

Modes: ``raw`` (asyncpg: BEGIN, UPDATE, COMMIT, as bench.raw_postgres); ``remembered`` (the
service as configured by default: the customer was seen by this storage, so an update or delete
is one checked statement); ``read_first`` (``recent_versions=0``: an unlocked read, then the
checked statement); ``locked`` (a storage offering no optimistic transactions: BEGIN and
advisory lock, SELECT ... FOR UPDATE, the write, COMMIT); ``stale`` (two storages taking turns,
so every remembered copy was made stale by the other: the check refuses it, then a read and a
second check; the worst case of remembering); ``alternating`` (the same turns with
``recent_versions=0``: what ``stale`` costs against not remembering at all). One client at a
time, so no update waits.

WAL per operation: ``pg_current_wal_lsn()`` before and after a phase, divided by N, counting
only this database's records (see Wal; needs pg_walinspect, PostgreSQL 15+, and a superuser: a
temporary replication slot keeps the phase's WAL until it is read). Each mode
first updates every customer once, untimed, after a CHECKPOINT, so the measured phases write no
full-page images; a phase during which a checkpoint started is marked. Medians over
the repeats, and the minimum WAL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench.postgres_scratch import PostgresScratch, default_admin_url
from bench.stats import Samples
from bench.workload import create_args, expect, measure_async, provider_id_of
from qzpay import Billing
from qzpay.storage.postgres import PostgresStorage

MODES = ("raw", "remembered", "read_first", "locked", "stale", "alternating")
PHASES = ("create", "update", "delete")
TWO_WRITERS = ("stale", "alternating")  # another storage changes every customer between phases


class LockedStorage(PostgresStorage):
    """PostgresStorage offering no optimistic transaction: the service then reads for change
    under the advisory lock and FOR UPDATE, the path it falls back to after repeated
    conflicts."""

    def optimistic_transaction(self) -> Any:
        return self.transaction()


def _storage(mode: str, url: str) -> PostgresStorage:
    if mode == "locked":
        return LockedStorage(url)
    if mode in ("read_first", "alternating"):
        return PostgresStorage(url, recent_versions=0)
    return PostgresStorage(url)


class Wal:
    """WAL written for this database between two points: the records of transactions that
    wrote to its relations, and its page-pruning records (pg_walinspect). The server is shared;
    the plain ``pg_current_wal_lsn()`` difference, which counts every database, is kept too."""

    def __init__(self, admin: asyncpg.Connection) -> None:
        self._admin = admin

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """A replication slot holding the WAL from here on, so a checkpoint cannot remove it
        before it is read."""
        name = f"qzpay_bench_{os.getpid()}"
        await self._admin.execute(
            "SELECT pg_create_physical_replication_slot($1, true, true)", name
        )
        try:
            yield
        finally:
            await self._admin.execute("SELECT pg_drop_replication_slot($1)", name)

    async def position(self) -> tuple[str, int]:
        row = await self._admin.fetchrow(
            "SELECT pg_current_wal_lsn()::text, "
            "(SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter)"
        )
        assert row is not None
        return row[0], int(row[1])

    async def between(self, start: str, end: str) -> tuple[int, int]:
        row = await self._admin.fetchrow(
            """
            WITH r AS MATERIALIZED (
                SELECT xid, record_length, block_ref
                FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn)
            ),
            here AS (SELECT '% rel ' || oid::text || '/' || (
                SELECT oid FROM pg_database WHERE datname = current_database())::text || '/%'
                AS pattern FROM pg_tablespace WHERE spcname = 'pg_default'),
            ours AS (SELECT DISTINCT xid FROM r, here
                     WHERE xid <> '0'::xid AND block_ref LIKE here.pattern)
            SELECT coalesce(sum(record_length) FILTER (
                       WHERE xid IN (SELECT xid FROM ours)
                          OR (xid = '0'::xid AND block_ref LIKE (SELECT pattern FROM here))), 0),
                   $2::text::pg_lsn - $1::text::pg_lsn
            FROM r""",
            start,
            end,
        )
        assert row is not None
        return int(row[0]), int(row[1])


async def _phase(wal: Wal, n: int, op: Any) -> dict[str, Any]:
    async with wal.kept():
        start, checkpoints = await wal.position()
        samples, _ = await measure_async(n, op)
        end, checkpoints_after = await wal.position()
        ours, everything = await wal.between(start, end)
    row = _row(samples, ours / n, checkpoints_after != checkpoints)
    row["wal_bytes_per_op_all_databases"] = round(everything / n, 1)
    return row


def _row(samples: Samples, wal: float, checkpoint: bool) -> dict[str, Any]:
    return {
        "ops_per_s": round(samples.ops_per_s, 1),
        "p50_us": round(samples.percentile_us(0.5), 1),
        "wal_bytes_per_op": round(wal, 1),
        "checkpoint": checkpoint,
    }


async def _run_billing(url: str, wal: Wal, admin: asyncpg.Connection, n: int, mode: str) -> Any:
    out: dict[str, Any] = {}
    async with (
        Billing(storage=_storage(mode, url)) as billing,
        Billing(storage=_storage(mode, url)) as other,
    ):
        customers = billing.customers
        ids: list[str] = []

        async def create(i: int) -> None:
            ids.append((await customers.create(**create_args(i))).id)

        out["create"] = await _phase(wal, n, create)
        for i, customer_id in enumerate(ids):
            await customers.link(
                customer_id, provider="stripe", provider_customer_id=provider_id_of(i)
            )
        await admin.execute("ANALYZE")
        await admin.execute("CHECKPOINT")
        for i, customer_id in enumerate(ids):  # untimed: every page written once since then
            await customers.update(customer_id, name=f"User {i} v2", metadata={"plan": "team"})
        if mode in TWO_WRITERS:
            for customer_id in ids:
                await other.customers.update(customer_id, metadata={"seen": "other"})
        out["update"] = await _phase(
            wal,
            n,
            lambda i: customers.update(ids[i], name=f"User {i} v3", metadata={"plan": "ent"}),
        )
        deleting = other.customers if mode in TWO_WRITERS else customers
        out["delete"] = await _phase(wal, n, lambda i: deleting.delete(ids[i]))
        for customer_id in ids[:: max(1, n // 50)]:  # spot check: every change landed
            stored = await customers.get(customer_id)
            expect(
                stored is not None
                and stored.deleted_at is not None
                and stored.metadata.get("plan") == "ent",
                f"{mode}: customer {customer_id} did not end updated and deleted",
            )
    return out


async def _run_raw(url: str, wal: Wal, admin: asyncpg.Connection, n: int) -> Any:
    from bench.raw_postgres import INSERT

    storage = PostgresStorage(url)
    await storage.upgrade()
    await storage.close()
    db = await asyncpg.connect(url)
    out: dict[str, Any] = {}
    try:
        ids = [f"cus_raw_{i:08d}" for i in range(n)]
        now = datetime.now(UTC)
        insert = await db.prepare(INSERT)

        async def create(i: int) -> None:
            args = create_args(i)
            async with db.transaction():
                await insert.fetch(
                    ids[i],
                    args["email"],
                    args["email"],
                    args["name"],
                    json.dumps(args["metadata"]),
                    now,
                )

        out["create"] = await _phase(wal, n, create)
        await admin.execute("ANALYZE")
        await admin.execute("CHECKPOINT")
        update = await db.prepare(
            "UPDATE customers SET name = $1, metadata = $2::jsonb, updated_at = $3 WHERE id = $4"
        )

        async def do_update(i: int, version: str = "v3") -> None:
            async with db.transaction():
                await update.fetch(
                    f"User {i} {version}", json.dumps({"plan": "ent", "seq": str(i)}), now, ids[i]
                )

        for i in range(n):
            await do_update(i, "v2")
        out["update"] = await _phase(wal, n, do_update)
        delete = await db.prepare(
            "UPDATE customers SET deleted_at = $1, updated_at = $1 WHERE id = $2"
        )

        async def do_delete(i: int) -> None:
            async with db.transaction():
                await delete.fetch(now, ids[i])

        out["delete"] = await _phase(wal, n, do_delete)
    finally:
        await db.close()
    return out


async def run(admin_url: str, n: int, repeats: int, modes: list[str]) -> dict[str, Any]:
    scratch = PostgresScratch(admin_url)
    await scratch.create()
    runs: dict[str, list[Any]] = {mode: [] for mode in modes}
    try:
        admin = await asyncpg.connect(scratch.url)
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        wal = Wal(admin)
        try:
            for _ in range(repeats):
                for mode in modes:  # interleaved, so the modes share the machine's moods
                    await scratch.reset()
                    if mode == "raw":
                        runs[mode].append(await _run_raw(scratch.url, wal, admin, n))
                    else:
                        runs[mode].append(await _run_billing(scratch.url, wal, admin, n, mode))
        finally:
            await admin.close()
    finally:
        await scratch.drop()
    return _summary(runs, n, repeats)


def _summary(runs: dict[str, list[Any]], n: int, repeats: int) -> dict[str, Any]:
    report: dict[str, Any] = {"n": n, "repeats": repeats, "modes": {}}
    for mode, results in runs.items():
        report["modes"][mode] = {
            phase: {
                "ops_per_s_median": statistics.median(r[phase]["ops_per_s"] for r in results),
                "wal_bytes_per_op_median": statistics.median(
                    r[phase]["wal_bytes_per_op"] for r in results
                ),
                "wal_bytes_per_op_min": min(r[phase]["wal_bytes_per_op"] for r in results),
                "checkpoints": sum(r[phase]["checkpoint"] for r in results),
            }
            for phase in PHASES
        }
    if "raw" in runs:
        report["ratio_to_raw_median"] = {
            mode: {
                phase: statistics.median(
                    ours[phase]["ops_per_s"] / raw[phase]["ops_per_s"]
                    for ours, raw in zip(results, runs["raw"], strict=True)
                )
                for phase in PHASES
            }
            for mode, results in runs.items()
            if mode != "raw"
        }
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres_writes", description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres-url", default=None, help="admin URL for a scratch database")
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {', '.join(MODES)}")
    report = asyncio.run(run(args.postgres_url or default_admin_url(), args.n, args.repeats, modes))
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return report


if __name__ == "__main__":
    main()
