"""The customers workload, phase by phase, through Billing or SyncBilling.

It mirrors the workload the TypeScript QZPay is measured with, so figures compare: create N,
get each, get_by_external_id each, three kinds of list 500 times, update each, delete each,
then create N more with 8 operations in flight. Every phase checks its results as it goes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bench.stats import Samples
from qzpay import Billing, Customer, Page, SyncBilling

PHASES = (
    "create",
    "get",
    "get_by_external_id",
    "list_offset",
    "list_email",
    "list_metadata",
    "update",
    "delete",
    "create_concurrent",
)
LIST_CALLS = 500
IN_FLIGHT = 8
T = TypeVar("T")


class BenchFailure(AssertionError):
    """A result the workload checked was wrong: the figures would be meaningless."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise BenchFailure(message)


def email_of(i: int) -> str:
    return f"user{i}@bench.example.com"


def provider_id_of(i: int) -> str:
    return f"cus_bench_{i}"


def create_args(i: int) -> dict[str, Any]:
    return {"email": email_of(i), "name": f"User {i}", "metadata": {"plan": "pro", "seq": str(i)}}


async def measure_async(count: int, op: Callable[[int], Awaitable[T]]) -> tuple[Samples, list[T]]:
    samples = Samples()
    results: list[T] = []
    clock = time.perf_counter_ns
    started = clock()
    for i in range(count):
        before = clock()
        results.append(await op(i))
        samples.latencies_ns.append(clock() - before)
    samples.wall_ns = clock() - started
    return samples, results


def measure_sync(count: int, op: Callable[[int], T]) -> tuple[Samples, list[T]]:
    samples = Samples()
    results: list[T] = []
    clock = time.perf_counter_ns
    started = clock()
    for i in range(count):
        before = clock()
        results.append(op(i))
        samples.latencies_ns.append(clock() - before)
    samples.wall_ns = clock() - started
    return samples, results


def check_created(customers: list[Customer], offset: int) -> None:
    for i, customer in enumerate(customers):
        expect(customer.email == email_of(offset + i), f"create {i}: wrong email")
    expect(len({c.id for c in customers}) == len(customers), "create: duplicate ids")


def check_list(page: Page[Customer], expected: int, what: str) -> None:
    expect(len(page.data) == expected, f"{what}: {len(page.data)} rows, expected {expected}")


async def run_async(
    billing: Billing, n: int, settle: Callable[[], None] | None = None
) -> dict[str, Samples]:
    """``settle`` runs untimed after the set-up (e.g. ANALYZE, as autovacuum would)."""
    out: dict[str, Samples] = {}
    customers = billing.customers
    out["create"], created = await measure_async(n, lambda i: customers.create(**create_args(i)))
    check_created(created, 0)
    ids = [c.id for c in created]
    for i, customer_id in enumerate(ids):  # untimed set-up for the provider look-ups
        await customers.link(customer_id, provider="stripe", provider_customer_id=provider_id_of(i))
    if settle is not None:
        await asyncio.to_thread(settle)

    out["get"], got = await measure_async(n, lambda i: customers.get(ids[i]))
    expect([c.id if c else None for c in got] == ids, "get: wrong customers")
    out["get_by_external_id"], found = await measure_async(
        n, lambda i: customers.get_by_external_id(provider_id_of(i))
    )
    expect([c.id if c else None for c in found] == ids, "get_by_external_id: wrong customers")

    calls = min(LIST_CALLS, n)
    out["list_offset"], pages = await measure_async(
        calls, lambda i: customers.list(limit=20, offset=(i * 20) % n)
    )
    for i, page in enumerate(pages):
        check_list(page, min(20, n - (i * 20) % n), "list_offset")
    out["list_email"], pages = await measure_async(
        calls, lambda i: customers.list(limit=20, email=email_of(i * 7 % n))
    )
    for page in pages:
        check_list(page, 1, "list_email")
    out["list_metadata"], pages = await measure_async(
        calls, lambda i: customers.list(limit=20, metadata={"seq": str(i * 7 % n)})
    )
    for page in pages:
        check_list(page, 1, "list_metadata")

    out["update"], updated = await measure_async(
        n,
        lambda i: customers.update(ids[i], name=f"User {i} v2", metadata={"plan": "enterprise"}),
    )
    expect(all(u.name == f"User {i} v2" for i, u in enumerate(updated)), "update: not applied")
    sample = await customers.get(ids[n // 2])
    expect(sample is not None and sample.metadata["plan"] == "enterprise", "update: not visible")

    out["delete"], _ = await measure_async(n, lambda i: customers.delete(ids[i]))
    expect((await customers.list()).total == 0, "delete: customers remain listed")

    out["create_concurrent"] = await _create_concurrent_async(billing, n)
    return out


async def _create_concurrent_async(billing: Billing, n: int) -> Samples:
    samples = Samples()
    clock = time.perf_counter_ns
    next_index = iter(range(n, 2 * n))
    created: list[Customer] = []

    async def worker() -> None:
        for i in next_index:
            before = clock()
            created.append(await billing.customers.create(**create_args(i)))
            samples.latencies_ns.append(clock() - before)

    started = clock()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    samples.wall_ns = clock() - started
    expect(len({c.id for c in created}) == n, "create_concurrent: lost or duplicate creates")
    expect((await billing.customers.list()).total == n, "create_concurrent: not all listed")
    return samples


def run_sync(
    billing: SyncBilling, n: int, settle: Callable[[], None] | None = None
) -> dict[str, Samples]:
    out: dict[str, Samples] = {}
    customers = billing.customers
    out["create"], created = measure_sync(n, lambda i: customers.create(**create_args(i)))
    check_created(created, 0)
    ids = [c.id for c in created]
    for i, customer_id in enumerate(ids):
        customers.link(customer_id, provider="stripe", provider_customer_id=provider_id_of(i))
    if settle is not None:
        settle()

    out["get"], got = measure_sync(n, lambda i: customers.get(ids[i]))
    expect([c.id if c else None for c in got] == ids, "get: wrong customers")
    out["get_by_external_id"], found = measure_sync(
        n, lambda i: customers.get_by_external_id(provider_id_of(i))
    )
    expect([c.id if c else None for c in found] == ids, "get_by_external_id: wrong customers")
    calls = min(LIST_CALLS, n)
    out["list_offset"], pages = measure_sync(
        calls, lambda i: customers.list(limit=20, offset=(i * 20) % n)
    )
    for i, page in enumerate(pages):
        check_list(page, min(20, n - (i * 20) % n), "list_offset")
    out["list_email"], pages = measure_sync(
        calls, lambda i: customers.list(limit=20, email=email_of(i * 7 % n))
    )
    for page in pages:
        check_list(page, 1, "list_email")
    out["list_metadata"], pages = measure_sync(
        calls, lambda i: customers.list(limit=20, metadata={"seq": str(i * 7 % n)})
    )
    for page in pages:
        check_list(page, 1, "list_metadata")
    out["update"], updated = measure_sync(
        n,
        lambda i: customers.update(ids[i], name=f"User {i} v2", metadata={"plan": "enterprise"}),
    )
    expect(all(u.name == f"User {i} v2" for i, u in enumerate(updated)), "update: not applied")
    out["delete"], _ = measure_sync(n, lambda i: customers.delete(ids[i]))
    expect(customers.list().total == 0, "delete: customers remain listed")

    samples = Samples()
    lock = threading.Lock()
    clock = time.perf_counter_ns

    def one(i: int) -> str:
        before = clock()
        customer = customers.create(**create_args(i))
        elapsed = clock() - before
        with lock:
            samples.latencies_ns.append(elapsed)
        return customer.id

    started = clock()
    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        new_ids = list(pool.map(one, range(n, 2 * n)))
    samples.wall_ns = clock() - started
    expect(len(set(new_ids)) == n, "create_concurrent: lost or duplicate creates")
    out["create_concurrent"] = samples
    return out
