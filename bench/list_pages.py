"""``uv run python -m bench.list_pages [--n 20000] [--rounds 15] [--backends memory,sqlite]
[--json]``: what ``customers.list`` costs over the storage read it makes (issue 11, last pass).

Every ``list`` returns a :class:`~qzpay.blocking.PageRead` so that the blocking twin reads the
page the service describes instead of re-typing its parameters. This measures that layer: the
same page read "by hand" (the argument checks, the storage's ``list_customers``, the Page) in
the same process against ``Billing.customers.list`` and ``SyncBilling.customers.list``
(whose reads stay on the calling thread), in interleaved rounds. It reports microseconds per
call (the fastest round: the machine's noise only adds) and the ratio of each to its by-hand
read; both sides must return the same customers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.workload import expect
from qzpay import Billing, SyncBilling
from qzpay.customers.reads import list_filters
from qzpay.page import Page, make_page
from qzpay.storage.base import SupportsBlockingReads

CUSTOMERS = 300
PAGE = 20


def _email(i: int) -> str:
    return f"u{i % CUSTOMERS}@example.com"


async def _timed_async(call: Callable[[int], Awaitable[object]], n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        await call(i)
    return (time.perf_counter() - started) / n * 1e6


def _timed(call: Callable[[int], object], n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        call(i)
    return (time.perf_counter() - started) / n * 1e6


def _summary(samples: dict[str, list[float]]) -> dict[str, Any]:
    best = {name: min(values) for name, values in samples.items()}
    return {
        "us_min": {name: round(value, 2) for name, value in best.items()},
        "us_median": {name: round(statistics.median(v), 2) for name, v in samples.items()},
        "ratio_min": {
            "async": round(best["list_async"] / best["by_hand_async"], 3),
            "blocking": round(best["list_blocking"] / best["by_hand_blocking"], 3),
        },
    }


def run(url: str, n: int, rounds: int) -> dict[str, Any]:
    """Async rounds, then blocking rounds over the same rows (a memory store is filled for
    each side, as each has its own)."""
    samples: dict[str, list[float]] = asyncio.run(_async_rounds(url, n, rounds))
    return _summary({**samples, **_blocking_rounds(url, n, rounds)})


async def _async_rounds(url: str, n: int, rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"by_hand_async": [], "list_async": []}
    async with Billing(url) as billing:
        for i in range(CUSTOMERS):
            await billing.customers.create(email=_email(i))
        storage = billing.storage

        async def by_hand(i: int) -> Page[Any]:
            filters = list_filters(PAGE, 0, _email(i), None, False, {})
            data, total = await storage.list_customers(filters, limit=PAGE, offset=0)
            return make_page(data, total, PAGE, 0)

        async def through_list(i: int) -> Page[Any]:
            return await billing.customers.list(limit=PAGE, email=_email(i))

        same = [(await by_hand(i)).data == (await through_list(i)).data for i in range(3)]
        expect(all(same) and (await by_hand(0)).total == 1, "list: the two reads differ")
        for _ in range(rounds):
            samples["by_hand_async"].append(await _timed_async(by_hand, n))
            samples["list_async"].append(await _timed_async(through_list, n))
    return samples


def _blocking_rounds(url: str, n: int, rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"by_hand_blocking": [], "list_blocking": []}
    with SyncBilling(url) as billing:
        if url == "memory://":
            for i in range(CUSTOMERS):
                billing.customers.create(email=_email(i))
        storage = billing.storage
        if not isinstance(storage, SupportsBlockingReads):
            raise SystemExit(f"{url}: no blocking reader")

        def by_hand(i: int) -> Page[Any]:
            reader = storage.blocking_reader()
            assert reader is not None
            filters = list_filters(PAGE, 0, _email(i), None, False, {})
            data, total = reader.list_customers(filters, limit=PAGE, offset=0)
            return make_page(data, total, PAGE, 0)

        def through_list(i: int) -> Page[Any]:
            return billing.customers.list(limit=PAGE, email=_email(i))

        same = [by_hand(i).data == through_list(i).data for i in range(3)]
        expect(all(same) and by_hand(0).total == 1, "blocking list: the two reads differ")
        for _ in range(rounds):
            samples["by_hand_blocking"].append(_timed(by_hand, n))
            samples["list_blocking"].append(_timed(through_list, n))
    return samples


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.list_pages")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--backends", default="memory,sqlite")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as workdir:
        for backend in args.backends.split(","):
            if backend not in ("memory", "sqlite"):
                parser.error(f"unknown backend {backend!r}: memory or sqlite")
            url = f"sqlite:///{Path(workdir) / 'list.db'}" if backend == "sqlite" else None
            report[backend] = run(url or "memory://", args.n, args.rounds)
    if args.json:
        json.dump(report, sys.stdout)
        print()
    else:
        for backend, result in report.items():
            print(backend, json.dumps(result))
    return report


if __name__ == "__main__":
    main()
