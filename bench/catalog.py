"""Catalog reads on PostgreSQL (issue 12): ``prices.get``, ``prices.get_by_lookup_key`` and
``plans.get_by_key`` through ``Billing``, against the raw driver's same look-up (asyncpg, one
connection, a prepared statement, the same columns), measured in the same run.

``uv run python -m bench.catalog [--plans 200] [--n 5000] [--rounds 3] [--json]``. A scratch
database is created and dropped (QZPAY_BENCH_POSTGRES_URL, default the local server). The
two sides alternate for ``rounds`` rounds; the best round of each is reported (the least
disturbed by the rest of the machine), with its p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from bench.postgres_scratch import PostgresScratch, analyze, default_admin_url
from bench.stats import Samples
from qzpay import Billing
from qzpay.storage.catalog_rows import PLAN_ROWS, PRICE_ROWS

PLAN_COLUMNS, PRICE_COLUMNS = PLAN_ROWS.columns, PRICE_ROWS.columns

RAW = {
    "prices.get": f"SELECT {PRICE_COLUMNS} FROM prices WHERE id = $1",
    "prices.get_by_lookup_key": (
        f"SELECT {PRICE_COLUMNS} FROM prices "
        "WHERE lookup_key = $1 AND active AND lookup_key IS NOT NULL"
    ),
    "plans.get_by_key": f"SELECT {PLAN_COLUMNS} FROM plans WHERE key = $1",
}


async def _measure(keys: list[str], call: Callable[[str], Awaitable[object]]) -> Samples:
    samples = Samples()
    started = time.perf_counter_ns()
    for key in keys:
        before = time.perf_counter_ns()
        found = await call(key)
        samples.latencies_ns.append(time.perf_counter_ns() - before)
        assert found is not None
    samples.wall_ns = time.perf_counter_ns() - started
    return samples


async def _load(billing: Billing, plans: int) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {name: [] for name in RAW}
    for n in range(plans):
        plan = await billing.plans.create(
            f"plan-{n}", f"Plan {n}", entitlements=["api", "sso"], limits={"seats": n}
        )
        keys["plans.get_by_key"].append(plan.key)
        for interval in ("month", "year"):
            price = await billing.prices.create(
                plan.id,
                currency="usd",
                unit_amount=1000 + n,
                interval=interval,
                lookup_key=f"plan-{n}-{interval}",
                metadata={"n": str(n)},
            )
            keys["prices.get"].append(price.id)
            keys["prices.get_by_lookup_key"].append(f"plan-{n}-{interval}")
    return keys


async def run(plans: int, n: int, rounds: int) -> dict[str, Any]:
    scratch = PostgresScratch(default_admin_url())
    await scratch.create()
    try:
        async with Billing(storage=scratch.url) as billing:
            keys = await _load(billing, plans)
            await analyze(scratch.url)
            raw = await asyncpg.connect(scratch.url)
            try:
                return await _compare(billing, raw, keys, n, rounds)
            finally:
                await raw.close()
    finally:
        await scratch.drop()


async def _compare(
    billing: Billing, raw: asyncpg.Connection, keys: dict[str, list[str]], n: int, rounds: int
) -> dict[str, Any]:
    calls: dict[str, Callable[[str], Awaitable[object]]] = {
        "prices.get": billing.prices.get,
        "prices.get_by_lookup_key": billing.prices.get_by_lookup_key,
        "plans.get_by_key": billing.plans.get_by_key,
    }
    report: dict[str, Any] = {}
    for name, call in calls.items():
        statement = await raw.prepare(RAW[name])
        picked = random.Random(name).choices(keys[name], k=n)
        await _measure(picked[: min(n, 500)], call)  # warm both sides
        await _measure(picked[: min(n, 500)], statement.fetchrow)
        best: dict[str, Samples] = {}
        for _ in range(rounds):
            for side, run_one in (("qzpay", call), ("raw", statement.fetchrow)):
                samples = await _measure(picked, run_one)
                if side not in best or samples.ops_per_s > best[side].ops_per_s:
                    best[side] = samples
        ours, theirs = best["qzpay"], best["raw"]
        report[name] = {
            "ops_per_s": round(ours.ops_per_s, 1),
            "raw_ops_per_s": round(theirs.ops_per_s, 1),
            "ratio": round(ours.ops_per_s / theirs.ops_per_s, 3),
            "p50_us": round(ours.percentile_us(0.5), 1),
            "p99_us": round(ours.percentile_us(0.99), 1),
            "raw_p50_us": round(theirs.percentile_us(0.5), 1),
        }
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.catalog", description=__doc__)
    parser.add_argument("--plans", type=int, default=200)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args.plans, args.n, args.rounds))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{'look-up':<26} {'ops/s':>9} {'raw ops/s':>10} {'ratio':>6} {'p50 µs':>7}")
        for name, row in report.items():
            print(
                f"{name:<26} {row['ops_per_s']:>9,.0f} {row['raw_ops_per_s']:>10,.0f} "
                f"{row['ratio']:>6.2f} {row['p50_us']:>7.1f}"
            )
    return report


if __name__ == "__main__":
    main()
