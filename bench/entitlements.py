"""``entitlements.check`` on PostgreSQL (issue 13) against the raw driver asking the same
question, at several numbers of subscriptions, measured in the same run.

``uv run python -m bench.entitlements [--sizes 10000,100000,1000000] [--n 5000] [--rounds 3]
[--json]``. A scratch database is created and dropped (QZPAY_BENCH_POSTGRES_URL, default the
local server). Ten plans with a free price each are made through ``Billing``; customers and
subscriptions are then bulk-loaded with SQL (``generate_series``) to reach each size: every
customer has one granting subscription and three ended ones (its history), so a read that
scanned the history would show. The raw side is asyncpg on one connection with a prepared
statement answering "may this customer use key K?" from the same tables:

    SELECT EXISTS (SELECT 1 FROM subscriptions s JOIN plans p ON p.id = s.plan_id
                   WHERE s.customer_id = $1 AND s.status IN (...) AND p.entitlements ? $2)

The two sides alternate for ``rounds`` rounds per size; the best round of each is reported
(the least disturbed by the rest of the machine). ``ratio`` is qzpay's ops/s over the raw
side's (the target: ≥ 0.5); ``flatness`` is each size's p50 over the smallest size's (the
target: ≤ 1.5 at the largest).
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
from qzpay.storage.subscription_rows import GRANTED_STATUSES_SQL

PLANS = 10
HISTORY = 3
"""Ended subscriptions per customer, next to its one granting subscription."""

RAW = (
    "SELECT EXISTS (SELECT 1 FROM subscriptions s JOIN plans p ON p.id = s.plan_id "
    f"WHERE s.customer_id = $1 AND s.status IN {GRANTED_STATUSES_SQL} "
    "AND p.entitlements ? $2)"
)

_CUSTOMERS = """
INSERT INTO customers (id, email, email_key, metadata, provider_ids, created_at, updated_at)
SELECT 'cus_bench_' || lpad(n::text, 9, '0'), 'c' || n || '@example.com',
       'c' || n || '@example.com', '{}', '{}', now(), now()
FROM generate_series($1::int, $2::int - 1) AS n
"""
# Subscription n belongs to customer n / (HISTORY + 1); the first of each customer grants.
_SUBSCRIPTIONS = f"""
INSERT INTO subscriptions (id, customer_id, price_id, plan_id, quantity, status,
    current_period_start, current_period_end, cancel_at_period_end, metadata,
    created_at, updated_at)
SELECT 'sub_bench_' || lpad(n::text, 10, '0'),
       'cus_bench_' || lpad((n / {HISTORY + 1})::text, 9, '0'),
       (prices)[1 + (n % {PLANS})], (plans)[1 + (n % {PLANS})], 1,
       CASE WHEN n % {HISTORY + 1} = 0 THEN 'active' ELSE 'canceled' END,
       now(), now() + interval '30 days', false, '{{}}', now(), now()
FROM generate_series($1::int, $2::int - 1) AS n,
     (SELECT $3::text[] AS prices, $4::text[] AS plans) AS catalog
"""


async def _measure(
    questions: list[tuple[str, str]], call: Callable[[str, str], Awaitable[object]]
) -> Samples:
    samples = Samples()
    started = time.perf_counter_ns()
    for customer_id, key in questions:
        before = time.perf_counter_ns()
        await call(customer_id, key)
        samples.latencies_ns.append(time.perf_counter_ns() - before)
    samples.wall_ns = time.perf_counter_ns() - started
    return samples


async def _catalog(billing: Billing) -> tuple[list[str], list[str]]:
    prices, plans = [], []
    for n in range(PLANS):
        plan = await billing.plans.create(
            f"plan-{n}", f"Plan {n}", entitlements=["api", f"feature-{n}"], limits={"seats": n}
        )
        price = await billing.prices.create(
            plan.id, currency="usd", unit_amount=0, interval="month"
        )
        plans.append(plan.id)
        prices.append(price.id)
    return prices, plans


async def _grow(url: str, have: int, want: int, catalog: tuple[list[str], list[str]]) -> None:
    """Load subscriptions ``have`` to ``want`` (and their customers) with SQL."""
    connection = await asyncpg.connect(url)
    try:
        per = HISTORY + 1
        await connection.execute(_CUSTOMERS, have // per, -(-want // per))
        await connection.execute(_SUBSCRIPTIONS, have, want, *catalog)
    finally:
        await connection.close()
    await analyze(url)


def _questions(size: int, n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` questions about random customers of a store of ``size`` subscriptions: half
    about a key they have ("api"), half about one their plan may not grant."""
    draw = random.Random(seed)
    customers = size // (HISTORY + 1)
    return [
        (
            f"cus_bench_{draw.randrange(customers):09d}",
            "api" if draw.random() < 0.5 else f"feature-{draw.randrange(PLANS)}",
        )
        for _ in range(n)
    ]


async def run(sizes: list[int], n: int, rounds: int) -> dict[str, Any]:
    scratch = PostgresScratch(default_admin_url())
    await scratch.create()
    report: dict[str, Any] = {}
    try:
        async with Billing(storage=scratch.url) as billing:
            catalog = await _catalog(billing)
            raw = await asyncpg.connect(scratch.url)
            try:
                statement = await raw.prepare(RAW)
                have = 0
                for size in sorted(sizes):
                    await _grow(scratch.url, have, size, catalog)
                    have = size
                    report[str(size)] = await _compare(billing, statement, size, n, rounds)
            finally:
                await raw.close()
    finally:
        await scratch.drop()
    smallest = report[str(min(sizes))]["p50_us"]
    for row in report.values():
        row["flatness"] = round(row["p50_us"] / smallest, 3)
    return report


async def _compare(
    billing: Billing, statement: Any, size: int, n: int, rounds: int
) -> dict[str, Any]:
    questions = _questions(size, n, size)

    async def raw_check(customer_id: str, key: str) -> object:
        return await statement.fetchval(customer_id, key)

    ours_check = billing.entitlements.check
    for customer_id, key in questions[:50]:  # the same answers on both sides
        assert await ours_check(customer_id, key) == await raw_check(customer_id, key)
    await _measure(questions[: min(n, 500)], ours_check)  # warm both sides
    await _measure(questions[: min(n, 500)], raw_check)
    best: dict[str, Samples] = {}
    for _ in range(rounds):
        for side, call in (("qzpay", ours_check), ("raw", raw_check)):
            samples = await _measure(questions, call)
            if side not in best or samples.ops_per_s > best[side].ops_per_s:
                best[side] = samples
    ours, theirs = best["qzpay"], best["raw"]
    return {
        "ops_per_s": round(ours.ops_per_s, 1),
        "raw_ops_per_s": round(theirs.ops_per_s, 1),
        "ratio": round(ours.ops_per_s / theirs.ops_per_s, 3),
        "p50_us": round(ours.percentile_us(0.5), 1),
        "p99_us": round(ours.percentile_us(0.99), 1),
        "raw_p50_us": round(theirs.percentile_us(0.5), 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.entitlements", description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if any(size < HISTORY + 1 for size in sizes):
        parser.error(f"every size must be at least {HISTORY + 1}")
    report = asyncio.run(run(sizes, args.n, args.rounds))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{'subscriptions':>13} {'ops/s':>9} {'raw ops/s':>10} {'ratio':>6} {'p50 µs':>7} "
            f"{'raw p50':>8} {'flat':>5}"
        )
        for size, row in report.items():
            print(
                f"{int(size):>13,} {row['ops_per_s']:>9,.0f} {row['raw_ops_per_s']:>10,.0f} "
                f"{row['ratio']:>6.2f} {row['p50_us']:>7.1f} {row['raw_p50_us']:>8.1f} "
                f"{row['flatness']:>5.2f}"
            )
    return report


if __name__ == "__main__":
    main()
