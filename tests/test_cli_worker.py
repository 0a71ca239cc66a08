"""``qzpay worker``: one pass through Typer's runner, and as real processes on one SQLite file
(stopped by signals; two at once apply each due transition once)."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from qzpay.billing import SyncBilling, SyncPrices, SyncSubscriptions
from qzpay.cli import app
from qzpay.config import ENVIRONMENT_VARIABLES
from qzpay.engine.pending import SyncReport
from qzpay.subscriptions import local as local_subscriptions
from qzpay.subscriptions.models import Subscription

AGO = timedelta(days=1, hours=12)  # a daily period that started then ended half a day ago


@pytest.fixture(autouse=True)
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    database = f"sqlite:///{tmp_path / 'worker.db'}"
    monkeypatch.setenv("QZPAY_DATABASE_URL", database)
    return database


def due_subscriptions(url: str, monkeypatch: pytest.MonkeyPatch, count: int) -> list[Subscription]:
    """``count`` free daily subscriptions, made as if ``AGO``: each is due to renew once."""
    with SyncBilling(url) as billing:
        plan = billing.plans.create("free", "Free", entitlements=["api"])
        price = billing.prices.create(plan.id, currency="usd", unit_amount=0, interval="day")
        customer = billing.customers.create(email="a@example.com")
        then = datetime.now(UTC) - AGO
        with monkeypatch.context() as clock:
            clock.setattr(local_subscriptions, "utcnow", lambda: then)
            made = [billing.subscriptions.create(customer.id, price.id) for _ in range(count)]
    assert all(sub.current_period_end < datetime.now(UTC) for sub in made)
    return made


def renewed(url: str, sub: Subscription) -> bool:
    with SyncBilling(url) as billing:
        stored = billing.subscriptions.get(sub.id)
    assert stored is not None
    return stored.current_period_start == sub.current_period_end


def rollovers(url: str) -> dict[str, int]:
    """``subscription.updated`` events per subscription id, from the durable log."""
    counts: dict[str, int] = {}
    with SyncBilling(url) as billing:
        for event in billing.events.list(limit=1000):
            if event.type == "subscription.updated":
                counts[event.data.id] = counts.get(event.data.id, 0) + 1
    return counts


def qzpay(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


class TestInProcess:
    def test_a_pass_reports_its_counts(
        self, url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        (sub,) = due_subscriptions(url, monkeypatch, 1)
        caplog.set_level(logging.INFO, logger="qzpay.worker")
        result = qzpay("worker", "--once", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        zero = {"completed": 0, "failed": 0, "remaining": 0}
        assert report["sync"] == dict.fromkeys(
            ("customers", "plans", "prices", "subscriptions"), zero
        )
        assert (report["pass"], report["due"], report["errors"]) == (
            1,
            {"renewed": 1, "canceled": 0},
            {},
        )
        assert renewed(url, sub)
        lines = [r.getMessage() for r in caplog.records if r.name == "qzpay.worker"]
        assert any("pass 1 done" in line and "renewed=1 canceled=0" in line for line in lines)

        again = qzpay("worker", "--once")
        assert (again.exit_code, again.stdout) == (0, "")  # logs only, no --json line
        assert rollovers(url) == {sub.id: 1}

    def test_a_failed_step_is_logged_the_pass_goes_on_and_once_exits_1(
        self, url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        (sub,) = due_subscriptions(url, monkeypatch, 1)

        def broken(self: SyncSubscriptions, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("subscriptions unreachable")

        monkeypatch.setattr(SyncSubscriptions, "sync_pending", broken)
        caplog.set_level(logging.INFO, logger="qzpay.worker")
        result = qzpay("worker", "--once", "--json")
        assert result.exit_code == 1
        report = json.loads(result.stdout)
        assert report["errors"] == {"subscriptions": "RuntimeError: subscriptions unreachable"}
        assert report["sync"]["subscriptions"] is None
        assert report["sync"]["prices"] == {"completed": 0, "failed": 0, "remaining": 0}
        assert report["due"] == {"renewed": 1, "canceled": 0}  # the step after still ran
        assert renewed(url, sub)
        failures = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.name for r in failures] == ["qzpay.worker"]
        assert "subscriptions failed" in failures[0].getMessage()

    def test_a_signal_mid_pass_lets_the_pass_finish_then_exits_0(
        self, url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        (sub,) = due_subscriptions(url, monkeypatch, 1)

        def interrupted(self: SyncPrices, *args: Any, **kwargs: Any) -> SyncReport:
            os.kill(os.getpid(), signal.SIGTERM)  # handled by the worker: it stops after the pass
            return SyncReport(completed=0, failed=0, remaining=0)

        monkeypatch.setattr(SyncPrices, "sync_pending", interrupted)
        caplog.set_level(logging.INFO, logger="qzpay.worker")
        previous = signal.getsignal(signal.SIGTERM)
        result = qzpay("worker", "--interval", "3600", "--json")  # no --once
        assert result.exit_code == 0, result.output
        (report,) = [json.loads(line) for line in result.stdout.splitlines()]
        assert report["errors"] == {}
        assert report["due"] == {"renewed": 1, "canceled": 0}  # the steps after it still ran
        assert renewed(url, sub)
        assert "stopped (SIGTERM)" in [r.getMessage() for r in caplog.records]
        assert signal.getsignal(signal.SIGTERM) is previous  # the handler is put back

    @pytest.mark.parametrize(
        "args",
        [
            ["worker", "--interval", "0"],
            ["worker", "--interval", "86401"],
            ["worker", "--interval", "soon"],
            ["worker", "--bogus"],
            ["worker", "--once", "--database-url", "oracle://db"],
        ],
    )
    def test_usage_errors_are_2(self, url: str, args: list[str]) -> None:
        assert qzpay(*args).exit_code == 2

    def test_an_unusable_database_is_1(self, tmp_path: Path) -> None:
        result = qzpay("worker", "--once", "--database-url", f"sqlite:///{tmp_path}")
        assert result.exit_code == 1
        assert "error:" in result.stderr


# -- as processes ------------------------------------------------------------------------------


class Worker:
    """``python -m qzpay worker ...`` as a process, its stderr read line by line."""

    def __init__(self, url: str, *args: str) -> None:
        env = {**os.environ, "QZPAY_DATABASE_URL": url, "COLUMNS": "200"}
        for name in ENVIRONMENT_VARIABLES:
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qzpay", "worker", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} in:\n{''.join(self.stderr)}"
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                assert self.process.poll() is None, "".join(self.stderr)
                continue
            self.stderr.append(line)
            if text in line:
                return

    def stop(self, signum: int, timeout: float = 10) -> tuple[int, float]:
        """Send ``signum``; the exit code and the seconds the process took to exit."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - sent

    def output(self) -> str:
        """All of stderr (once the process has exited)."""
        self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        while not self.lines.empty():
            self.stderr.append(self.lines.get_nowait())
        return "".join(self.stderr)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def running(url: str, *args: str) -> Iterator[Worker]:
    worker = Worker(url, *args)
    try:
        yield worker
    finally:
        worker.kill()


class TestProcess:
    def test_renews_then_sigterm_exits_0(self, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        (sub,) = due_subscriptions(url, monkeypatch, 1)
        with running(url, "--interval", "1") as worker:
            deadline = time.monotonic() + 30
            while not renewed(url, sub):
                assert worker.process.poll() is None, worker.output()
                assert time.monotonic() < deadline, "the worker renewed nothing"
                time.sleep(0.2)
            worker.wait_for("renewed=1")
            code, seconds = worker.stop(signal.SIGTERM)
            log = worker.output()
        assert code == 0, log
        assert seconds < 5
        assert "worker started: a pass every 1s" in log
        assert "stopped (SIGTERM)" in log
        assert "Traceback" not in log
        assert rollovers(url) == {sub.id: 1}

    def test_a_signal_ends_a_long_wait_at_once(self, url: str) -> None:
        with running(url, "--interval", "3600") as worker:
            worker.wait_for("pass 1 done")
            code, seconds = worker.stop(signal.SIGINT)
            log = worker.output()
        assert code == 0, log
        assert seconds < 5, "the wait between passes did not end on the signal"
        assert "stopped (SIGINT)" in log
        assert "pass 2" not in log

    def test_two_workers_apply_each_due_transition_once(
        self, url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        subs = due_subscriptions(url, monkeypatch, 300)
        with running(url, "--once", "--json") as first, running(url, "--once", "--json") as other:
            reports = []
            for worker in (first, other):
                log = worker.output()
                assert worker.process.returncode == 0, log
                assert worker.process.stdout is not None
                reports.append(json.loads(worker.process.stdout.read()))
        assert sum(report["due"]["renewed"] for report in reports) == len(subs)
        assert rollovers(url) == {sub.id: 1 for sub in subs}
        assert all(renewed(url, sub) for sub in subs)
