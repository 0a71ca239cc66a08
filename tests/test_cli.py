"""The command line: through Typer's runner and as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from typer.testing import CliRunner, Result

from qzpay import Billing
from qzpay.cli import app, redact
from qzpay.config import ENVIRONMENT_VARIABLES, ConfigError, providers_from_env
from qzpay.providers.stripe import StripeProvider
from tests.support.localstripe import API_KEY as STRIPE_KEY
from tests.support.localstripe import LocalStripe, start_localstripe
from tests.support.stripe_fixtures import WEBHOOK_SECRET, unique_email

T = TypeVar("T")
PROVIDER_VARIABLES = ENVIRONMENT_VARIABLES


@pytest.fixture(autouse=True)
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with no payment provider configured (and so never reaches Stripe)."""
    for name in PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


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


def qzpay(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


def qzpay_json(*args: str, env: dict[str, str] | None = None) -> Any:
    result = qzpay(*args, "--json", env=env)
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


# -- payment providers: configuration, sync-pending, reconcile ------------------------------------


@pytest.fixture
def stripe_env(db_env: str, localstripe_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Stripe (localstripe) configured through the environment; returns the database URL."""
    monkeypatch.setenv("STRIPE_API_KEY", STRIPE_KEY)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("STRIPE_API_BASE", localstripe_url)
    return db_env


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A 127.0.0.1 address where nothing listens (the port stays bound, so nobody can)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def at_stripe(
    url: str,
    api_base: str,
    work: Callable[[Billing, StripeProvider], Awaitable[T]],
    **options: Any,
) -> T:
    """Run ``work`` with a Billing on ``url`` synced to Stripe at ``api_base``; the provider is
    also passed to make changes at Stripe directly, behind qzpay's back."""

    async def run() -> T:
        provider = StripeProvider(STRIPE_KEY, api_base=api_base)
        async with Billing(url, provider=provider, **options) as billing:  # closes provider
            return await work(billing, provider)

    return asyncio.run(run())


class TestProviderConfig:
    def test_none_configured(self) -> None:
        config = providers_from_env({})
        assert (config.providers, config.sync_errors, config.warnings) == ([], "raise", [])

    def test_stripe_from_its_key(self) -> None:
        config = providers_from_env(
            {"STRIPE_API_KEY": "sk_test_secret_value", "QZPAY_PROVIDER_SYNC_ERRORS": "log"}
        )
        try:
            assert (config.names, config.sync_errors) == (["stripe"], "log")
            assert config.warnings == [
                "STRIPE_WEBHOOK_SECRET is not set: Stripe webhooks cannot be verified"
            ]
        finally:
            asyncio.run(config.providers[0].close())

    @pytest.mark.parametrize(
        ("environ", "names"),
        [
            ({"STRIPE_WEBHOOK_SECRET": "whsec_value"}, "STRIPE_WEBHOOK_SECRET.*STRIPE_API_KEY"),
            ({"STRIPE_API_BASE": "http://127.0.0.1:1"}, "STRIPE_API_BASE.*STRIPE_API_KEY"),
            ({"STRIPE_API_KEY": "sk_value", "STRIPE_API_BASE": "ftp://value"}, "STRIPE_API_BASE"),
            ({"QZPAY_PROVIDER_SYNC_ERRORS": "sometimes"}, "QZPAY_PROVIDER_SYNC_ERRORS"),
        ],
    )
    def test_settings_set_wrong_are_refused_naming_only_the_variable(
        self, environ: dict[str, str], names: str
    ) -> None:
        with pytest.raises(ConfigError, match=names) as failure:
            providers_from_env(environ)
        assert "value" not in str(failure.value)

    def test_both_providers_in_order(self) -> None:
        config = providers_from_env(
            {
                "MERCADOPAGO_ACCESS_TOKEN": "TEST-token-value",
                "MERCADOPAGO_WEBHOOK_SECRET": "mp-secret-value",
                "MERCADOPAGO_API_BASE": "http://127.0.0.1:9",
                "STRIPE_API_KEY": "sk_test_secret_value",
                "STRIPE_WEBHOOK_SECRET": "whsec_value",
            }
        )
        try:
            assert config.names == ["stripe", "mercadopago"]
            assert config.warnings == []
        finally:
            for provider in config.providers:
                asyncio.run(provider.close())

    def test_mercadopago_settings_without_its_token(self) -> None:
        with pytest.raises(ConfigError, match=r"MERCADOPAGO_API_BASE.*MERCADOPAGO_ACCESS_TOKEN"):
            providers_from_env({"MERCADOPAGO_API_BASE": "http://127.0.0.1:9"})

    def test_empty_means_unset(self) -> None:
        assert providers_from_env({"STRIPE_API_KEY": "", "STRIPE_API_BASE": " "}).providers == []


class TestProviderUsageErrors:
    @pytest.mark.parametrize(
        ("args", "env", "message", "code"),
        [
            (
                ["customers", "sync-pending"],
                {},
                "no payment provider is configured: set STRIPE_API_KEY or MERCADOPAGO_ACCESS_TOKEN",
                "provider_not_configured",
            ),
            (
                ["customers", "reconcile", "stripe"],
                {},
                "provider 'stripe' is not configured (configured: none): set STRIPE_API_KEY",
                "provider_not_configured",
            ),
            (
                ["customers", "reconcile", "paypal"],
                {"STRIPE_API_KEY": STRIPE_KEY},
                "unknown provider 'paypal': the environment can configure stripe, mercadopago",
                "provider_not_configured",
            ),
            (
                ["customers", "create", "--email", "a@example.com"],
                {"STRIPE_WEBHOOK_SECRET": "whsec_never_printed"},
                "STRIPE_WEBHOOK_SECRET is set but STRIPE_API_KEY is not",
                "configuration_error",
            ),
            (
                ["customers", "sync-pending"],
                {"STRIPE_API_KEY": STRIPE_KEY, "QZPAY_PROVIDER_SYNC_ERRORS": "maybe"},
                "QZPAY_PROVIDER_SYNC_ERRORS must be 'raise' or 'log', not 'maybe'",
                "configuration_error",
            ),
        ],
    )
    def test_are_2_with_a_clear_message(
        self, db_env: str, args: list[str], env: dict[str, str], message: str, code: str
    ) -> None:
        human = qzpay(*args, env=env)
        assert (human.exit_code, human.stdout) == (2, "")
        assert human.stderr == f"error: {message}\n"
        as_json = qzpay(*args, "--json", env=env)
        assert as_json.exit_code == 2
        assert json.loads(as_json.stderr) == {"error": {"message": message, "code": code}}

    def test_check_and_fix_exclude_each_other(self, stripe_env: str) -> None:
        result = qzpay("customers", "reconcile", "stripe", "--fix", "--check")
        assert result.exit_code == 2
        assert "not with --fix" in result.stderr


class TestSyncPending:
    def test_finishes_what_log_mode_left_pending(
        self, stripe_env: str, localstripe_url: str, dead_url: str
    ) -> None:
        down = {"STRIPE_API_BASE": dead_url}
        # Stripe is down: in "log" mode the create commits locally and stays pending.
        created = qzpay_json(
            "customers", "create", "--email", unique_email("pending"),
            env={**down, "QZPAY_PROVIDER_SYNC_ERRORS": "log"},
        )  # fmt: skip
        assert created["provider_customer_ids"] == {}

        still_down = qzpay("customers", "sync-pending", "--json", env=down)
        assert still_down.exit_code == 1
        assert json.loads(still_down.stdout) == {"completed": 0, "failed": 1, "remaining": 1}
        assert json.loads(still_down.stderr) == {  # nothing else on stderr with --json
            "error": {
                "message": "1 pending sync(s) failed again and stay pending",
                "code": "sync_failed",
            }
        }

        back = qzpay("customers", "sync-pending", "--limit", "10")
        assert back.exit_code == 0, back.output
        assert re.search(r"completed\s+1\n", back.stdout)
        assert re.search(r"remaining\s+0\n", back.stdout)
        linked = qzpay_json("customers", "get", created["id"])["provider_customer_ids"]["stripe"]
        found = at_stripe(
            stripe_env, localstripe_url, lambda _, stripe: stripe.customers.retrieve(linked)
        )
        assert found is not None
        assert found.qzpay_customer_id == created["id"]
        assert qzpay_json("customers", "sync-pending") == {
            "completed": 0,
            "failed": 0,
            "remaining": 0,
        }

    def test_create_with_stripe_configured_creates_there_too(self, stripe_env: str) -> None:
        created = qzpay_json("customers", "create", "--email", unique_email("cli"))
        assert created["provider_customer_ids"]["stripe"].startswith("cus_")


class TestReconcile:
    def test_reports_drift_then_fix_repairs_it(self, stripe_env: str, localstripe_url: str) -> None:
        async def setup(billing: Billing, stripe: StripeProvider) -> tuple[str, str, str]:
            fine = await billing.customers.create(email=unique_email("fine"), name="Fine")
            drifted = await billing.customers.create(email=unique_email("drift"), name="Local")
            pcid = drifted.provider_customer_ids["stripe"]
            edited = drifted.model_copy(update={"name": "Edited at Stripe"})
            await stripe.customers.update(pcid, drifted, edited, idempotency_key=pcid + "-cli")
            return fine.id, drifted.id, pcid

        fine, drifted, pcid = at_stripe(stripe_env, localstripe_url, setup)

        report = qzpay_json("customers", "reconcile", "stripe")
        assert report["local_customers"] == 2  # this test's own database
        assert report["provider_customers"] >= 2  # localstripe holds every test's customers
        assert report["in_sync"] is False
        assert [d for d in report["drift"] if d["customer_id"] in (fine, drifted)] == [
            {
                "customer_id": drifted,
                "provider_customer_id": pcid,
                "fields": {"name": {"local": "Local", "provider": "Edited at Stripe"}},
            }
        ]
        listed = [report[k] for k in ("unlinked", "missing_at_provider", "pending")]
        assert not {fine, drifted} & {cid for ids in listed for cid in ids}
        assert report["fixed"] == []

        human = qzpay("customers", "reconcile", "stripe", "--check")
        assert human.exit_code == 3
        assert re.search(rf"fields differ .*{drifted} \(name\)", human.stdout)
        assert "Edited at Stripe" not in human.stdout  # values only in --json
        assert "not in sync" in human.stdout
        assert STRIPE_KEY not in human.output

        fixed = qzpay_json("customers", "reconcile", "stripe", "--fix")
        assert f"pushed name of {drifted} to stripe" in fixed["fixed"]
        after = qzpay_json("customers", "reconcile", "stripe")
        assert not [d for d in after["drift"] if d["customer_id"] in (fine, drifted)]
        remote = at_stripe(stripe_env, localstripe_url, lambda _, s: s.customers.retrieve(pcid))
        assert remote is not None
        assert remote.name == "Local"  # qzpay's value won

    def test_check_is_0_in_sync_with_a_progress_bar_on_a_terminal(
        self, db_env: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        private: LocalStripe = start_localstripe()  # an empty store: an exact report
        try:

            async def setup(billing: Billing, _: StripeProvider) -> None:
                for label in ("a", "b", "c"):
                    await billing.customers.create(email=unique_email(label))

            at_stripe(db_env, private.url, setup)
            monkeypatch.setenv("STRIPE_API_KEY", STRIPE_KEY)
            monkeypatch.setenv("STRIPE_API_BASE", private.url)
            terminal = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
            result = qzpay("customers", "reconcile", "stripe", "--check", "--json", env=terminal)
            assert result.exit_code == 0, result.output
            report = json.loads(result.stdout)
            assert (report["in_sync"], report["local_customers"], report["provider_customers"]) == (
                True,
                3,
                3,
            )
            assert "3/3" in result.stderr  # the bar, driven by on_progress
            human = qzpay("customers", "reconcile", "stripe", "--check")
            assert human.exit_code == 0
            assert human.stdout.rstrip().endswith("in sync")
            assert human.stderr == ""  # no terminal: no bar
        finally:
            private.stop()

    def test_an_unreachable_provider_is_1(self, stripe_env: str, dead_url: str) -> None:
        result = qzpay("customers", "reconcile", "stripe", env={"STRIPE_API_BASE": dead_url})
        assert (result.exit_code, result.stdout) == (1, "")
        assert result.stderr.startswith("error: stripe list_customers failed: network error")
        assert "Traceback" not in result.output
        as_json = qzpay(
            "customers", "reconcile", "stripe", "--json", env={"STRIPE_API_BASE": dead_url}
        )
        error = json.loads(as_json.stderr)["error"]
        assert (error["code"], error["provider"], error["operation"]) == (
            "provider_sync_failed",
            "stripe",
            "list_customers",
        )


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

    def test_sync_pending_json(self, tmp_path: Path, localstripe_url: str, dead_url: str) -> None:
        url = f"sqlite:///{tmp_path / 'sp.db'}"

        async def leave_pending(billing: Billing, _: StripeProvider) -> str:
            return (await billing.customers.create(email=unique_email("sub"))).id

        pending = at_stripe(url, dead_url, leave_pending, provider_sync_errors="log")
        env = {
            "QZPAY_DATABASE_URL": url,
            "STRIPE_API_KEY": STRIPE_KEY,
            "STRIPE_API_BASE": localstripe_url,
        }
        result = run_qzpay("customers", "sync-pending", "--json", env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"completed": 1, "failed": 0, "remaining": 0}
        assert STRIPE_KEY not in result.stdout + result.stderr
        shown = json.loads(run_qzpay("customers", "get", pending, "--json", env=env).stdout)
        assert "stripe" in shown["provider_customer_ids"]

    def test_serve_refuses_to_start_without_a_key(self, tmp_path: Path) -> None:
        env = {"QZPAY_API_KEY": "", "QZPAY_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
        result = run_qzpay("serve", "--port", "1", env=env)
        assert result.returncode == 1
        assert "QZPAY_API_KEY is not set" in result.stderr

    def test_serve_runs_until_interrupted_and_never_prints_the_key(
        self, tmp_path: Path, localstripe_url: str
    ) -> None:
        key = "cli-serve-key-0123456789abcdef"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {
            **os.environ,
            "QZPAY_API_KEY": key,
            "QZPAY_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
            "STRIPE_API_KEY": STRIPE_KEY,  # and no STRIPE_WEBHOOK_SECRET: a warning
            "STRIPE_API_BASE": localstripe_url,
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
            assert "stripe" in created.json()["provider_customer_ids"]
            assert httpx.get(f"{base}/customers").status_code == 401
            hook = httpx.post(f"{base}/webhooks/stripe", content=b"{}")
            assert (hook.status_code, hook.json()["code"]) == (500, "configuration_error")
        finally:
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        assert key not in stdout + stderr
        assert STRIPE_KEY not in stdout + stderr
        assert "API key required" in stderr
        assert "providers: stripe;" in stderr
        assert "warning: STRIPE_WEBHOOK_SECRET is not set" in stderr
