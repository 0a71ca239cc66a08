"""Properties of the catalog, over generated specs and stores (hypothesis):

* applying a diff makes the store match the spec: diffing again is empty (idempotent apply);
* the store's invariants hold after any sequence of applies (active lookup keys unique, no
  active price on an archived plan);
* a spec survives its dict form; any generated input either validates or reports problems,
  never crashes;
* minor-unit conversion is exact.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qzpay.catalog import CatalogSpec, diff, parse_spec
from qzpay.catalog.currencies import EXPONENTS, to_major_units
from qzpay.catalog.spec import loads_spec
from qzpay.errors import ConflictError, FieldError, ValidationError
from qzpay.limits import MAX_UNIT_AMOUNT
from tests.catalog.fake_store import Store
from tests.support.hostile_text import has_lone_surrogate, with_lone_surrogate

PLAN_KEYS = ["a", "b", "c", "d"]
LOOKUP_KEYS = ["k1", "k2", "k3", "k4", "k5", "k6"]

metadata = st.dictionaries(st.sampled_from(["x", "y", "z"]), st.sampled_from(["1", "2"]))
price_fields = st.fixed_dictionaries(
    {
        "currency": st.sampled_from(["usd", "USD", "jpy", "BRL"]),
        "unit_amount": st.integers(0, 3),
        "interval": st.sampled_from(["day", "week", "month", "year"]),
    },
    optional={
        "interval_count": st.integers(1, 3),
        "trial_days": st.one_of(st.none(), st.sampled_from([7, 30])),
        "metadata": metadata,
    },
)
plan_fields = st.fixed_dictionaries(
    {"name": st.sampled_from(["One", "Two"])},
    optional={
        "description": st.one_of(st.none(), st.sampled_from(["d1", "d2"])),
        "entitlements": st.lists(st.sampled_from(["api", "sso", "exports"]), max_size=4),
        "limits": st.dictionaries(st.sampled_from(["seats", "projects"]), st.integers(0, 2)),
        "metadata": metadata,
    },
)


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid spec's dict: unique plan keys, lookup keys unique across the catalog."""
    keys = draw(st.lists(st.sampled_from(PLAN_KEYS), unique=True, max_size=len(PLAN_KEYS)))
    lookup_keys = draw(st.permutations(LOOKUP_KEYS))
    owners = draw(st.lists(st.sampled_from(keys), max_size=len(LOOKUP_KEYS))) if keys else []
    plans = []
    for key in keys:
        prices = [
            {**draw(price_fields), "lookup_key": lookup_keys[index]}
            for index, owner in enumerate(owners)
            if owner == key
        ]
        plans.append({**draw(plan_fields), "key": key, "prices": prices})
    return {"plans": plans}


def check_invariants(store: Store) -> None:
    active = [p.lookup_key for p in store.prices if p.active and p.lookup_key is not None]
    assert len(active) == len(set(active))
    archived_plans = {plan.id for plan in store.plans if not plan.active}
    assert not [p for p in store.prices if p.active and p.plan_id in archived_plans]
    assert len({plan.key for plan in store.plans}) == len(store.plans)


def apply(store: Store, spec: CatalogSpec, archive_missing: bool) -> None:
    store.apply(diff(store.plans, store.prices, spec, archive_missing=archive_missing))
    check_invariants(store)
    events = len(store.events)
    second = diff(store.plans, store.prices, spec, archive_missing=archive_missing)
    assert not second, str(second)
    store.apply(second)
    assert len(store.events) == events


@settings(max_examples=150, deadline=None)
@given(specs(), specs(), specs(), st.booleans(), st.booleans())
def test_apply_converges(
    first: dict[str, Any], second: dict[str, Any], third: dict[str, Any], drop: bool, drop2: bool
) -> None:
    store = Store()
    apply(store, parse_spec(first), drop)
    apply(store, parse_spec(second), drop2)
    spec = parse_spec(third)
    archived = {plan.key for plan in store.plans if not plan.active}
    named = {plan.key for plan in spec.plans}
    if archived & named:
        with pytest.raises(ConflictError) as raised:
            apply(store, spec, archive_missing=True)
        assert raised.value.code == "plan_archived"
        return
    apply(store, spec, archive_missing=True)
    active = {plan.key for plan in store.plans if plan.active}
    assert active == named
    wanted = {p.lookup_key for plan in spec.plans for p in plan.prices}
    assert {p.lookup_key for p in store.prices if p.active} == wanted


@settings(max_examples=100, deadline=None)
@given(specs())
def test_a_spec_survives_its_dict_form(data: dict[str, Any]) -> None:
    spec = parse_spec(data)
    assert parse_spec(spec.as_dict()) == spec


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value + '"'
    if value is None:
        raise ValueError("TOML has no null")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


@settings(max_examples=60, deadline=None)
@given(specs())
def test_toml_and_dict_agree(data: dict[str, Any]) -> None:
    lines = []
    for plan in data["plans"]:
        lines.append("[[plans]]")
        for key, value in plan.items():
            if key != "prices" and value is not None:
                lines.append(f"{key} = {toml_value(value)}")
        for price in plan["prices"]:
            lines.append("[[plans.prices]]")
            lines.extend(f"{k} = {toml_value(v)}" for k, v in price.items() if v is not None)
    expected = parse_spec(
        {
            "plans": [
                {
                    **{k: v for k, v in plan.items() if v is not None},
                    "prices": [
                        {k: v for k, v in p.items() if v is not None} for p in plan["prices"]
                    ],
                }
                for plan in data["plans"]
            ]
        }
    )
    assert loads_spec("\n".join(lines) if lines else "plans = []") == expected


anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "plans": st.lists(
                st.dictionaries(
                    st.sampled_from(
                        [
                            "key",
                            "name",
                            "description",
                            "entitlements",
                            "limits",
                            "metadata",
                            "prices",
                            "x",
                        ]
                    ),
                    anything,
                ),
                max_size=3,
            )
        }
    )
)
def test_any_input_validates_or_reports_problems(data: dict[str, Any]) -> None:
    problems: list[FieldError] = []
    try:
        parse_spec(data)
    except ValidationError as error:
        problems = error.errors or [{"field": "", "code": "", "message": "empty error"}]
    for problem in problems:
        assert problem["field"]
        assert problem["code"]
        problem["message"].encode("utf-8")


@given(st.integers(0, MAX_UNIT_AMOUNT), st.sampled_from(sorted(EXPONENTS)))
def test_major_units_are_exact(amount: int, currency: str) -> None:
    major = to_major_units(amount, currency)
    assert major * (Decimal(10) ** EXPONENTS[currency]) == amount
    assert -major.as_tuple().exponent == EXPONENTS[currency]  # type: ignore[operator]


@settings(max_examples=200, deadline=None)
@given(specs().filter(lambda data: bool(data["plans"])).flatmap(with_lone_surrogate))
def test_a_lone_surrogate_anywhere_is_a_validation_error(data: dict[str, Any]) -> None:
    """No text a database cannot store gets through: a surrogate in any value or key of a
    valid spec makes it invalid, with a printable error."""
    assert has_lone_surrogate(data)
    with pytest.raises(ValidationError) as raised:
        parse_spec(data)
    str(raised.value).encode("utf-8")
    for problem in raised.value.errors:
        (problem["field"] + problem["message"]).encode("utf-8")
