"""``uv run python -m bench [--n 5000] [--backends memory,sqlite,postgres] [--postgres-url URL]
[--scale] [--memory-ops] [--json]``: qzpay against the raw driver, in the same run."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.postgres_scratch import PostgresScratch, analyze, default_admin_url
from bench.raw_sqlite import run_raw_sqlite
from bench.stats import Samples, peak_rss_mb
from bench.workload import PHASES, run_async, run_sync
from qzpay import Billing, SyncBilling

WARM_UP = 200
BACKENDS = ("memory", "sqlite", "postgres")


class Stores:
    """Fresh, empty stores of one backend kind."""

    def __init__(self, backend: str, workdir: Path, postgres: PostgresScratch | None) -> None:
        self.backend = backend
        self.workdir = workdir
        self.postgres = postgres
        self._count = 0

    def fresh_path(self) -> Path:
        self._count += 1
        return self.workdir / f"{self.backend}{self._count}.db"

    def fresh(self) -> str:
        if self.backend == "memory":
            return "memory://"
        if self.backend == "sqlite":
            return f"sqlite:///{self.fresh_path()}"
        assert self.postgres is not None
        asyncio.run(self.postgres.reset())
        return self.postgres.url


def _settle(url: str) -> Callable[[], None] | None:
    """PostgreSQL: ANALYZE after the set-up, as the raw baseline does (autovacuum would)."""
    if not url.startswith("postgresql"):
        return None
    return lambda: asyncio.run(analyze(url))


def _async_run(url: str, n: int) -> dict[str, Samples]:
    async def go() -> dict[str, Samples]:
        async with Billing(storage=url) as billing:
            return await run_async(billing, n, _settle(url))

    return asyncio.run(go())


def _sync_run(url: str, n: int) -> dict[str, Samples]:
    with SyncBilling(storage=url) as billing:
        return run_sync(billing, n, _settle(url))


def _raw_run(stores: Stores, n: int) -> dict[str, Samples | None]:
    if stores.backend == "sqlite":
        return run_raw_sqlite(stores.fresh_path(), n)
    if stores.backend == "postgres":
        from bench.raw_postgres import run_raw_postgres

        assert stores.postgres is not None
        asyncio.run(stores.postgres.reset())
        return asyncio.run(run_raw_postgres(stores.postgres.url, n))
    return dict.fromkeys(PHASES)


def _warm_then_measure(
    run: Callable[[str, int], dict[str, Samples]], stores: Stores, n: int
) -> dict[str, Samples]:
    run(stores.fresh(), min(WARM_UP, n))
    return run(stores.fresh(), n)


def _figures(samples: Samples) -> dict[str, float]:
    return {
        "ops_per_s": round(samples.ops_per_s, 1),
        "p50_us": round(samples.percentile_us(0.5), 1),
        "p99_us": round(samples.percentile_us(0.99), 1),
    }


def bench_backend(stores: Stores, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    measured = _warm_then_measure(_async_run, stores, n)
    blocking = _warm_then_measure(_sync_run, stores, n)
    _raw_run(stores, min(WARM_UP, n))
    raw = _raw_run(stores, n)
    async_report: dict[str, Any] = {}
    sync_report: dict[str, Any] = {}
    for phase in PHASES:
        ours = measured[phase]
        baseline = raw.get(phase)
        row: dict[str, Any] = _figures(ours)
        row["raw_ops_per_s"] = round(baseline.ops_per_s, 1) if baseline else None
        row["ratio"] = round(ours.ops_per_s / baseline.ops_per_s, 3) if baseline else None
        async_report[phase] = row
        sync_row: dict[str, Any] = _figures(blocking[phase])
        sync_row["async_ops_per_s"] = row["ops_per_s"]
        sync_row["ratio"] = round(blocking[phase].ops_per_s / ours.ops_per_s, 3)
        sync_report[phase] = sync_row
    return async_report, sync_report


def print_tables(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for backend, phases in report.items():
        if backend in ("sync", "scale", "peak_rss_mb", "n", "memory_ops"):
            continue
        table = Table(title=f"{backend}: Billing (async) vs raw driver, N={report['n']}")
        for column in ("phase", "ops/s", "raw ops/s", "ratio", "p50 µs", "p99 µs"):
            table.add_column(column, justify="right")
        for phase, row in phases.items():
            table.add_row(
                phase,
                f"{row['ops_per_s']:,.0f}",
                "-" if row["raw_ops_per_s"] is None else f"{row['raw_ops_per_s']:,.0f}",
                "-" if row["ratio"] is None else f"{row['ratio']:.2f}",
                f"{row['p50_us']:,.0f}",
                f"{row['p99_us']:,.0f}",
            )
        console.print(table)
        sync = report["sync"][backend]
        table = Table(title=f"{backend}: SyncBilling vs Billing")
        for column in ("phase", "sync ops/s", "async ops/s", "ratio", "p50 µs", "p99 µs"):
            table.add_column(column, justify="right")
        for phase, row in sync.items():
            table.add_row(
                phase,
                f"{row['ops_per_s']:,.0f}",
                f"{row['async_ops_per_s']:,.0f}",
                f"{row['ratio']:.2f}",
                f"{row['p50_us']:,.0f}",
                f"{row['p99_us']:,.0f}",
            )
        console.print(table)
    if "scale" in report:
        console.print_json(json.dumps(report["scale"]))
    if "memory_ops" in report:
        from bench.memory_ops import print_table

        print_table(report["memory_ops"], report["n"])
    console.print(f"peak RSS: {report['peak_rss_mb']:.0f} MB")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--postgres-url", default=None, help="admin URL for a scratch database")
    parser.add_argument("--scale", action="store_true", help="also run the 10k/100k/1M section")
    parser.add_argument("--scale-sizes", default="10000,100000,1000000")
    parser.add_argument(
        "--memory-ops",
        action="store_true",
        help="also run the memory backend's ops/s section (bench.memory_ops, issue 16)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - set(BACKENDS)
    if unknown or args.n < 1:
        parser.error(f"unknown backend(s) {sorted(unknown)}" if unknown else "--n must be >= 1")

    report: dict[str, Any] = {"n": args.n, "sync": {}}
    postgres: PostgresScratch | None = None
    if "postgres" in backends or args.scale:
        postgres = PostgresScratch(args.postgres_url or default_admin_url())
        asyncio.run(postgres.create())
    try:
        with tempfile.TemporaryDirectory(prefix="qzpay-bench-") as workdir:
            for backend in backends:
                stores = Stores(backend, Path(workdir), postgres)
                report[backend], report["sync"][backend] = bench_backend(stores, args.n)
            if args.scale:
                from bench.scale import run_scale

                sizes = [int(s) for s in args.scale_sizes.split(",")]
                report["scale"] = run_scale(
                    [b for b in backends if b != "memory"], sizes, Path(workdir), postgres
                )
    finally:
        if postgres is not None:
            asyncio.run(postgres.drop())
    if args.memory_ops:
        from bench.memory_ops import run as run_memory_ops

        report["memory_ops"] = run_memory_ops(args.n, rounds=1)
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        print_tables(report)
    return report


if __name__ == "__main__":
    main()
