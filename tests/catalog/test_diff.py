"""diff(current plans, current prices, spec): what apply must do, and that applying it twice
changes nothing the second time."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from qzpay.catalog import CatalogSpec, diff, parse_spec
from qzpay.catalog.changes import (
    ArchivePlan,
    ArchivePrice,
    CreatePlan,
    CreatePrice,
    FieldChange,
    ReplacePrice,
    UpdatePlan,
    UpdatePrice,
    metadata_patch,
)
from qzpay.catalog.diff import CatalogDiff
from qzpay.errors import ConflictError
from tests.catalog.fake_store import Store


def price(lookup_key: str, amount: int = 1999, **fields: Any) -> dict[str, Any]:
    return {
        "lookup_key": lookup_key,
        "currency": "usd",
        "unit_amount": amount,
        "interval": "month",
        **fields,
    }


def catalog(*plans: dict[str, Any]) -> CatalogSpec:
    return parse_spec({"plans": list(plans)})


BASIC: dict[str, Any] = {
    "key": "basic",
    "name": "Basic",
    "prices": [price("basic_monthly", 999)],
}
PRO: dict[str, Any] = {
    "key": "pro",
    "name": "Pro",
    "description": "For teams",
    "entitlements": ["api", "exports"],
    "limits": {"seats": 5},
    "metadata": {"tier": "gold", "legacy": "yes"},
    "prices": [
        price("pro_monthly", trial_days=14),
        price("pro_yearly", 19990, interval="year", metadata={"note": "best"}),
    ],
}
SPEC = catalog(BASIC, PRO)


def applied(spec: CatalogSpec, store: Store | None = None, **options: Any) -> Store:
    store = store or Store()
    store.apply(diff(store.plans, store.prices, spec, **options))
    return store


def again(store: Store, spec: CatalogSpec, **options: Any) -> CatalogDiff:
    return diff(store.plans, store.prices, spec, **options)


def with_plan(spec: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**copy.deepcopy(spec), **fields}


# -- create ------------------------------------------------------------------------------------
def test_everything_missing_is_created() -> None:
    changes = diff([], [], SPEC)
    assert [c.plan.key for c in changes.create_plans] == ["basic", "pro"]
    assert [(c.plan_key, c.price.lookup_key) for c in changes.create_prices] == [
        ("basic", "basic_monthly"),
        ("pro", "pro_monthly"),
        ("pro", "pro_yearly"),
    ]
    assert changes.summary() == "2 plans to create, 3 prices to create"
    assert len(changes) == 5
    assert [type(c) for c in changes.changes] == [CreatePlan] * 2 + [CreatePrice] * 3


def test_apply_twice_is_one_set_of_changes() -> None:
    store = applied(SPEC)
    assert store.events == ["plan.created"] * 2 + ["price.created"] * 3
    second = again(store, SPEC, archive_missing=True)
    assert not second
    assert second == CatalogDiff()
    assert str(second) == "No changes: the catalog matches the spec."
    store.apply(second)
    assert len(store.events) == 5


def test_the_stored_records_match_the_spec() -> None:
    store = applied(SPEC)
    pro = store.plan("pro")
    assert (pro.name, pro.description, pro.entitlements, pro.limits, pro.metadata) == (
        "Pro",
        "For teams",
        ["api", "exports"],
        {"seats": 5},
        {"tier": "gold", "legacy": "yes"},
    )
    yearly = store.price("pro_yearly")
    assert (yearly.plan_id, yearly.currency, yearly.unit_amount, yearly.interval) == (
        pro.id,
        "USD",
        19990,
        "year",
    )


def test_a_new_price_on_an_existing_plan() -> None:
    store = applied(catalog(BASIC))
    spec = catalog(with_plan(BASIC, prices=[*BASIC["prices"], price("basic_yearly", 9990)]))
    changes = again(store, spec)
    assert changes.changes == (CreatePrice("basic", spec.plans[0].prices[1]),)


def test_the_diff_does_not_touch_its_inputs() -> None:
    store = applied(SPEC)
    plans, prices = list(store.plans), list(store.prices)
    before = [p.model_dump() for p in plans], [p.model_dump() for p in prices]
    diff(plans, prices, catalog(with_plan(PRO, name="Other")), archive_missing=True)
    assert ([p.model_dump() for p in plans], [p.model_dump() for p in prices]) == before


# -- update ------------------------------------------------------------------------------------
def test_plan_fields_are_updated() -> None:
    store = applied(SPEC)
    pro = store.plan("pro")
    changed = with_plan(
        PRO,
        name="Pro 2",
        entitlements=["exports", "api"],
        limits={"seats": 10, "projects": 3},
        metadata={"tier": "platinum", "new": "1"},
    )
    del changed["description"]
    changes = again(store, catalog(BASIC, changed))
    assert changes.changes == (
        UpdatePlan(
            pro.id,
            "pro",
            (
                FieldChange("name", "Pro", "Pro 2"),
                FieldChange("description", "For teams", None),
                FieldChange("entitlements", ["api", "exports"], ["exports", "api"]),
                FieldChange("limits", {"seats": 5}, {"seats": 10, "projects": 3}),
                FieldChange(
                    "metadata", {"tier": "gold", "legacy": "yes"}, {"tier": "platinum", "new": "1"}
                ),
            ),
        ),
    )
    assert changes.update_plans[0].arguments() == {
        "name": "Pro 2",
        "description": None,
        "entitlements": ["exports", "api"],
        "limits": {"seats": 10, "projects": 3},
        "metadata": {"legacy": None, "tier": "platinum", "new": "1"},
    }
    store.apply(changes)
    assert store.events[-1:] == ["plan.updated"]
    assert not again(store, catalog(BASIC, changed))


def test_price_metadata_is_updated_in_place() -> None:
    store = applied(SPEC)
    yearly = store.price("pro_yearly")
    prices = [PRO["prices"][0], price("pro_yearly", 19990, interval="year", metadata={"x": "1"})]
    spec = catalog(BASIC, with_plan(PRO, prices=prices))
    changes = again(store, spec)
    assert changes.changes == (
        UpdatePrice(
            yearly.id, "pro", "pro_yearly", (FieldChange("metadata", {"note": "best"}, {"x": "1"}),)
        ),
    )
    assert changes.update_prices[0].arguments() == {"metadata": {"note": None, "x": "1"}}
    store.apply(changes)
    assert store.price("pro_yearly").id == yearly.id
    assert not again(store, spec)


# -- replace -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "field", "old", "new"),
    [
        ({"unit_amount": 2499}, "unit_amount", 1999, 2499),
        ({"currency": "eur"}, "currency", "USD", "EUR"),
        ({"interval": "week"}, "interval", "month", "week"),
        ({"interval_count": 3}, "interval_count", 1, 3),
        ({"trial_days": 30}, "trial_days", 14, 30),
        ({"trial_days": None}, "trial_days", 14, None),
    ],
)
def test_what_a_price_cannot_change_replaces_it(
    fields: dict[str, Any], field: str, old: Any, new: Any
) -> None:
    store = applied(SPEC)
    monthly = store.price("pro_monthly")
    spec = catalog(
        BASIC,
        with_plan(
            PRO, prices=[{**price("pro_monthly", trial_days=14), **fields}, PRO["prices"][1]]
        ),
    )
    changes = again(store, spec)
    assert changes.changes == (
        ReplacePrice(monthly.id, "pro", spec.plans[1].prices[0], (FieldChange(field, old, new),)),
    )
    store.apply(changes)
    old_price = next(p for p in store.prices if p.id == monthly.id)
    assert (old_price.active, old_price.lookup_key) == (False, None)
    new_price = store.price("pro_monthly")
    assert new_price.id != monthly.id
    assert getattr(new_price, field) == (new.upper() if field == "currency" else new)
    assert store.events[-3:] == ["price.updated", "price.created", "price.archived"]
    assert not again(store, spec, archive_missing=True)


def test_a_price_moved_to_another_plan_is_replaced() -> None:
    store = applied(SPEC)
    monthly = store.price("basic_monthly")
    spec = catalog(
        with_plan(BASIC, prices=[]),
        with_plan(PRO, prices=[*PRO["prices"], price("basic_monthly", 999)]),
    )
    changes = again(store, spec)
    assert len(changes.replace_prices) == 1
    replace = changes.replace_prices[0]
    assert (replace.old_price_id, replace.plan_key) == (monthly.id, "pro")
    assert replace.changes == (FieldChange("plan", "basic", "pro"),)
    store.apply(changes)
    assert store.price("basic_monthly").plan_id == store.plan("pro").id
    assert not again(store, spec)


def test_a_replacement_lists_a_metadata_change_too() -> None:
    store = applied(SPEC)
    spec = catalog(
        BASIC,
        with_plan(
            PRO, prices=[PRO["prices"][0], price("pro_yearly", 17990, interval="year", metadata={})]
        ),
    )
    (replace,) = again(store, spec).changes
    assert isinstance(replace, ReplacePrice)
    assert [c.field for c in replace.changes] == ["unit_amount", "metadata"]


def test_archived_prices_are_not_matched() -> None:
    """A lookup key held only by an archived price is free: the spec's price is created."""
    store = applied(SPEC)
    store.archive_price(store.price("basic_monthly"))
    changes = again(store, SPEC)
    assert changes.changes == (CreatePrice("basic", SPEC.plans[0].prices[0]),)
    store.apply(changes)
    assert not again(store, SPEC)


# -- archive -----------------------------------------------------------------------------------
def test_dropped_plans_and_prices_stay_unless_archive_missing() -> None:
    store = applied(SPEC)
    spec = catalog(with_plan(PRO, prices=PRO["prices"][:1]))
    assert not again(store, spec)
    basic, yearly = store.plan("basic"), store.price("pro_yearly")
    changes = again(store, spec, archive_missing=True)
    assert changes.changes == (
        ArchivePrice(yearly.id, "pro", "pro_yearly"),
        ArchivePlan(basic.id, "basic", (store.price("basic_monthly").id,)),
    )
    store.apply(changes)
    assert not store.plan("basic").active
    assert [p.lookup_key for p in store.prices if p.active] == ["pro_monthly"]
    assert store.events[-3:] == ["price.archived", "price.archived", "plan.archived"]
    assert not again(store, spec, archive_missing=True)
    assert not again(store, spec)


def test_prices_without_a_lookup_key_are_archived_with_archive_missing() -> None:
    store = applied(SPEC)
    store.prices.append(
        store.price("pro_monthly").model_copy(update={"id": "price_extra", "lookup_key": None})
    )
    changes = again(store, SPEC, archive_missing=True)
    assert changes.changes == (ArchivePrice("price_extra", "pro", None),)
    assert "- price price_extra on plan pro: archive" in str(changes)


def test_a_dropped_plan_keeps_the_price_the_spec_moves_away() -> None:
    store = applied(SPEC)
    basic_monthly = store.price("basic_monthly")
    spec = catalog(with_plan(PRO, prices=[*PRO["prices"], price("basic_monthly", 999)]))
    changes = again(store, spec, archive_missing=True)
    assert changes.archive_plans == (ArchivePlan(store.plan("basic").id, "basic", ()),)
    assert [r.old_price_id for r in changes.replace_prices] == [basic_monthly.id]
    store.apply(changes)
    assert not again(store, spec, archive_missing=True)


def test_a_spec_naming_an_archived_plan_is_a_conflict() -> None:
    store = applied(SPEC)
    store.apply(again(store, catalog(PRO), archive_missing=True))
    with pytest.raises(ConflictError) as raised:
        again(store, SPEC)
    assert raised.value.code == "plan_archived"
    assert "basic" in str(raised.value)


# -- output ------------------------------------------------------------------------------------
def test_text_rendering() -> None:
    store = applied(SPEC)
    spec = catalog(
        with_plan(BASIC, name="Basic+", prices=[price("basic_monthly", 1299)]),
        {
            "key": "team",
            "name": "Team",
            "entitlements": ["sso"],
            "limits": {"seats": 50},
            "prices": [price("team_q", 5000, interval_count=3, currency="jpy", trial_days=7)],
        },
    )
    text = str(again(store, spec, archive_missing=True))
    basic, monthly = store.plan("basic"), store.price("basic_monthly")
    pro = store.plan("pro")
    assert text.splitlines() == [
        "Catalog changes: 1 plan to create, 1 plan to update, 1 plan to archive, "
        "1 price to create, 1 price to replace.",
        "+ plan team",
        '    name: "Team"',
        '    entitlements: ["sso"]',
        "    limits: {seats=50}",
        f"~ plan basic ({basic.id})",
        '    name: "Basic" -> "Basic+"',
        "+ price team_q on plan team: 5000 JPY every 3 months, 7-day trial",
        f"± price basic_monthly ({monthly.id}): replace with a new price on plan basic: "
        "12.99 USD every month; the old price is archived",
        "    unit_amount: 999 -> 1299",
        f"- plan pro ({pro.id}): archive, with its 2 active prices",
    ]


def test_metadata_rendering() -> None:
    store = applied(SPEC)
    spec = catalog(BASIC, with_plan(PRO, metadata={"tier": "silver", "b": "x y"}))
    assert '    metadata: -"legacy", ~"tier": "gold" -> "silver", +"b"="x y"' in str(
        again(store, spec)
    )


def test_json_rendering() -> None:
    store = applied(catalog(BASIC))
    spec = catalog(with_plan(BASIC, metadata={"a": "1"}, prices=[price("basic_monthly", 1)]), PRO)
    data = again(store, spec).as_dict()
    json.dumps(data)
    assert (
        data["summary"]
        == "1 plan to create, 1 plan to update, 2 prices to create, 1 price to replace"
    )
    actions = [change["action"] for change in data["changes"]]
    assert actions == [
        "create_plan",
        "update_plan",
        "create_price",
        "create_price",
        "replace_price",
    ]
    create = data["changes"][0]
    assert create["plan"]["key"] == "pro"
    assert "prices" not in create["plan"]
    assert data["changes"][1]["changes"] == [{"field": "metadata", "old": {}, "new": {"a": "1"}}]
    assert data["changes"][4]["price"]["unit_amount"] == 1


def test_metadata_patch() -> None:
    assert metadata_patch({"a": "1", "b": "2"}, {"b": "3", "c": "4"}) == {
        "a": None,
        "b": "3",
        "c": "4",
    }
    assert metadata_patch({"a": "1"}, {"a": "1"}) == {}
