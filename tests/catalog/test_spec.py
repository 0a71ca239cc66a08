"""The declarative catalog: parsing a dict or TOML, every problem reported under its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qzpay.catalog import CatalogSpec, PlanSpec, PriceSpec, load_spec, loads_spec, parse_spec
from qzpay.errors import ValidationError
from qzpay.limits import MAX_FIELD_ERRORS, MAX_METADATA_KEYS

TOML = """
[[plans]]
key = "basic"
name = "Basic"

[[plans.prices]]
lookup_key = "basic_monthly"
currency = "usd"
unit_amount = 999
interval = "month"

[[plans]]
key = "pro"
name = "Pro"
description = "Everything"
entitlements = ["api", "exports", "api"]
limits = { seats = 5 }
metadata = { tier = "gold" }

[[plans.prices]]
lookup_key = "pro_monthly"
currency = "USD"
unit_amount = 1999
interval = "month"
trial_days = 14

[[plans.prices]]
lookup_key = "pro_yearly"
currency = "brl"
unit_amount = 19990
interval = "year"
metadata = { note = "best value" }
"""

EXPECTED = CatalogSpec(
    (
        PlanSpec(
            key="basic",
            name="Basic",
            prices=(PriceSpec("basic_monthly", "USD", 999, "month"),),
        ),
        PlanSpec(
            key="pro",
            name="Pro",
            description="Everything",
            entitlements=("api", "exports"),
            limits={"seats": 5},
            metadata={"tier": "gold"},
            prices=(
                PriceSpec("pro_monthly", "USD", 1999, "month", trial_days=14),
                PriceSpec("pro_yearly", "BRL", 19990, "year", metadata={"note": "best value"}),
            ),
        ),
    )
)


def problems_of(data: object, **options: Any) -> set[tuple[str, str]]:
    with pytest.raises(ValidationError) as raised:
        parse_spec(data, **options)
    return {(error["field"], error["code"]) for error in raised.value.errors}


def test_toml() -> None:
    assert loads_spec(TOML) == EXPECTED


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(TOML, encoding="utf-8")
    assert load_spec(path) == EXPECTED
    assert load_spec(str(path)) == EXPECTED


def test_dict_round_trip() -> None:
    assert parse_spec(EXPECTED.as_dict()) == EXPECTED


def test_empty_catalog() -> None:
    assert parse_spec({"plans": []}) == CatalogSpec()
    assert loads_spec("plans = []") == CatalogSpec()


def test_a_plan_without_prices() -> None:
    assert parse_spec({"plans": [{"key": "free", "name": "Free"}]}) == CatalogSpec(
        (PlanSpec("free", "Free"),)
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], {("catalog", "invalid_type")}),
        ({}, {("plans", "required")}),
        ({"plans": {}}, {("plans", "invalid_type")}),
        ({"plans": [], "plan": []}, {("plan", "unknown_field")}),
        ({"plans": ["pro"]}, {("plans[0]", "invalid_type")}),
        ({"plans": [{}]}, {("plans[0].key", "required"), ("plans[0].name", "required")}),
        (
            {"plans": [{"key": "p", "name": "P", "price": [], 1: 2}]},
            {("plans[0].price", "unknown_field"), ("plans[0].1", "unknown_field")},
        ),
        (
            {"plans": [{"key": "p", "name": "P", "prices": {}}]},
            {("plans[0].prices", "invalid_type")},
        ),
        (
            {"plans": [{"key": "p", "name": "P", "prices": [3]}]},
            {("plans[0].prices[0]", "invalid_type")},
        ),
    ],
)
def test_shape_problems(data: object, expected: set[tuple[str, str]]) -> None:
    assert problems_of(data) == expected


def test_price_problems_under_their_path() -> None:
    data = {
        "plans": [
            {"key": "ok", "name": "OK"},
            {
                "key": "p",
                "name": "P",
                "entitlements": ["a", "B"],
                "limits": {"seats": -1},
                "metadata": {"qzpay_plan_id": "x"},
                "prices": [
                    {"lookup_key": "fine", "currency": "usd", "unit_amount": 1, "interval": "day"},
                    {"currency": "usd", "unit_amount": 1, "interval": "day"},
                    {
                        "lookup_key": "bad",
                        "currency": "dollars",
                        "unit_amount": 19.99,
                        "interval": "month",
                        "interval_count": 37,
                        "trial_days": 0,
                        "metadata": {"n": 1},
                        "amount": 5,
                    },
                    {"lookup_key": "missing"},
                ],
            },
        ]
    }
    assert problems_of(data) == {
        ("plans[1].entitlements[1]", "invalid_slug"),
        ("plans[1].limits.seats", "out_of_range"),
        ("plans[1].metadata.qzpay_plan_id", "reserved_key"),
        ("plans[1].prices[1].lookup_key", "required"),
        ("plans[1].prices[2].amount", "unknown_field"),
        ("plans[1].prices[2].currency", "invalid_currency"),
        ("plans[1].prices[2].unit_amount", "invalid_type"),
        ("plans[1].prices[2].interval_count", "period_too_long"),
        ("plans[1].prices[2].trial_days", "out_of_range"),
        ("plans[1].prices[2].metadata.n", "invalid_type"),
        ("plans[1].prices[3].currency", "required"),
        ("plans[1].prices[3].unit_amount", "required"),
        ("plans[1].prices[3].interval", "required"),
    }


def test_duplicates() -> None:
    price = {"currency": "usd", "unit_amount": 1, "interval": "month"}
    data = {
        "plans": [
            {"key": "a", "name": "A", "prices": [{"lookup_key": "x", **price}]},
            {
                "key": "a",
                "name": "A again",
                "prices": [{"lookup_key": "y", **price}, {"lookup_key": "x", **price}],
            },
            {"key": "b", "name": "B", "prices": [{"lookup_key": "y", **price}]},
        ]
    }
    assert problems_of(data) == {
        ("plans[1].key", "duplicate_key"),
        ("plans[1].prices[1].lookup_key", "duplicate_lookup_key"),
        ("plans[2].prices[0].lookup_key", "duplicate_lookup_key"),
    }


def test_lookup_keys_are_exact() -> None:
    """Lookup keys are kept as given: "X" and "x" are two keys."""
    price = {"currency": "usd", "unit_amount": 1, "interval": "month"}
    data = {
        "plans": [
            {
                "key": "a",
                "name": "A",
                "prices": [{"lookup_key": "x", **price}, {"lookup_key": "X", **price}],
            }
        ]
    }
    assert [p.lookup_key for p in parse_spec(data).plans[0].prices] == ["x", "X"]


def test_toml_values_are_not_coerced() -> None:
    text = """
[[plans]]
key = "p"
name = "P"
[[plans.prices]]
lookup_key = "k"
currency = "usd"
unit_amount = 19.99
interval = "month"
interval_count = "1"
trial_days = true
"""
    with pytest.raises(ValidationError) as raised:
        loads_spec(text)
    assert {(e["field"], e["code"]) for e in raised.value.errors} == {
        ("plans[0].prices[0].unit_amount", "invalid_type"),
        ("plans[0].prices[0].interval_count", "invalid_type"),
        ("plans[0].prices[0].trial_days", "invalid_type"),
    }


@pytest.mark.parametrize("text", ["[[plans]\nkey = 1", "plans = [", 'key = "a"\nkey = "b"'])
def test_bad_toml(text: str) -> None:
    with pytest.raises(ValidationError) as raised:
        loads_spec(text)
    assert raised.value.errors[0]["field"] == "catalog"
    assert raised.value.errors[0]["code"] == "invalid_toml"


def test_toml_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_bytes(b"plans = []\n# \xff\n")
    with pytest.raises(ValidationError) as raised:
        load_spec(path)
    assert raised.value.errors[0]["code"] == "invalid_toml"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_spec(tmp_path / "nope.toml")


def test_text_checks_reach_the_spec() -> None:
    data = {"plans": [{"key": "p", "name": "P\x00", "description": "\ud800"}]}
    assert problems_of(data) == {
        ("plans[0].name", "invalid_character"),
        ("plans[0].description", "invalid_unicode"),
    }


def test_unknown_key_with_a_lone_surrogate_is_printable() -> None:
    with pytest.raises(ValidationError) as raised:
        parse_spec({"plans": [], "\ud800": 1})
    assert raised.value.errors[0]["code"] == "unknown_field"
    str(raised.value).encode("utf-8")


def test_metadata_limit() -> None:
    metadata = {f"k{i}": "v" for i in range(MAX_METADATA_KEYS)}
    data = {"plans": [{"key": "p", "name": "P", "metadata": metadata}]}
    parse_spec(data)
    assert problems_of(data, metadata_limit=MAX_METADATA_KEYS - 1) == {
        ("plans[0].metadata", "too_many_keys")
    }


def test_a_huge_bad_spec_is_capped() -> None:
    data = {"plans": [{"key": "BAD", "name": ""} for _ in range(MAX_FIELD_ERRORS)]}
    with pytest.raises(ValidationError) as raised:
        parse_spec(data)
    assert len(raised.value.errors) == MAX_FIELD_ERRORS
    assert raised.value.omitted == MAX_FIELD_ERRORS
