"""``uv run python -m bench.record_writes [--n 1000] [--repeats 3] [--postgres-url URL]``:
PostgreSQL changes of plans and subscriptions (issue 16, "the same path for the next
resources") through ``Billing``, against the raw driver's one UPDATE per transaction, in the
same run.

Each record is changed once untimed (so a storage that remembers versions has seen it), then
the timed phases: ``plan_update`` (``plans.update`` of a name and a metadata key) and
``subscription_uncancel`` (``subscriptions.uncancel`` of a free subscription cancelled at
period end, which changes no access, after the service's committed look-up of where the
subscription is billed). Modes: ``raw`` (asyncpg on one connection: BEGIN, the UPDATE, COMMIT);
``remembered`` (the service as configured by default: the version it remembers goes into one
checked statement); ``read_first`` (``recent_versions=0``: an unlocked read, then the checked
statement); ``locked`` (a storage offering no optimistic transactions: BEGIN with the advisory
lock, SELECT ... FOR UPDATE, the UPDATE, the event, COMMIT). One client at a time, modes
interleaved per repeat; medians over the repeats of each mode's ops/s and of its same-repeat
ratio to ``raw``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench.postgres_scratch import PostgresScratch, default_admin_url
from bench.postgres_writes import LockedStorage
from bench.workload import create_args, expect, measure_async
from qzpay import Billing
from qzpay.storage.postgres import PostgresStorage

MODES = ("raw", "remembered", "read_first", "locked")
PHASES = ("plan_update", "subscription_uncancel")


async def _fixtures(billing: Billing, n: int) -> tuple[list[str], list[str]]:
    """``n`` plans and ``n`` free subscriptions (one customer each), made untimed."""
    plans = [(await billing.plans.create(f"plan-{i}", f"Plan {i}")).id for i in range(n)]
    price = await billing.prices.create(plans[0], currency="USD", unit_amount=0, interval="month")
    subscriptions = []
    for i in range(n):
        customer = await billing.customers.create(**create_args(i))
        subscriptions.append((await billing.subscriptions.create(customer.id, price.id)).id)
    return plans, subscriptions


async def _run_billing(url: str, n: int, mode: str) -> dict[str, float]:
    if mode == "locked":
        storage: PostgresStorage = LockedStorage(url)
    else:
        # The default holds 4,096 versions: n customers, plans and subscriptions up to n=1,365.
        storage = PostgresStorage(url, recent_versions=0 if mode == "read_first" else 3 * n)
    async with Billing(storage=storage) as billing:
        plans, subscriptions = await _fixtures(billing, n)
        for plan_id, sub_id in zip(plans, subscriptions, strict=True):  # untimed: seen once
            await billing.plans.update(plan_id, name="v1")
            await billing.subscriptions.cancel(sub_id)
        plan_update, _ = await measure_async(
            n, lambda i: billing.plans.update(plans[i], name=f"Plan {i} v2", metadata={"v": "2"})
        )
        uncancel, _ = await measure_async(
            n, lambda i: billing.subscriptions.uncancel(subscriptions[i])
        )
        for plan_id, sub_id in list(zip(plans, subscriptions, strict=True))[:: max(1, n // 20)]:
            plan = await billing.plans.get(plan_id)
            sub = await billing.subscriptions.get(sub_id)
            expect(
                plan is not None and plan.metadata == {"v": "2"},
                f"{mode}: plan {plan_id} not updated",
            )
            expect(
                sub is not None and not sub.cancel_at_period_end,
                f"{mode}: subscription {sub_id} not uncancelled",
            )
    return {"plan_update": plan_update.ops_per_s, "subscription_uncancel": uncancel.ops_per_s}


async def _run_raw(url: str, n: int) -> dict[str, float]:
    async with Billing(storage=PostgresStorage(url)) as billing:
        plans, subscriptions = await _fixtures(billing, n)
    db = await asyncpg.connect(url)
    try:
        now = datetime.now(UTC)
        plan_update = await db.prepare(
            "UPDATE plans SET name = $1, metadata = $2::jsonb, updated_at = $3 WHERE id = $4"
        )
        uncancel = await db.prepare(
            "UPDATE subscriptions SET cancel_at_period_end = false, canceled_at = NULL, "
            "updated_at = $1 WHERE id = $2"
        )

        async def update_plan(i: int) -> None:
            async with db.transaction():
                await plan_update.fetch(f"Plan {i} v2", json.dumps({"v": "2"}), now, plans[i])

        async def uncancel_subscription(i: int) -> None:
            async with db.transaction():
                await uncancel.fetch(now, subscriptions[i])

        plans_timed, _ = await measure_async(n, update_plan)
        uncancel_timed, _ = await measure_async(n, uncancel_subscription)
    finally:
        await db.close()
    return {
        "plan_update": plans_timed.ops_per_s,
        "subscription_uncancel": uncancel_timed.ops_per_s,
    }


async def run(admin_url: str, n: int, repeats: int) -> dict[str, Any]:
    scratch = PostgresScratch(admin_url)
    await scratch.create()
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    try:
        for _ in range(repeats):
            for mode in MODES:  # interleaved, so the modes share the machine's moods
                await scratch.reset()
                if mode == "raw":
                    runs[mode].append(await _run_raw(scratch.url, n))
                else:
                    runs[mode].append(await _run_billing(scratch.url, n, mode))
    finally:
        await scratch.drop()
    return {
        "n": n,
        "repeats": repeats,
        "ops_per_s_median": {
            mode: {
                phase: round(statistics.median(r[phase] for r in results), 1) for phase in PHASES
            }
            for mode, results in runs.items()
        },
        "ratio_to_raw_median": {
            mode: {
                phase: round(
                    statistics.median(
                        ours[phase] / raw[phase]
                        for ours, raw in zip(runs[mode], runs["raw"], strict=True)
                    ),
                    3,
                )
                for phase in PHASES
            }
            for mode in MODES
            if mode != "raw"
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.record_writes", description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres-url", default=None, help="admin URL for a scratch database")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args.postgres_url or default_admin_url(), args.n, args.repeats))
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return report


if __name__ == "__main__":
    main()
