"""The declarative catalog: the plans and prices a team wants, as data.

The same structure as a dict or a TOML file::

    [[plans]]
    key = "pro"
    name = "Pro"
    entitlements = ["api", "exports"]
    limits = { seats = 5 }

    [[plans.prices]]
    lookup_key = "pro_monthly"
    currency = "usd"
    unit_amount = 1999
    interval = "month"

Plans are identified by ``key`` and prices by ``lookup_key`` (required here). Everything is
checked with the rules of ``plans.create`` / ``prices.create``, every problem reported at once
under its path (``plans[0].prices[1].unit_amount``); unknown keys, a repeated plan key and a
repeated lookup key are errors too.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qzpay.catalog import validation as v
from qzpay.catalog.inputs import PlanInput, PriceInput, check_plan, check_price
from qzpay.catalog.models import Interval
from qzpay.errors import ValidationError
from qzpay.limits import MAX_METADATA_KEYS

PLAN_KEYS = ("key", "name", "description", "entitlements", "limits", "metadata", "prices")
PRICE_KEYS = (
    "lookup_key",
    "currency",
    "unit_amount",
    "interval",
    "interval_count",
    "trial_days",
    "metadata",
)


@dataclass(frozen=True)
class PriceSpec:
    """One price of a plan in a spec: a price's fields, ``lookup_key`` required."""

    lookup_key: str
    currency: str
    unit_amount: int
    interval: Interval
    interval_count: int = 1
    trial_days: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanSpec:
    key: str
    name: str
    description: str | None = None
    entitlements: tuple[str, ...] = ()
    limits: Mapping[str, int] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    prices: tuple[PriceSpec, ...] = ()


@dataclass(frozen=True)
class CatalogSpec:
    plans: tuple[PlanSpec, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The spec in the dict form :func:`parse_spec` reads (optional fields left out)."""
        return {"plans": [_plan_dict(plan) for plan in self.plans]}


def parse_spec(data: object, *, metadata_limit: int = MAX_METADATA_KEYS) -> CatalogSpec:
    """A spec from its dict form; one ValidationError listing every problem.

    ``metadata_limit``: 49 when a provider is configured (it holds qzpay's id in one of the
    50 metadata slots there), as for ``plans.create``."""
    problems = v.Problems()
    spec = _catalog(data, problems, metadata_limit)
    problems.raise_if_any()
    return spec


def loads_spec(text: str, *, metadata_limit: int = MAX_METADATA_KEYS) -> CatalogSpec:
    """A spec from TOML text (``[[plans]]`` tables with ``[[plans.prices]]``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(
            [{"field": "catalog", "code": "invalid_toml", "message": f"not valid TOML: {exc}"}]
        ) from None
    return parse_spec(data, metadata_limit=metadata_limit)


def load_spec(path: str | Path, *, metadata_limit: int = MAX_METADATA_KEYS) -> CatalogSpec:
    """A spec from a TOML file (OSError if it cannot be read)."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(
            [{"field": "catalog", "code": "invalid_toml", "message": "not UTF-8 text"}]
        ) from None
    return loads_spec(text, metadata_limit=metadata_limit)


# -- checking ----------------------------------------------------------------------------------
def _unknown_keys(
    data: Mapping[Any, Any], allowed: tuple[str, ...], problems: v.Problems, prefix: str
) -> None:
    for key in data:
        if key not in allowed:
            name = key if isinstance(key, str) else repr(key)
            problems.add(f"{prefix}{name}", "unknown_field", f"unknown field {name!r}")


def _list(value: object, problems: v.Problems, path: str) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    problems.add(path, "invalid_type", f"must be a list, not {type(value).__name__}")
    return []


def _catalog(data: object, problems: v.Problems, metadata_limit: int) -> CatalogSpec:
    if not isinstance(data, Mapping):
        problems.add("catalog", "invalid_type", f"must be a dict, not {type(data).__name__}")
        return CatalogSpec()
    _unknown_keys(data, ("plans",), problems, "")
    if "plans" not in data:
        problems.add("plans", "required", "a catalog lists its plans (an empty list is allowed)")
        return CatalogSpec()
    plans: list[PlanSpec] = []
    keys: set[str] = set()
    lookup_keys: set[str] = set()
    for index, item in enumerate(_list(data["plans"], problems, "plans")):
        path = f"plans[{index}]"
        plan = _plan(item, problems, path, metadata_limit, lookup_keys)
        if plan is None:
            continue
        if plan.key in keys:
            problems.add(f"{path}.key", "duplicate_key", f"plan key {plan.key!r} is repeated")
            continue
        keys.add(plan.key)
        plans.append(plan)
    return CatalogSpec(tuple(plans))


def _plan(
    item: object, problems: v.Problems, path: str, metadata_limit: int, lookup_keys: set[str]
) -> PlanSpec | None:
    if not isinstance(item, Mapping):
        problems.add(path, "invalid_type", f"must be a table (dict), not {type(item).__name__}")
        return None
    _unknown_keys(item, PLAN_KEYS, problems, f"{path}.")
    fields = {key: value for key, value in item.items() if key in PLAN_KEYS and key != "prices"}
    checked = check_plan(fields, problems, prefix=f"{path}.", metadata_limit=metadata_limit)
    prices: list[PriceSpec] = []
    for index, raw in enumerate(_list(item.get("prices", []), problems, f"{path}.prices")):
        price_path = f"{path}.prices[{index}]"
        price = _price(raw, problems, price_path, metadata_limit)
        if price is None:
            continue
        if price.lookup_key in lookup_keys:
            problems.add(
                f"{price_path}.lookup_key",
                "duplicate_lookup_key",
                f"lookup key {price.lookup_key!r} is used by another price of the catalog",
            )
            continue
        lookup_keys.add(price.lookup_key)
        prices.append(price)
    if checked is None:
        return None
    return _plan_spec(checked, tuple(prices))


def _price(item: object, problems: v.Problems, path: str, metadata_limit: int) -> PriceSpec | None:
    if not isinstance(item, Mapping):
        problems.add(path, "invalid_type", f"must be a table (dict), not {type(item).__name__}")
        return None
    _unknown_keys(item, PRICE_KEYS, problems, f"{path}.")
    checked = check_price(
        {key: value for key, value in item.items() if key in PRICE_KEYS},
        problems,
        prefix=f"{path}.",
        metadata_limit=metadata_limit,
        lookup_key_required=True,
    )
    if checked is None or checked.lookup_key is None:
        return None
    return _price_spec(checked)


def _plan_spec(plan: PlanInput, prices: tuple[PriceSpec, ...]) -> PlanSpec:
    return PlanSpec(**{**vars(plan), "entitlements": tuple(plan.entitlements)}, prices=prices)


def _price_spec(price: PriceInput) -> PriceSpec:
    """The checked price as a spec's (the same fields; ``lookup_key`` is required there)."""
    assert price.lookup_key is not None
    return PriceSpec(**vars(price))


def _plan_dict(plan: PlanSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"key": plan.key, "name": plan.name}
    if plan.description is not None:
        out["description"] = plan.description
    out |= {
        "entitlements": list(plan.entitlements),
        "limits": dict(plan.limits),
        "metadata": dict(plan.metadata),
        "prices": [_price_dict(price) for price in plan.prices],
    }
    return out


def _price_dict(price: PriceSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "lookup_key": price.lookup_key,
        "currency": price.currency,
        "unit_amount": price.unit_amount,
        "interval": price.interval,
        "interval_count": price.interval_count,
        "metadata": dict(price.metadata),
    }
    if price.trial_days is not None:
        out["trial_days"] = price.trial_days
    return out
