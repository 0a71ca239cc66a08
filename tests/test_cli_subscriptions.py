"""``qzpay subscriptions``, ``qzpay entitlements`` and ``qzpay limits``: through Typer's runner,
on SQLite, with free subscriptions (no provider configured)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from qzpay.billing import SyncBilling
from qzpay.cli import app
from qzpay.config import ENVIRONMENT_VARIABLES


@pytest.fixture(autouse=True)
def db_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("QZPAY_DATABASE_URL", url)
    return url


def qzpay(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def qzpay_json(*args: str) -> Any:
    result = qzpay(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def error_code(result: Result) -> str:
    code: str = json.loads(result.stderr)["error"]["code"]
    return code


class Setup:
    """A customer; plan ``free`` (api, reports; seats 5) with a free daily price; plan
    ``team`` (api, sso; seats 50) with a free monthly price and a paid one. Made through the
    CLI."""

    def __init__(self) -> None:
        self.customer = qzpay_json("customers", "create", "--email", "a@example.com")["id"]
        free = qzpay_json(
            "plans", "create", "free", "Free", "-e", "reports", "-e", "api",
            "--plan-limit", "seats=5",
        )["id"]  # fmt: skip
        team = qzpay_json(
            "plans", "create", "team", "Team", "-e", "api", "-e", "sso", "--plan-limit", "seats=50"
        )["id"]
        self.free_plan, self.team_plan = free, team
        self.free = self.price(free, 0, "day")
        self.team_free = self.price(team, 0, "month")
        self.paid = self.price(team, 1999, "month")

    @staticmethod
    def price(plan: str, amount: int, interval: str) -> str:
        price: str = qzpay_json(
            "prices", "create", plan, "--currency", "usd", "--unit-amount", str(amount),
            "--interval", interval,
        )["id"]  # fmt: skip
        return price

    def subscribe(self, *options: str) -> dict[str, Any]:
        sub: dict[str, Any] = qzpay_json(
            "subscriptions", "create", self.customer, self.free, *options
        )
        return sub


@pytest.fixture
def setup() -> Setup:
    return Setup()


class TestSubscriptions:
    def test_create_get_list(self, setup: Setup) -> None:
        key = ("--idempotency-key", "k1")
        sub = setup.subscribe("--quantity", "2", "-m", "team=a", "--metadata", "b=c", *key)
        assert sub["id"].startswith("sub_")
        assert (sub["status"], sub["quantity"], sub["provider"]) == ("active", 2, None)
        assert (sub["plan_id"], sub["price_id"]) == (setup.free_plan, setup.free)
        assert sub["metadata"] == {"team": "a", "b": "c"}
        again = setup.subscribe("--quantity", "2", "-m", "team=a", "--metadata", "b=c", *key)
        assert again == sub  # replayed
        reused = qzpay("subscriptions", "create", setup.customer, setup.free, *key, "--json")
        assert (reused.exit_code, error_code(reused)) == (1, "idempotency_key_reused")
        assert qzpay_json("subscriptions", "get", sub["id"]) == sub

        page = qzpay_json("subscriptions", "list", "--customer-id", setup.customer)
        assert ([s["id"] for s in page["data"]], page["total"]) == ([sub["id"]], 1)
        for option, value, total in [
            ("--status", "active", 1),
            ("--status", "paused", 0),
            ("--plan-id", setup.free_plan, 1),
            ("--plan-id", setup.team_plan, 0),
            ("--price-id", setup.free, 1),
        ]:
            assert qzpay_json("subscriptions", "list", option, value)["total"] == total, option
        other = qzpay_json("subscriptions", "create", setup.customer, setup.team_free)
        first = qzpay_json("subscriptions", "list", "--limit", "1")
        assert ([s["id"] for s in first["data"]], first["has_more"]) == ([other["id"]], True)
        second = qzpay_json("subscriptions", "list", "--limit", "1", "--offset", "1")
        assert [s["id"] for s in second["data"]] == [sub["id"]]

        table = qzpay("subscriptions", "list")
        assert table.exit_code == 0, table.output
        assert sub["id"] in table.stdout
        assert "active" in table.stdout
        assert "1-2 of 2" in table.stdout
        shown = qzpay("subscriptions", "get", sub["id"])
        assert shown.exit_code == 0, shown.output
        assert "team=a, b=c" in shown.stdout
        assert "current_period_end" in shown.stdout

    def test_cancel_uncancel_pause_resume_change_price(self, setup: Setup) -> None:
        sub = setup.subscribe()
        sid = sub["id"]
        scheduled = qzpay_json("subscriptions", "cancel", sid)  # at period end by default
        assert (scheduled["status"], scheduled["cancel_at_period_end"]) == ("active", True)
        kept = qzpay_json("subscriptions", "uncancel", sid)
        assert (kept["cancel_at_period_end"], kept["canceled_at"]) == (False, None)

        assert qzpay_json("subscriptions", "pause", sid)["status"] == "paused"
        assert qzpay("entitlements", "check", setup.customer, "api").exit_code == 1
        assert qzpay_json("subscriptions", "resume", sid)["status"] == "active"
        assert qzpay("entitlements", "check", setup.customer, "api").exit_code == 0

        moved = qzpay_json(
            "subscriptions", "change-price", sid, setup.team_free, "--quantity", "3",
            "--proration", "none",
        )  # fmt: skip
        assert (moved["plan_id"], moved["price_id"], moved["quantity"]) == (
            setup.team_plan,
            setup.team_free,
            3,
        )
        assert qzpay_json("entitlements", "list", setup.customer)["entitlements"] == ["api", "sso"]
        paid = qzpay("subscriptions", "change-price", sid, setup.paid, "--json")
        assert (paid.exit_code, error_code(paid)) == (1, "provider_required")

        ended = qzpay_json("subscriptions", "cancel", sid, "--now")
        assert ended["status"] == "canceled"
        assert ended["ended_at"] is not None
        assert qzpay("entitlements", "check", setup.customer, "api").exit_code == 1
        late = qzpay("subscriptions", "pause", sid)
        assert late.exit_code == 1
        assert "error:" in late.stderr
        too_late = qzpay("subscriptions", "uncancel", sid, "--json")
        assert (too_late.exit_code, error_code(too_late)) == (1, "subscription_ended")

    def test_a_paid_price_needs_a_provider(self, setup: Setup) -> None:
        result = qzpay("subscriptions", "create", setup.customer, setup.paid, "--json")
        assert (result.exit_code, error_code(result)) == (1, "provider_required")
        assert qzpay_json("subscriptions", "list")["total"] == 0

    def test_not_found_is_1(self, setup: Setup) -> None:
        missing = qzpay("subscriptions", "get", "sub_unknown", "--json")
        assert (missing.exit_code, error_code(missing)) == (1, "not_found")
        human = qzpay("subscriptions", "cancel", "sub_unknown")
        assert human.exit_code == 1
        assert "no subscription 'sub_unknown'" in human.stderr
        assert "Traceback" not in human.output
        unknown = qzpay("subscriptions", "create", "cus_unknown", setup.free)
        assert unknown.exit_code == 1


class TestRunDue:
    def test_renews_after_the_period_end(self, setup: Setup, db_env: str) -> None:
        sub = setup.subscribe()
        end = datetime.fromisoformat(sub["current_period_end"])
        early = qzpay_json("subscriptions", "run-due", "--now", sub["current_period_start"])
        assert early == {"renewed": 0, "canceled": 0}
        after = (end + timedelta(seconds=1)).isoformat()
        assert qzpay_json("subscriptions", "run-due", "--now", after) == {
            "renewed": 1,
            "canceled": 0,
        }
        with SyncBilling(db_env) as billing:
            stored = billing.subscriptions.get(sub["id"])
        assert stored is not None
        assert stored.current_period_start == end
        assert stored.current_period_end == end + timedelta(days=1)
        assert qzpay_json("subscriptions", "run-due", "--now", after)["renewed"] == 0  # once

    def test_ends_a_subscription_cancelled_at_period_end(self, setup: Setup) -> None:
        sub = setup.subscribe()
        qzpay_json("subscriptions", "cancel", sub["id"])
        end = datetime.fromisoformat(sub["current_period_end"]).astimezone()  # another offset
        shown = qzpay("subscriptions", "run-due", "--now", end.isoformat())
        assert shown.exit_code == 0, shown.output
        assert re.search(r"renewed\s+0\s+canceled\s+1", shown.stdout), shown.stdout
        assert qzpay_json("subscriptions", "get", sub["id"])["status"] == "canceled"
        assert qzpay_json("entitlements", "list", setup.customer)["entitlements"] == []

    def test_now_defaults_to_the_clock(self, setup: Setup) -> None:
        setup.subscribe()
        assert qzpay_json("subscriptions", "run-due") == {"renewed": 0, "canceled": 0}


class TestEntitlementsAndLimits:
    def test_list_check_and_limits(self, setup: Setup) -> None:
        customer = setup.customer
        assert qzpay_json("entitlements", "list", customer) == {
            "customer_id": customer,
            "entitlements": [],
        }
        denied = qzpay("entitlements", "check", customer, "api")
        assert (denied.exit_code, denied.stdout, denied.stderr) == (1, "no\n", "")
        assert qzpay("limits", "get", customer, "seats").stdout == "none\n"

        setup.subscribe()
        qzpay_json("subscriptions", "create", customer, setup.team_free)
        listed = qzpay("entitlements", "list", customer)
        assert (listed.exit_code, listed.stdout) == (0, "api\nreports\nsso\n")
        allowed = qzpay("entitlements", "check", customer, "sso")
        assert (allowed.exit_code, allowed.stdout) == (0, "yes\n")
        as_json = qzpay("entitlements", "check", customer, "billing", "--json")
        assert as_json.exit_code == 1
        assert json.loads(as_json.stdout) == {
            "customer_id": customer,
            "key": "billing",
            "allowed": False,
        }
        limit = qzpay("limits", "get", customer, "seats")
        assert (limit.exit_code, limit.stdout) == (0, "50\n")  # the largest of the plans
        assert qzpay_json("limits", "get", customer, "projects")["limit"] is None
        unknown = qzpay("entitlements", "check", "cus_nobody", "api")
        assert (unknown.exit_code, unknown.stdout) == (1, "no\n")  # no access, no error

    def test_help_documents_the_exit_codes(self) -> None:
        shown = qzpay("entitlements", "check", "--help")
        assert shown.exit_code == 0
        assert "Exit code 0 when allowed, 1 when not" in shown.stdout

    def test_invalid_keys_are_2(self) -> None:
        result = qzpay("entitlements", "check", "cus_1", "Not A Key", "--json")
        assert (result.exit_code, error_code(result)) == (2, "validation_error")
        assert qzpay("limits", "get", "cus_1", "Bad Key").exit_code == 2


class TestUsageErrors:
    @pytest.mark.parametrize(
        "args",
        [
            ["subscriptions", "create", "cus_1"],  # PRICE_ID missing
            ["subscriptions", "create", "cus_1", "price_1", "--quantity", "many"],
            ["subscriptions", "create", "cus_1", "price_1", "-m", "novalue"],
            ["subscriptions", "list", "--status", "sleeping"],
            ["subscriptions", "list", "--limit", "0"],
            ["subscriptions", "list", "--offset", "-1"],
            ["subscriptions", "cancel"],
            ["subscriptions", "cancel", "sub_1", "--immediately"],
            ["subscriptions", "change-price", "sub_1"],
            ["subscriptions", "change-price", "sub_1", "price_1", "--proration", "always"],
            ["subscriptions", "run-due", "--now", "yesterday"],
            ["subscriptions", "run-due", "--now", "2030-01-01T00:00:00"],  # no offset
            ["subscriptions", "sync-pending"],  # no provider configured
            ["subscriptions", "sync-pending", "--limit", "0"],
            ["subscriptions", "frobnicate"],
            ["entitlements", "check", "cus_1"],
            ["limits", "get"],
            ["subscriptions", "list", "--database-url", "oracle://db"],
        ],
    )
    def test_are_2(self, args: list[str]) -> None:
        result = qzpay(*args)
        assert result.exit_code == 2, result.output

    def test_input_the_library_refuses_is_2_listing_every_problem(self, setup: Setup) -> None:
        result = qzpay(
            "subscriptions", "create", setup.customer, setup.free, "--quantity", "0",
            "--trial-days", "-1", "--provider", "Bad!", "--json",
        )  # fmt: skip
        assert result.exit_code == 2
        fields = {e["field"] for e in json.loads(result.stderr)["error"]["errors"]}
        assert fields == {"quantity", "trial_days", "provider"}
        human = qzpay("subscriptions", "create", setup.customer, setup.free, "--quantity", "0")
        assert human.exit_code == 2
        assert "quantity:" in human.stderr
        unknown = qzpay("subscriptions", "create", setup.customer, setup.free, "--provider", "x")
        assert unknown.exit_code == 2  # not a configured provider
        assert qzpay_json("subscriptions", "list")["total"] == 0
