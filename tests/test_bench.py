"""A tiny run of the benchmark harness, so it never rots (speed is not asserted here)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.__main__ import main
from bench.workload import PHASES


def test_tiny_run_reports_every_phase(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--n", "25", "--backends", "memory,sqlite", "--json"])
    report = json.loads(capsys.readouterr().out)
    for backend in ("memory", "sqlite"):
        assert set(report[backend]) == set(PHASES)
        assert set(report["sync"][backend]) == set(PHASES)
        for row in report[backend].values():
            assert row["ops_per_s"] > 0
            assert row["p99_us"] >= row["p50_us"] > 0
    assert report["memory"]["get"]["ratio"] is None
    assert report["sqlite"]["get"]["raw_ops_per_s"] > 0
    assert report["sqlite"]["get"]["ratio"] > 0
    assert report["sqlite"]["create_concurrent"]["raw_ops_per_s"] is None
    assert (
        report["sync"]["sqlite"]["get"]["async_ops_per_s"] == report["sqlite"]["get"]["ops_per_s"]
    )
    assert report["peak_rss_mb"] > 0


def test_rejects_unknown_backend() -> None:
    with pytest.raises(SystemExit):
        main(["--backends", "oracle"])


def test_tiny_memory_ops_run_checks_every_phase() -> None:
    """bench/memory_ops.py verifies each phase's results itself; a tiny run keeps it working."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "bench.memory_ops", "--n", "40", "--rounds", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    phases = json.loads(done.stdout)["memory_ops"]
    assert set(phases) == {
        "create",
        "get",
        "get_by_external_id",
        "list_offset",
        "list_email",
        "list_metadata",
        "update",
    }
    assert all(row["ops_per_s"] > 0 for row in phases.values())


def test_tiny_entitlements_run_compares_with_the_raw_query(postgres_url: str) -> None:
    """bench/entitlements.py checks both sides give the same answers; a tiny run keeps it
    working (its scratch database is its own)."""
    from bench import entitlements

    report = entitlements.main(["--sizes", "40,80", "--n", "30", "--rounds", "1", "--json"])
    assert set(report) == {"40", "80"}
    for row in report.values():
        assert row["ops_per_s"] > 0
        assert row["raw_ops_per_s"] > 0
        assert row["flatness"] > 0


def _scratch_bench(module: str, *args: str) -> Any:
    """Run a PostgreSQL bench module in its own process; its JSON report. It makes its own
    scratch database on the server the test database is on."""
    import subprocess
    import sys

    from tests.conftest import ADMIN_URL

    command = [sys.executable, "-m", module, *args, "--postgres-url", ADMIN_URL]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout)


@pytest.mark.postgres
def test_tiny_postgres_writes_run_checks_every_mode(postgres_url: str) -> None:
    """bench/postgres_writes.py spot-checks that every change landed in each mode (the stale
    and alternating modes retry on every update); a tiny run keeps it working."""
    assert postgres_url  # the server is reachable (else the fixture skips, or fails on CI)
    report = _scratch_bench("bench.postgres_writes", "--n", "30", "--repeats", "1")
    assert set(report["modes"]) == {
        "raw",
        "remembered",
        "read_first",
        "locked",
        "stale",
        "alternating",
    }
    for mode in report["ratio_to_raw_median"].values():
        assert all(ratio > 0 for ratio in mode.values())


@pytest.mark.postgres
def test_tiny_record_writes_run_checks_every_mode(postgres_url: str) -> None:
    """bench/record_writes.py spot-checks that every plan update and subscription uncancel
    landed in each mode; a tiny run keeps it working."""
    assert postgres_url
    report = _scratch_bench("bench.record_writes", "--n", "20", "--repeats", "1")
    assert set(report["ops_per_s_median"]) == {"raw", "remembered", "read_first", "locked"}
    for mode in report["ratio_to_raw_median"].values():
        assert set(mode) == {"plan_update", "subscription_uncancel"}
        assert all(ratio > 0 for ratio in mode.values())


def test_tiny_list_pages_run_compares_list_with_the_same_read_by_hand() -> None:
    """bench/list_pages.py checks that both sides return the same page; a tiny run keeps it
    working."""
    from bench import list_pages

    report = list_pages.main(["--n", "20", "--rounds", "1", "--backends", "memory,sqlite"])
    for backend in ("memory", "sqlite"):
        assert set(report[backend]["ratio_min"]) == {"async", "blocking"}
        assert all(value > 0 for value in report[backend]["us_min"].values())
