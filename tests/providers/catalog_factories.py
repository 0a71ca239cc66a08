"""Plans and prices as the catalog stores them, for the provider tests (no storage involved)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from qzpay.catalog.models import Plan, Price, plan_ids, price_ids


def stored_plan(**overrides: Any) -> Plan:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": plan_ids.new(),
        "key": f"pro-{secrets.token_hex(4)}",
        "name": "Pro",
        "description": "For growing teams",
        "entitlements": ["api", "sso"],
        "limits": {"seats": 5},
        "metadata": {"tier": "gold"},
        "active": True,
        "provider_plan_ids": {},
        "created_at": now,
        "updated_at": now,
    }
    fields.update(overrides)
    return Plan(**fields)


def stored_price(plan: Plan, **overrides: Any) -> Price:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": price_ids.new(),
        "plan_id": plan.id,
        "currency": "USD",
        "unit_amount": 1999,
        "interval": "month",
        "interval_count": 1,
        "trial_days": None,
        "lookup_key": None,
        "metadata": {"campaign": "launch"},
        "active": True,
        "provider_price_ids": {},
        "created_at": now,
        "updated_at": now,
    }
    fields.update(overrides)
    return Price(**fields)


def changed(record: Plan | Price, **fields: Any) -> Any:
    """``record`` with ``fields`` changed, as an update would store it."""
    return record.model_copy(update={**fields, "updated_at": datetime.now(UTC)})
