"""Plan and Price: immutable records the engine can carry (its Record protocol)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pydantic
import pytest

from qzpay.catalog.models import Plan, Price, archive_changes, plan_ids, price_ids
from qzpay.engine.resource import Record

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_plan(**fields: object) -> Plan:
    values: dict[str, object] = {
        "id": plan_ids.new(),
        "key": "pro",
        "name": "Pro",
        "entitlements": ["api"],
        "limits": {"seats": 5},
        "metadata": {},
        "provider_plan_ids": {},
        "created_at": NOW,
        "updated_at": NOW,
        **fields,
    }
    return Plan.model_validate(values)


def make_price(**fields: object) -> Price:
    values: dict[str, object] = {
        "id": price_ids.new(),
        "plan_id": "plan_1",
        "currency": "USD",
        "unit_amount": 1999,
        "interval": "month",
        "metadata": {},
        "provider_price_ids": {},
        "created_at": NOW,
        "updated_at": NOW,
        **fields,
    }
    return Price.model_validate(values)


def as_record(record: Record) -> Record:
    """Type-checked by mypy: both models satisfy the engine's Record protocol."""
    return record


def test_ids() -> None:
    first, second = plan_ids.new(), plan_ids.new()
    assert first.startswith("plan_")
    assert first < second
    assert price_ids.new().startswith("price_")


def test_defaults_and_record_protocol() -> None:
    plan, price = make_plan(), make_price()
    assert (plan.active, plan.description) == (True, None)
    assert (price.active, price.interval_count, price.trial_days, price.lookup_key) == (
        True,
        1,
        None,
        None,
    )
    for record in (plan, price):
        assert as_record(record).deleted_at is None
        assert "deleted_at" not in record.model_dump()


def test_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        make_plan().name = "x"  # type: ignore[misc]


def test_changed_fields() -> None:
    plan = make_plan()
    after = plan.model_copy(update={"name": "Pro 2", "limits": {}, "updated_at": datetime.now(UTC)})
    assert plan.changed_fields(after) == {"name": "Pro", "limits": {"seats": 5}}
    price = make_price(lookup_key="m")
    moved = price.model_copy(update={"lookup_key": None, **archive_changes(datetime.now(UTC))})
    assert price.changed_fields(moved) == {"lookup_key": "m", "active": True}
    assert not price.changed_fields(price)


def test_major_amount() -> None:
    assert make_price().major_amount() == Decimal("19.99")
    assert make_price(currency="JPY", unit_amount=500).major_amount() == Decimal(500)


def test_interval_is_one_of_four() -> None:
    with pytest.raises(pydantic.ValidationError):
        make_price(interval="quarter")
