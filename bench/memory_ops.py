"""The in-memory backend's figures (issue 16): ops/s through ``Billing`` (async) at N customers.

``uv run python -m bench.memory_ops [--n 5000] [--rounds 5] [--baseline FILE] [--json]``, or
``uv run python -m bench --backends memory --memory-ops`` (one round).

Each round builds a fresh ``memory://`` store: create N one at a time (timed), link each to a
provider id (untimed), then time get / get_by_external_id for every customer, pages of 20 at
offsets spread over the whole list (the deepest included), pages filtered by email and by one
metadata pair, and update N. Every phase checks its results. The machine is shared, so each
phase reports the median and the best of the rounds; ``--baseline`` takes turns with another
implementation (an earlier ``memory.py``) so both see the same noise.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.stats import Samples
from bench.workload import (
    create_args,
    email_of,
    expect,
    measure_async,
    provider_id_of,
)
from qzpay import Billing, Customer, Page

PHASES = (
    "create",
    "get",
    "get_by_external_id",
    "list_offset",
    "list_email",
    "list_metadata",
    "update",
)
LIST_CALLS = 2000
PAGE = 20
TARGETS = {  # ops/s at N = 5,000 (issue 16)
    "get": 20_000.0,
    "get_by_external_id": 20_000.0,
    "list_offset": 5_000.0,
    "list_email": 20_000.0,
    "list_metadata": 20_000.0,
}


def _offset(i: int, n: int) -> int:
    """Offsets that sweep the whole list, deepest page included, in a scattered order."""
    pages = max(1, (n + PAGE - 1) // PAGE)
    return (i * 7919 % pages) * PAGE


def _page_ids(page: Page[Customer]) -> tuple[list[str], int]:
    return [c.id for c in page.data], page.total


async def one_round(n: int, storage: Callable[[], Any] = lambda: "memory://") -> dict[str, Samples]:
    """One fresh store made by ``storage``. Results are checked, and only their ids are kept
    until then, so the figures are not those of a collector walking thousands of kept pages."""
    out: dict[str, Samples] = {}
    async with Billing(storage=storage()) as billing:
        customers = billing.customers

        async def create(i: int) -> str:
            return (await customers.create(**create_args(i))).id

        out["create"], ids = await measure_async(n, create)
        expect(len(set(ids)) == n, "create: duplicate ids")
        for i, customer_id in enumerate(ids):
            await customers.link(
                customer_id, provider="stripe", provider_customer_id=provider_id_of(i)
            )

        async def get(i: int) -> str | None:
            found = await customers.get(ids[i])
            return None if found is None else found.id

        async def get_by_external_id(i: int) -> str | None:
            found = await customers.get_by_external_id(provider_id_of(i))
            return None if found is None else found.id

        out["get"], got = await measure_async(n, get)
        expect(got == ids, "get: wrong customers")
        out["get_by_external_id"], got = await measure_async(n, get_by_external_id)
        expect(got == ids, "get_by_external_id: wrong customers")

        async def list_offset(i: int) -> tuple[list[str], int]:
            return _page_ids(await customers.list(limit=PAGE, offset=_offset(i, n)))

        async def list_email(i: int) -> tuple[list[str], int]:
            return _page_ids(await customers.list(limit=PAGE, email=email_of(i * 7 % n).upper()))

        async def list_metadata(i: int) -> tuple[list[str], int]:
            return _page_ids(await customers.list(limit=PAGE, metadata={"seq": str(i * 7 % n)}))

        newest_first = ids[::-1]
        out["list_offset"], pages = await measure_async(LIST_CALLS, list_offset)
        for i, (page_ids, total) in enumerate(pages):
            start = _offset(i, n)
            expect(total == n, "list_offset: wrong total")
            expect(page_ids == newest_first[start : start + PAGE], f"list_offset: at {start}")
        out["list_email"], pages = await measure_async(LIST_CALLS, list_email)
        expect(all(p == ([ids[i * 7 % n]], 1) for i, p in enumerate(pages)), "list_email: wrong")
        out["list_metadata"], pages = await measure_async(LIST_CALLS, list_metadata)
        expect(all(p == ([ids[i * 7 % n]], 1) for i, p in enumerate(pages)), "list_metadata")

        async def update(i: int) -> str | None:
            changed = await customers.update(
                ids[i], name=f"User {i} v2", metadata={"plan": "enterprise"}
            )
            return changed.name

        out["update"], names = await measure_async(n, update)
        expect(names == [f"User {i} v2" for i in range(n)], "update: not applied")
        page = await customers.list(limit=PAGE, metadata={"plan": "enterprise"})
        expect(page.total == n, "update: metadata index not updated")
        expect((await customers.list(metadata={"plan": "pro"})).total == 0, "update: stale pair")
    return out


def _summary(measured: list[dict[str, Samples]]) -> dict[str, dict[str, float]]:
    report: dict[str, dict[str, float]] = {}
    for phase in PHASES:
        rates = [m[phase].ops_per_s for m in measured]
        p50s = [m[phase].percentile_us(0.5) for m in measured]
        p99s = [m[phase].percentile_us(0.99) for m in measured]
        report[phase] = {
            "ops_per_s": round(statistics.median(rates), 1),
            "best_ops_per_s": round(max(rates), 1),
            "p50_us": round(statistics.median(p50s), 1),
            "p99_us": round(statistics.median(p99s), 1),
        }
    return report


def measure(
    n: int, rounds: int, stores: dict[str, Callable[[], Any]]
) -> dict[str, dict[str, dict[str, float]]]:
    """Per implementation and phase: median and best ops/s over ``rounds`` fresh stores (after
    a small warm-up), the implementations taking turns so that they share the machine's noise."""
    for make in stores.values():
        asyncio.run(one_round(min(200, n), make))
    measured: dict[str, list[dict[str, Samples]]] = {name: [] for name in stores}
    for _ in range(rounds):
        for name, make in stores.items():
            measured[name].append(asyncio.run(one_round(n, make)))
    return {name: _summary(runs) for name, runs in measured.items()}


def run(n: int, rounds: int) -> dict[str, dict[str, float]]:
    return measure(n, rounds, {"memory": lambda: "memory://"})["memory"]


def _baseline(path: Path) -> Callable[[], Any]:
    """``MemoryStorage`` from a file: an earlier version, e.g.
    ``git show REV:src/qzpay/storage/memory.py > /tmp/before.py``."""
    spec = importlib.util.spec_from_file_location("bench_memory_baseline", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MemoryStorage  # type: ignore[no-any-return]


def print_table(
    report: dict[str, dict[str, float]],
    n: int,
    baseline: dict[str, dict[str, float]] | None = None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"memory backend through Billing (async), N={n}")
    columns = ["phase", "median ops/s", "best ops/s", "p50 µs", "p99 µs", "target"]
    if baseline is not None:
        columns[1:1] = ["baseline ops/s", "× baseline"]
    for column in columns:
        table.add_column(column, justify="right")
    for phase, row in report.items():
        target = TARGETS.get(phase)
        cells = [
            phase,
            f"{row['ops_per_s']:,.0f}",
            f"{row['best_ops_per_s']:,.0f}",
            f"{row['p50_us']:,.1f}",
            f"{row['p99_us']:,.1f}",
            "-" if target is None else f"≥ {target:,.0f}",
        ]
        if baseline is not None:
            before = baseline[phase]["ops_per_s"]
            cells[1:1] = [f"{before:,.0f}", f"{row['ops_per_s'] / before:.2f}"]
        table.add_row(*cells)
    Console().print(table)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_ops", description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a file defining another MemoryStorage, measured in turns with the current one",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be >= 1")
    stores: dict[str, Callable[[], Any]] = {"memory": lambda: "memory://"}
    if args.baseline is not None:
        stores["baseline"] = _baseline(args.baseline)
    reports = measure(args.n, args.rounds, stores)
    result: dict[str, Any] = {"n": args.n, "rounds": args.rounds, "memory_ops": reports["memory"]}
    if "baseline" in reports:
        result["baseline"] = reports["baseline"]
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        print_table(reports["memory"], args.n, reports.get("baseline"))
    return result


if __name__ == "__main__":
    main()
