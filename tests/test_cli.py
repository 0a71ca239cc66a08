"""The command line: through Typer's runner and as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from qzpay.cli import app, redact


class TestDemo:
    def test_walks_the_whole_page(self) -> None:
        result = CliRunner().invoke(app, ["demo"])
        assert result.exit_code == 0, result.output
        for step in ("Create", "Get it by id", "Link", "List", "Update", "Delete", "event log"):
            assert step in result.output
        for event in ("customer.created", "customer.updated", "customer.deleted"):
            assert event in result.output
        assert "equal to what create returned: True" in result.output
        assert "total=1" in result.output

    def test_runs_as_a_console_script(self) -> None:
        env = {**os.environ, "COLUMNS": "120"}
        result = subprocess.run(
            [sys.executable, "-m", "qzpay", "demo"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "customer.deleted" in result.stdout

    def test_no_arguments_shows_help(self) -> None:
        result = CliRunner().invoke(app, [])
        assert "demo" in result.output


# -- customers, events, db: through the runner ------------------------------------------------


@pytest.fixture
def db_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("QZPAY_DATABASE_URL", url)
    return url


def qzpay(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def qzpay_json(*args: str) -> Any:
    result = qzpay(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class TestCustomers:
    def test_create_get_list_update_delete(self, db_env: str) -> None:
        created = qzpay_json(
            "customers", "create", "--email", "user@example.com", "--name", "John Doe",
            "--phone", "+1 415 555 2671", "--country", "us", "--city", "SF",
            "-m", "userId=usr_123", "--metadata", "plan=enterprise",
        )  # fmt: skip
        assert created["id"].startswith("cus_")
        assert created["phone"] == "+14155552671"
        assert created["address"]["country"] == "US"
        assert created["metadata"] == {"userId": "usr_123", "plan": "enterprise"}
        cid = created["id"]

        assert qzpay_json("customers", "get", cid) == created
        page = qzpay_json("customers", "list", "--email", "USER@example.com")
        assert ([c["id"] for c in page["data"]], page["total"]) == ([cid], 1)
        assert qzpay_json("customers", "list", "-m", "plan=free")["total"] == 0

        updated = qzpay_json(
            "customers", "update", cid, "--clear-name", "-m", "plan=pro",
            "--unset-metadata", "userId", "--clear-address",
        )  # fmt: skip
        assert (updated["name"], updated["address"]) == (None, None)
        assert updated["metadata"] == {"plan": "pro"}

        deleted = qzpay_json("customers", "delete", cid)
        assert deleted["deleted_at"] is not None
        assert qzpay_json("customers", "list")["total"] == 0
        assert qzpay_json("customers", "list", "--include-deleted")["total"] == 1

    def test_human_output_is_tables(self, db_env: str) -> None:
        created = qzpay_json("customers", "create", "--email", "a@example.com", "--name", "[red]x")
        shown = qzpay("customers", "get", created["id"])
        assert shown.exit_code == 0
        assert created["id"] in shown.stdout
        assert "[red]x" in shown.stdout  # user data is never read as markup
        listed = qzpay("customers", "list")
        assert "a@example.com" in listed.stdout
        assert "1-1 of 1" in listed.stdout

    def test_list_all_walks_every_page(self, db_env: str) -> None:
        for i in range(12):
            qzpay_json("customers", "create", "--email", f"u{i}@example.com")
        assert len(qzpay_json("customers", "list")["data"]) == 10
        everything = qzpay_json("customers", "list", "--all")
        assert (len(everything["data"]), everything["has_more"]) == (12, False)

    def test_get_by_provider_id_not_found(self, db_env: str) -> None:
        result = qzpay("customers", "get", "--provider-id", "cus_stripe_1")
        assert result.exit_code == 1
        assert "no customer is linked" in result.stderr

    def test_events_list(self, db_env: str) -> None:
        created = qzpay_json("customers", "create", "--email", "a@example.com")
        qzpay_json("customers", "update", created["id"], "--name", "N")
        log = qzpay_json("events", "list")
        assert [e["type"] for e in log["data"]] == ["customer.created", "customer.updated"]
        rest = qzpay_json("events", "list", "--after", log["data"][0]["id"], "--limit", "5")
        assert rest["data"] == log["data"][1:]
        assert rest["next_after"] == log["data"][1]["id"]
        assert "customer.updated" in qzpay("events", "list").stdout


class TestExitCodes:
    def test_not_found_is_1_with_a_message_and_no_traceback(self, db_env: str) -> None:
        result = qzpay("customers", "get", "cus_unknown")
        assert result.exit_code == 1
        assert result.stdout == ""
        assert "error: no customer 'cus_unknown'" in result.stderr
        assert "Traceback" not in result.output

    def test_conflict_is_1(self, db_env: str) -> None:
        created = qzpay_json("customers", "create", "--email", "a@example.com")
        qzpay_json("customers", "delete", created["id"])
        result = qzpay("customers", "update", created["id"], "--name", "x", "--json")
        assert result.exit_code == 1
        assert json.loads(result.stderr)["error"]["code"] == "customer_deleted"

    def test_invalid_input_is_2_listing_every_problem(self, db_env: str) -> None:
        result = qzpay("customers", "create", "--email", "nope", "--phone", "12", "--json")
        assert result.exit_code == 2
        assert result.stdout == ""
        error = json.loads(result.stderr)["error"]
        assert error["code"] == "validation_error"
        assert {e["field"] for e in error["errors"]} == {"email", "phone"}
        human = qzpay("customers", "create", "--email", "nope")
        assert human.exit_code == 2
        assert "email:" in human.stderr

    @pytest.mark.parametrize(
        "args",
        [
            ["customers", "create"],  # --email missing
            ["customers", "list", "--limit", "0"],
            ["customers", "list", "--bogus"],
            ["customers", "create", "--email", "a@example.com", "-m", "novalue"],
            ["customers", "get"],
            ["customers", "update", "cus_1", "--name", "x", "--clear-name"],
            ["customers", "list", "--database-url", "oracle://db"],
            ["serve", "--no-auth", "--host", "0.0.0.0"],
        ],
    )
    def test_usage_errors_are_2(self, db_env: str, args: list[str]) -> None:
        assert qzpay(*args).exit_code == 2

    def test_serve_with_an_unusable_database_is_1(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("QZPAY_API_KEY", "cli-key-0123456789abcdef")
        result = qzpay("serve", "--port", "1", "--database-url", f"sqlite:///{tmp_path}")
        assert result.exit_code == 1
        assert result.stderr.startswith("error: ")
        assert "Traceback" not in result.output

    def test_serve_on_a_busy_port_is_1(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("QZPAY_API_KEY", "cli-key-0123456789abcdef")
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = str(busy.getsockname()[1])
            url = f"sqlite:///{tmp_path / 'b.db'}"
            result = qzpay(
                "serve", "--port", port, "--database-url", url, "--log-level", "critical"
            )
        assert result.exit_code == 1
        assert "the server stopped" in result.stderr

    def test_debug_shows_the_traceback(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path}"  # a directory, not a database file
        quiet = qzpay("customers", "list", "--database-url", url)
        assert quiet.exit_code == 1
        assert "Traceback" not in quiet.output
        loud = qzpay("customers", "list", "--database-url", url, "--debug")
        assert loud.exit_code == 1
        assert "Traceback" in loud.stderr


class TestDatabase:
    def test_db_upgrade(self, db_env: str) -> None:
        first = qzpay_json("db", "upgrade")
        assert first["schema_version"] >= 1
        assert qzpay_json("db", "upgrade") == first  # idempotent
        assert "schema at version" in qzpay("db", "upgrade").stdout

    def test_passwords_are_redacted(self) -> None:
        assert (
            redact("postgresql://app:s3cret@db:5432/qzpay") == "postgresql://app:***@db:5432/qzpay"
        )
        assert redact("sqlite:///billing.db") == "sqlite:///billing.db"


# -- as a subprocess -----------------------------------------------------------------------------


def run_qzpay(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qzpay", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
        check=False,
    )


class TestSubprocess:
    def test_json_output_and_exit_codes(self, tmp_path: Path) -> None:
        env = {"QZPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"}
        created = run_qzpay("customers", "create", "--email", "a@example.com", "--json", env=env)
        assert created.returncode == 0, created.stderr
        customer = json.loads(created.stdout)
        listed = run_qzpay("customers", "list", "--json", env=env)
        assert [c["id"] for c in json.loads(listed.stdout)["data"]] == [customer["id"]]
        missing = run_qzpay("customers", "get", "cus_unknown", env=env)
        assert (missing.returncode, missing.stdout) == (1, "")
        assert "Traceback" not in missing.stderr
        assert run_qzpay("customers", "create", "--email", "bad", env=env).returncode == 2
        assert run_qzpay("customers", "frobnicate", env=env).returncode == 2

    def test_serve_refuses_to_start_without_a_key(self, tmp_path: Path) -> None:
        env = {"QZPAY_API_KEY": "", "QZPAY_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
        result = run_qzpay("serve", "--port", "1", env=env)
        assert result.returncode == 1
        assert "QZPAY_API_KEY is not set" in result.stderr

    def test_serve_runs_until_interrupted_and_never_prints_the_key(self, tmp_path: Path) -> None:
        key = "cli-serve-key-0123456789abcdef"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {
            **os.environ,
            "QZPAY_API_KEY": key,
            "QZPAY_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "qzpay", "serve", "--port", str(port), "--log-level", "info"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.1)
            headers = {"Authorization": f"Bearer {key}"}
            created = httpx.post(
                f"{base}/customers", json={"email": "a@example.com"}, headers=headers
            )
            assert created.status_code == 201
            assert httpx.get(f"{base}/customers").status_code == 401
        finally:
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        assert key not in stdout + stderr
        assert "API key required" in stderr
