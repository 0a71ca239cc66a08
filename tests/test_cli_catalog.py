"""``qzpay plans``, ``qzpay prices`` and ``qzpay catalog``: through Typer's runner, on SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from qzpay.cli import app
from qzpay.config import ENVIRONMENT_VARIABLES

CATALOG = """
[[plans]]
key = "free"
name = "Free"
entitlements = ["api"]
limits = { seats = 1 }

[[plans.prices]]
lookup_key = "free_monthly"
currency = "USD"
unit_amount = 0
interval = "month"

[[plans]]
key = "team"
name = "Team"
entitlements = ["api", "sso"]
limits = { seats = 50 }

[[plans.prices]]
lookup_key = "team_monthly"
currency = "USD"
unit_amount = 9900
interval = "month"
trial_days = 14
"""


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


def create_pro() -> dict[str, Any]:
    plan: dict[str, Any] = qzpay_json(
        "plans", "create", "pro", "Pro", "-e", "api", "--entitlement", "sso",
        "--plan-limit", "seats=5", "-m", "tier=2", "--description", "For teams",
    )  # fmt: skip
    return plan


class TestPlans:
    def test_create_get_list_update_archive(self) -> None:
        plan = create_pro()
        assert plan["id"].startswith("plan_")
        assert plan["entitlements"] == ["api", "sso"]
        assert plan["limits"] == {"seats": 5}
        assert plan["metadata"] == {"tier": "2"}
        assert qzpay_json("plans", "get", plan["id"]) == plan
        assert qzpay_json("plans", "get", "--key", "pro") == plan

        table = qzpay("plans", "list")
        assert table.exit_code == 0, table.output
        assert plan["id"] in table.stdout
        assert "1-1 of 1" in table.stdout
        page = qzpay_json("plans", "list", "--active")
        assert [p["id"] for p in page["data"]] == [plan["id"]]
        assert (page["total"], page["has_more"]) == (1, False)

        updated = qzpay_json(
            "plans", "update", plan["id"], "--name", "Pro 2", "--clear-description",
            "--plan-limit", "seats=10", "-m", "v=1", "--unset-metadata", "tier",
        )  # fmt: skip
        assert updated["name"] == "Pro 2"
        assert updated["description"] is None
        assert updated["limits"] == {"seats": 10}
        assert updated["entitlements"] == ["api", "sso"]  # not given: unchanged
        assert updated["metadata"] == {"v": "1"}

        archived = qzpay_json("plans", "archive", plan["id"])
        assert archived["active"] is False
        assert qzpay_json("plans", "archive", plan["id"]) == archived  # a no-op
        assert qzpay_json("plans", "list", "--active")["total"] == 0
        assert qzpay_json("plans", "list", "--archived")["total"] == 1

        refused = qzpay("plans", "update", plan["id"], "--name", "Again", "--json")
        assert refused.exit_code == 1
        assert json.loads(refused.stderr)["error"]["code"] == "plan_archived"

    def test_errors_and_exit_codes(self) -> None:
        create_pro()
        taken = qzpay("plans", "create", "pro", "Other")
        assert taken.exit_code == 1
        assert "error:" in taken.stderr

        invalid = qzpay("plans", "create", "Not A Slug", " ", "--json")
        assert invalid.exit_code == 2
        fields = {e["field"] for e in json.loads(invalid.stderr)["error"]["errors"]}
        assert {"key", "name"} <= fields

        missing = qzpay("plans", "get", "plan_unknown", "--json")
        assert missing.exit_code == 1
        assert json.loads(missing.stderr)["error"]["code"] == "not_found"
        assert qzpay("plans", "get").exit_code == 2  # neither id nor --key
        assert qzpay("plans", "create", "x", "X", "--plan-limit", "seats=many").exit_code == 2
        clash = qzpay("plans", "update", "plan_x", "--description", "d", "--clear-description")
        assert clash.exit_code == 2

    def test_idempotency_key(self) -> None:
        first = qzpay_json("plans", "create", "basic", "Basic", "--idempotency-key", "k1")
        again = qzpay_json("plans", "create", "basic", "Basic", "--idempotency-key", "k1")
        assert again == first
        assert qzpay_json("plans", "list")["total"] == 1


class TestPrices:
    def test_create_get_list_update_archive(self) -> None:
        plan = create_pro()
        price = qzpay_json(
            "prices", "create", plan["id"], "--currency", "usd", "--unit-amount", "1999",
            "--interval", "month", "--lookup-key", "pro_monthly", "--trial-days", "14",
        )  # fmt: skip
        assert price["id"].startswith("price_")
        assert (price["currency"], price["unit_amount"], price["trial_days"]) == ("USD", 1999, 14)
        assert qzpay_json("prices", "get", price["id"]) == price
        assert qzpay_json("prices", "get", "--lookup-key", "pro_monthly") == price

        table = qzpay("prices", "list", "--plan-id", plan["id"])
        assert table.exit_code == 0, table.output
        assert "19.99 USD" in table.stdout
        assert qzpay_json("prices", "list", "--currency", "usd")["total"] == 1
        assert qzpay_json("prices", "list", "--currency", "eur")["total"] == 0

        yearly = qzpay_json(
            "prices", "create", plan["id"], "--currency", "usd", "--unit-amount", "19900",
            "--interval", "year",
        )  # fmt: skip
        moved = qzpay_json("prices", "update", yearly["id"], "--lookup-key", "pro_monthly")
        assert moved["lookup_key"] == "pro_monthly"
        assert qzpay_json("prices", "get", price["id"])["lookup_key"] is None
        cleared = qzpay_json("prices", "update", yearly["id"], "--clear-lookup-key", "-m", "a=b")
        assert (cleared["lookup_key"], cleared["metadata"]) == (None, {"a": "b"})

        archived = qzpay_json("prices", "archive", price["id"])
        assert archived["active"] is False
        assert qzpay_json("prices", "list", "--active")["total"] == 1
        assert qzpay_json("prices", "list", "--archived")["total"] == 1

    def test_errors(self) -> None:
        plan = create_pro()
        invalid = qzpay(
            "prices", "create", plan["id"], "--currency", "usd", "--unit-amount", "-1",
            "--interval", "fortnight", "--json",
        )  # fmt: skip
        assert invalid.exit_code == 2
        fields = {e["field"]: e["code"] for e in json.loads(invalid.stderr)["error"]["errors"]}
        assert set(fields) == {"unit_amount", "interval"}
        unknown_plan = qzpay(
            "prices", "create", "plan_nope", "--currency", "usd", "--unit-amount", "1",
            "--interval", "month",
        )  # fmt: skip
        assert unknown_plan.exit_code == 1
        missing = qzpay("prices", "get", "--lookup-key", "nope")
        assert missing.exit_code == 1
        assert "no active price" in missing.stderr


class TestCatalog:
    def test_diff_apply_and_apply_again(self, tmp_path: Path) -> None:
        spec = tmp_path / "catalog.toml"
        spec.write_text(CATALOG, encoding="utf-8")

        shown = qzpay("catalog", "diff", str(spec))
        assert shown.exit_code == 0, shown.output
        assert "2 plans to create, 2 prices to create" in shown.stdout
        assert "+ plan team" in shown.stdout
        planned = qzpay_json("catalog", "diff", str(spec))
        assert [c["action"] for c in planned["changes"]] == [
            "create_plan",
            "create_plan",
            "create_price",
            "create_price",
        ]
        assert qzpay_json("plans", "list")["total"] == 0  # diff writes nothing

        applied = qzpay("catalog", "apply", str(spec))
        assert applied.exit_code == 0, applied.output
        assert "Applied 4 changes." in applied.stdout
        assert qzpay_json("plans", "get", "--key", "team")["limits"] == {"seats": 50}
        assert qzpay_json("prices", "get", "--lookup-key", "team_monthly")["trial_days"] == 14

        again = qzpay("catalog", "apply", str(spec))
        assert again.exit_code == 0, again.output
        assert "No changes" in again.stdout
        assert qzpay_json("catalog", "apply", str(spec)) == {
            "summary": "no changes",
            "changes": [],
            "applied": 0,
        }

    def test_archive_missing(self, tmp_path: Path) -> None:
        create_pro()
        spec = tmp_path / "catalog.toml"
        spec.write_text(CATALOG, encoding="utf-8")
        qzpay_json("catalog", "apply", str(spec))
        assert qzpay_json("plans", "get", "--key", "pro")["active"] is True  # kept by default
        dropped = qzpay_json("catalog", "diff", str(spec), "--archive-missing")
        assert [c["action"] for c in dropped["changes"]] == ["archive_plan"]
        qzpay_json("catalog", "apply", str(spec), "--archive-missing")
        assert qzpay_json("plans", "get", "--key", "pro")["active"] is False

    def test_a_bad_file(self, tmp_path: Path) -> None:
        assert qzpay("catalog", "diff", str(tmp_path / "missing.toml")).exit_code == 2
        spec = tmp_path / "bad.toml"
        spec.write_text('[[plans]]\nkey = "Bad Key"\n', encoding="utf-8")
        result = qzpay("catalog", "apply", str(spec), "--json")
        assert result.exit_code == 2
        assert json.loads(result.stderr)["error"]["code"] == "validation_error"
        assert qzpay_json("plans", "list")["total"] == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_catalog_reconcile_reports_then_fixes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan made before Stripe was configured: reported unlinked (--check exits 3), created
    there by --fix, then in sync (a localstripe of this test's own, so nothing else is there)."""
    from tests.support.localstripe import API_KEY, start_localstripe

    plan = qzpay_json("plans", "create", "pro", "Pro")
    assert qzpay("catalog", "reconcile", "--provider", "stripe").exit_code == 2  # not configured
    server = start_localstripe()
    try:
        monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
        monkeypatch.setenv("STRIPE_API_BASE", server.url)
        report = qzpay_json("catalog", "reconcile", "--provider", "stripe")
        assert (report["in_sync"], report["unlinked"]) == (False, [plan["id"]])
        human = qzpay("catalog", "reconcile", "--provider", "stripe", "--check")
        assert human.exit_code == 3, human.output
        assert "not linked to stripe" in human.stdout
        fixed = qzpay_json("catalog", "reconcile", "--provider", "stripe", "--fix")
        assert [line.split()[:3] for line in fixed["fixed"]] == [["created", "stripe", "plan"]]
        assert qzpay("catalog", "reconcile", "--provider", "stripe", "--check").exit_code == 0
    finally:
        server.stop()
