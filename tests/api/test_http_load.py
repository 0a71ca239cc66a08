"""A tiny run of bench/http_load.py, so it never rots (speed is not asserted here)."""

from __future__ import annotations

import json

import pytest

from bench.http_load import main


def test_tiny_run_loses_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--requests", "60", "--clients", "5", "--backend", "sqlite", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (report["errors"], report["lost"], report["error_samples"]) == (0, 0, [])
    assert report["requests"] == 60
    assert report["created"] == report["listed_total"] == report["created_events"] == 20
    assert {op: row["count"] for op, row in report["operations"].items()} == {
        "create": 20,
        "get": 20,
        "list": 20,
    }
    assert report["requests_per_s"] > 0


def test_rejects_fewer_requests_than_clients() -> None:
    with pytest.raises(SystemExit):
        main(["--requests", "3", "--clients", "5"])
