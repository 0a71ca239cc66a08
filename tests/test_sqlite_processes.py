"""Several processes sharing one SQLite file, as a web server's workers would."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
from collections.abc import Callable
from pathlib import Path

from qzpay import Billing
from qzpay.errors import ConflictError

WORKERS = 4
UPDATES_PER_WORKER = 12  # 48 keys: under the 50-key limit


def _merge_worker(url: str, customer_id: str, worker: int) -> None:
    async def run() -> None:
        async with Billing(storage=url) as billing:
            for i in range(UPDATES_PER_WORKER):
                await billing.customers.update(customer_id, metadata={f"w{worker}_{i}": str(i)})

    asyncio.run(run())


def _link_worker(url: str, customer_id: str, results: multiprocessing.Queue[str]) -> None:
    async def run() -> str:
        async with Billing(storage=url) as billing:
            try:
                await billing.customers.link(
                    customer_id, provider="stripe", provider_customer_id="cus_contended"
                )
            except ConflictError as exc:
                return exc.code
            return "linked"

    results.put(asyncio.run(run()))


def _spawn(target: Callable[..., None], *args: tuple[object, ...]) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=a) for a in args]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0


async def test_concurrent_metadata_merges_all_survive_and_log_is_in_commit_order(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with Billing(storage=url) as billing:
        customer = await billing.customers.create(email="shared@example.com")
    _spawn(_merge_worker, *[(url, customer.id, w) for w in range(WORKERS)])
    async with Billing(storage=url) as billing:
        final = await billing.customers.get(customer.id)
        assert final is not None
        expected = {f"w{w}_{i}": str(i) for w in range(WORKERS) for i in range(UPDATES_PER_WORKER)}
        assert final.metadata == expected
        log = await billing.events.list(limit=1000)
    assert len(log) == 1 + WORKERS * UPDATES_PER_WORKER
    # Commit order: every event's `previous` is exactly the state the event before it left.
    for earlier, later in itertools.pairwise(log):
        assert later.previous is not None
        assert later.previous["metadata"] == earlier.data.metadata
        assert later.data.updated_at >= earlier.data.updated_at


async def test_one_provider_id_is_never_linked_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'links.db'}"
    async with Billing(storage=url) as billing:
        customers = [await billing.customers.create(email=f"c{i}@example.com") for i in range(4)]
    results: multiprocessing.Queue[str] = multiprocessing.get_context("spawn").Queue()
    _spawn(_link_worker, *[(url, c.id, results) for c in customers])
    outcomes = sorted(results.get(timeout=10) for _ in customers)
    assert outcomes == ["linked"] + ["provider_id_taken"] * 3
    async with Billing(storage=url) as billing:
        owner = await billing.customers.get_by_external_id("cus_contended")
        assert owner is not None
        linked = [
            c
            for c in customers
            if (await billing.customers.get(c.id)).provider_customer_ids  # type: ignore[union-attr]
        ]
        assert [c.id for c in linked] == [owner.id]
