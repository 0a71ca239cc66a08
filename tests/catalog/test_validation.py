"""Every input rule of plans and prices: codes per field, every problem at once, no coercion."""

from __future__ import annotations

from typing import Any

import pytest

from qzpay.catalog import inputs
from qzpay.catalog.inputs import PlanInput, PriceInput
from qzpay.errors import UnknownArgumentError, ValidationError
from qzpay.limits import (
    MAX_DESCRIPTION_LENGTH,
    MAX_ENTITLEMENTS,
    MAX_FIELD_ERRORS,
    MAX_LIMIT_VALUE,
    MAX_LOOKUP_KEY_LENGTH,
    MAX_METADATA_KEYS,
    MAX_NAME_LENGTH,
    MAX_PLAN_LIMITS,
    MAX_PRICE_PERIOD,
    MAX_SLUG_LENGTH,
    MAX_TRIAL_DAYS,
    MAX_UNIT_AMOUNT,
)
from qzpay.storage.base import PriceFilter

LONE_SURROGATE = "\ud800"


def plan_problems(**arguments: Any) -> set[tuple[str, str]]:
    arguments.setdefault("key", "pro")
    arguments.setdefault("name", "Pro")
    with pytest.raises(ValidationError) as raised:
        inputs.plan_create(**arguments)
    return {(error["field"], error["code"]) for error in raised.value.errors}


def price_problems(**arguments: Any) -> set[tuple[str, str]]:
    arguments = {
        "plan_id": "plan_1",
        "currency": "usd",
        "unit_amount": 1999,
        "interval": "month",
        **arguments,
    }
    with pytest.raises(ValidationError) as raised:
        inputs.price_create(**arguments)
    return {(error["field"], error["code"]) for error in raised.value.errors}


def price(**arguments: Any) -> PriceInput:
    arguments = {
        "plan_id": "plan_1",
        "currency": "usd",
        "unit_amount": 1999,
        "interval": "month",
        **arguments,
    }
    return inputs.price_create(**arguments)[1]


# -- plans -------------------------------------------------------------------------------------
def test_a_valid_plan_is_cleaned() -> None:
    plan, key = inputs.plan_create(
        "team-2024_x",
        "  Team  ",
        description=" For teams ",
        entitlements=["api", "exports", "api", "sso", "exports"],
        limits={"seats": 5, "projects": 0},
        metadata={"tier": "gold"},
        idempotency_key="k1",
    )
    assert plan == PlanInput(
        key="team-2024_x",
        name="Team",
        description="For teams",
        entitlements=["api", "exports", "sso"],
        limits={"seats": 5, "projects": 0},
        metadata={"tier": "gold"},
    )
    assert key == "k1"


def test_plan_defaults() -> None:
    plan, key = inputs.plan_create("a", "A")
    assert plan == PlanInput("a", "A", None, [], {}, {})
    assert key is None


@pytest.mark.parametrize("key", ["a", "0", "a" * MAX_SLUG_LENGTH, "pro_plan-2", "9lives"])
def test_good_keys(key: str) -> None:
    assert inputs.plan_create(key, "X")[0].key == key


@pytest.mark.parametrize(
    "key",
    ["", "Pro", "-pro", "_pro", "pro plan", "pró", "a" * (MAX_SLUG_LENGTH + 1), "pro\n", "pro."],
)
def test_bad_keys(key: str) -> None:
    assert plan_problems(key=key) == {("key", "invalid_slug")}


@pytest.mark.parametrize("key", [None, 1, b"pro", ["pro"]])
def test_key_type(key: object) -> None:
    assert plan_problems(key=key) == {("key", "invalid_type")}


@pytest.mark.parametrize(
    ("name", "code"),
    [
        (None, "required"),
        (3, "invalid_type"),
        ("", "blank"),
        ("   ", "blank"),
        ("x" * (MAX_NAME_LENGTH + 1), "too_long"),
        ("Pro\x00", "invalid_character"),
        ("Pro" + LONE_SURROGATE, "invalid_unicode"),
    ],
)
def test_bad_names(name: object, code: str) -> None:
    assert plan_problems(name=name) == {("name", code)}


@pytest.mark.parametrize(
    ("description", "code"),
    [
        (1, "invalid_type"),
        (" ", "blank"),
        ("x" * (MAX_DESCRIPTION_LENGTH + 1), "too_long"),
        ("a\x00b", "invalid_character"),
        (LONE_SURROGATE, "invalid_unicode"),
    ],
)
def test_bad_descriptions(description: object, code: str) -> None:
    assert plan_problems(description=description) == {("description", code)}


def test_entitlements_are_slugs_reported_by_index() -> None:
    problems = plan_problems(entitlements=["api", "ok", "Bad Slug", 7, "", "fine"])
    assert problems == {
        ("entitlements[2]", "invalid_slug"),
        ("entitlements[3]", "invalid_type"),
        ("entitlements[4]", "invalid_slug"),
    }


@pytest.mark.parametrize("value", ["api", {"api": 1}, {"api"}, 3])
def test_entitlements_must_be_a_list(value: object) -> None:
    assert plan_problems(entitlements=value) == {("entitlements", "invalid_type")}


def test_entitlements_count_after_de_duplication() -> None:
    distinct = [f"e{i}" for i in range(MAX_ENTITLEMENTS)]
    plan, _ = inputs.plan_create("p", "P", entitlements=(*distinct, *distinct))
    assert plan.entitlements == distinct
    too_many = [*distinct, "one-more"]
    assert plan_problems(entitlements=too_many) == {("entitlements", "too_many_items")}


def test_limits() -> None:
    plan, _ = inputs.plan_create("p", "P", limits={"seats": 0, "api-calls": MAX_LIMIT_VALUE})
    assert plan.limits == {"seats": 0, "api-calls": MAX_LIMIT_VALUE}
    problems = plan_problems(
        limits={
            "Seats": 1,
            "flag": True,
            "float": 1.0,
            "text": "5",
            "none": None,
            "negative": -1,
            "huge": MAX_LIMIT_VALUE + 1,
            1: 2,
        }
    )
    assert problems == {
        ("limits.Seats", "invalid_slug"),
        ("limits.flag", "invalid_type"),
        ("limits.float", "invalid_type"),
        ("limits.text", "invalid_type"),
        ("limits.none", "invalid_type"),
        ("limits.negative", "out_of_range"),
        ("limits.huge", "out_of_range"),
        ("limits", "invalid_slug"),
    }


def test_limits_type_and_count() -> None:
    assert plan_problems(limits=[("seats", 1)]) == {("limits", "invalid_type")}
    many = {f"l{i}": 1 for i in range(MAX_PLAN_LIMITS + 1)}
    assert plan_problems(limits=many) == {("limits", "too_many_keys")}
    inputs.plan_create("p", "P", limits=dict(list(many.items())[:MAX_PLAN_LIMITS]))


def test_metadata_rules_are_the_customers_plus_reserved_keys() -> None:
    problems = plan_problems(
        metadata={
            "qzpay_plan_id": "x",
            "qzpay_price_id": "x",
            "qzpay_customer_id": "x",
            "n": 1,
            "empty": "",
            "k" * 41: "v",
            "nul": "a\x00",
        }
    )
    assert problems == {
        ("metadata.qzpay_plan_id", "reserved_key"),
        ("metadata.qzpay_price_id", "reserved_key"),
        ("metadata.qzpay_customer_id", "reserved_key"),
        ("metadata.n", "invalid_type"),
        ("metadata.empty", "empty_value"),
        ("metadata." + "k" * 41, "invalid_key"),
        ("metadata.nul", "invalid_character"),
    }
    assert plan_problems(metadata={"a": None}) == {("metadata.a", "invalid_type")}
    assert plan_problems(metadata=["a"]) == {("metadata", "invalid_type")}


def test_metadata_size_depends_on_providers() -> None:
    metadata = {f"k{i}": "v" for i in range(MAX_METADATA_KEYS)}
    inputs.plan_create("p", "P", metadata=metadata)
    with pytest.raises(ValidationError) as raised:
        inputs.plan_create("p", "P", metadata=metadata, metadata_limit=MAX_METADATA_KEYS - 1)
    assert raised.value.errors[0]["code"] == "too_many_keys"


def test_idempotency_key() -> None:
    assert plan_problems(idempotency_key="") == {("idempotency_key", "invalid_idempotency_key")}


def test_every_plan_problem_at_once() -> None:
    problems = plan_problems(
        key="Bad",
        name="",
        description=3,
        entitlements=["ok", "NO"],
        limits={"seats": -1},
        metadata={"qzpay_plan_id": "x"},
        idempotency_key=5,
    )
    assert {field for field, _ in problems} == {
        "key",
        "name",
        "description",
        "entitlements[1]",
        "limits.seats",
        "metadata.qzpay_plan_id",
        "idempotency_key",
    }


def test_unknown_arguments_are_reported_with_the_rest() -> None:
    with pytest.raises(UnknownArgumentError) as raised:
        inputs.plan_create("Bad", "P", unknown={"colour": "red"})
    assert isinstance(raised.value, TypeError)
    fields = {(e["field"], e["code"]) for e in raised.value.errors}
    assert fields == {("colour", "unknown_argument"), ("key", "invalid_slug")}


def test_at_most_max_field_errors_are_listed() -> None:
    with pytest.raises(ValidationError) as raised:
        inputs.plan_create("p", "", entitlements=["BAD"] * (MAX_FIELD_ERRORS + 50))
    assert len(raised.value.errors) == MAX_FIELD_ERRORS
    assert raised.value.omitted == 51
    assert "and 51 more" in str(raised.value)


def test_plan_update() -> None:
    changes, patch = inputs.plan_update(
        name=" New ", description=None, entitlements=("a", "a"), limits={}, metadata={"x": None}
    )
    assert changes == {"name": "New", "description": None, "entitlements": ["a"], "limits": {}}
    assert patch == {"x": None}
    assert inputs.plan_update() == ({}, {})
    with pytest.raises(ValidationError) as raised:
        inputs.plan_update(name=None, metadata=None, limits={"A": 1}, unknown={"key": "k"})
    assert {(e["field"], e["code"]) for e in raised.value.errors} == {
        ("key", "unknown_argument"),
        ("name", "required"),
        ("metadata", "invalid_type"),
        ("limits.A", "invalid_slug"),
    }


def test_merge_metadata() -> None:
    merged = inputs.merge_metadata({"a": "1", "b": "2"}, {"a": None, "c": "3"}, limit=2)
    assert merged == {"b": "2", "c": "3"}
    with pytest.raises(ValidationError) as raised:
        inputs.merge_metadata({"a": "1", "b": "2"}, {"c": "3"}, limit=2)
    assert raised.value.errors[0] == {
        "field": "metadata",
        "code": "too_many_keys",
        "message": "at most 2 keys are allowed",
    }


# -- prices ------------------------------------------------------------------------------------
def test_a_valid_price_is_cleaned() -> None:
    plan_id, checked, key = inputs.price_create(
        "plan_1",
        currency="bRl",
        unit_amount=0,
        interval="year",
        interval_count=3,
        trial_days=MAX_TRIAL_DAYS,
        lookup_key=" pro yearly ",
        metadata={"a": "b"},
        idempotency_key="k",
    )
    assert plan_id == "plan_1"
    assert key == "k"
    assert checked == PriceInput("BRL", 0, "year", 3, MAX_TRIAL_DAYS, " pro yearly ", {"a": "b"})


def test_price_defaults() -> None:
    assert price() == PriceInput("USD", 1999, "month", 1, None, None, {})


@pytest.mark.parametrize(
    ("currency", "code"),
    [
        ("usdd", "invalid_currency"),
        ("XAU", "invalid_currency"),
        ("", "invalid_currency"),
        (None, "invalid_type"),
        (840, "invalid_type"),
    ],
)
def test_bad_currencies(currency: object, code: str) -> None:
    assert price_problems(currency=currency) == {("currency", code)}


@pytest.mark.parametrize("amount", ["1999", 19.99, 1999.0, True, False, None, b"1"])
def test_amounts_are_never_coerced(amount: object) -> None:
    assert price_problems(unit_amount=amount) == {("unit_amount", "invalid_type")}


@pytest.mark.parametrize("amount", [-1, MAX_UNIT_AMOUNT + 1, 10**30])
def test_amount_range(amount: int) -> None:
    assert price_problems(unit_amount=amount) == {("unit_amount", "out_of_range")}


@pytest.mark.parametrize("amount", [0, 1, MAX_UNIT_AMOUNT])
def test_good_amounts(amount: int) -> None:
    assert price(unit_amount=amount).unit_amount == amount


@pytest.mark.parametrize(
    ("interval", "code"),
    [
        ("Month", "invalid_interval"),
        ("months", "invalid_interval"),
        ("quarter", "invalid_interval"),
        ("", "invalid_interval"),
        (1, "invalid_type"),
        (None, "invalid_type"),
    ],
)
def test_bad_intervals(interval: object, code: str) -> None:
    assert price_problems(interval=interval) == {("interval", code)}


@pytest.mark.parametrize(("interval", "most"), sorted(MAX_PRICE_PERIOD.items()))
def test_the_period_is_at_most_three_years(interval: str, most: int) -> None:
    assert price(interval=interval, interval_count=most).interval_count == most
    problems = price_problems(interval=interval, interval_count=most + 1)
    assert problems == {("interval_count", "period_too_long")}


def test_stripe_period_maxima() -> None:
    assert MAX_PRICE_PERIOD == {"day": 1095, "week": 156, "month": 36, "year": 3}


@pytest.mark.parametrize(
    ("count", "code"),
    [
        (0, "out_of_range"),
        (-3, "out_of_range"),
        (True, "invalid_type"),
        (2.0, "invalid_type"),
        ("2", "invalid_type"),
        (None, "invalid_type"),
    ],
)
def test_bad_interval_counts(count: object, code: str) -> None:
    assert price_problems(interval_count=count) == {("interval_count", code)}


def test_interval_count_with_a_bad_interval_reports_the_interval_only() -> None:
    assert price_problems(interval="fortnight", interval_count=5000) == {
        ("interval", "invalid_interval")
    }


@pytest.mark.parametrize(
    ("days", "code"),
    [
        (0, "out_of_range"),
        (MAX_TRIAL_DAYS + 1, "out_of_range"),
        (True, "invalid_type"),
        (7.0, "invalid_type"),
        ("7", "invalid_type"),
    ],
)
def test_bad_trial_days(days: object, code: str) -> None:
    assert price_problems(trial_days=days) == {("trial_days", code)}


@pytest.mark.parametrize("days", [None, 1, MAX_TRIAL_DAYS])
def test_good_trial_days(days: int | None) -> None:
    assert price(trial_days=days).trial_days == days


@pytest.mark.parametrize(
    ("lookup_key", "code"),
    [
        ("", "blank"),
        ("  ", "blank"),
        ("k" * (MAX_LOOKUP_KEY_LENGTH + 1), "too_long"),
        (1, "invalid_type"),
        ("a\x00", "invalid_character"),
        (LONE_SURROGATE, "invalid_unicode"),
    ],
)
def test_bad_lookup_keys(lookup_key: object, code: str) -> None:
    assert price_problems(lookup_key=lookup_key) == {("lookup_key", code)}


def test_long_lookup_key() -> None:
    key = "k" * MAX_LOOKUP_KEY_LENGTH
    assert price(lookup_key=key).lookup_key == key


@pytest.mark.parametrize(
    ("plan_id", "code"),
    [
        ("", "invalid_id"),
        (None, "invalid_id"),
        ("x" * 256, "invalid_id"),
        ("plan\x00", "invalid_character"),
    ],
)
def test_bad_plan_ids(plan_id: object, code: str) -> None:
    assert price_problems(plan_id=plan_id) == {("plan_id", code)}


def test_every_price_problem_at_once() -> None:
    problems = price_problems(
        plan_id="",
        currency="dollars",
        unit_amount="19.99",
        interval="month",
        interval_count=37,
        trial_days=0,
        lookup_key="",
        metadata={"qzpay_price_id": "x"},
        idempotency_key="",
        unknown={"product": "p"},
    )
    assert problems == {
        ("plan_id", "invalid_id"),
        ("currency", "invalid_currency"),
        ("unit_amount", "invalid_type"),
        ("interval_count", "period_too_long"),
        ("trial_days", "out_of_range"),
        ("lookup_key", "blank"),
        ("metadata.qzpay_price_id", "reserved_key"),
        ("idempotency_key", "invalid_idempotency_key"),
        ("product", "unknown_argument"),
    }


def test_price_update() -> None:
    assert inputs.price_update(lookup_key=None) == ({"lookup_key": None}, {})
    assert inputs.price_update(metadata={"a": "1", "b": None}) == ({}, {"a": "1", "b": None})
    with pytest.raises(UnknownArgumentError) as raised:
        inputs.price_update(lookup_key="", unknown={"unit_amount": 5})
    assert {(e["field"], e["code"]) for e in raised.value.errors} == {
        ("lookup_key", "blank"),
        ("unit_amount", "unknown_argument"),
    }
    with pytest.raises(ValidationError):
        inputs.price_update(metadata=None)


# -- list filters ------------------------------------------------------------------------------
def test_plan_list_filters() -> None:
    no_unknown: dict[str, object] = {}
    assert inputs.plan_list(active=None, limit=10, offset=0, unknown=no_unknown) is None
    assert inputs.plan_list(active=False, limit=10, offset=0, unknown=no_unknown) is False
    with pytest.raises(ValidationError) as raised:
        inputs.plan_list(active="yes", limit=0, offset=-1, unknown=no_unknown)
    assert {(e["field"], e["code"]) for e in raised.value.errors} == {
        ("active", "invalid_type"),
        ("limit", "out_of_range"),
        ("offset", "out_of_range"),
    }


def test_price_list_filters() -> None:
    found = inputs.price_list(
        plan_id="plan_1", active=True, currency="eur", limit=1, offset=0, unknown={}
    )
    assert found == PriceFilter("plan_1", True, "EUR")
    with pytest.raises(ValidationError) as raised:
        inputs.price_list(plan_id="", active=1, currency="EURO", limit=10, offset=0, unknown={})
    assert {(e["field"], e["code"]) for e in raised.value.errors} == {
        ("plan_id", "invalid_id"),
        ("active", "invalid_type"),
        ("currency", "invalid_currency"),
    }
