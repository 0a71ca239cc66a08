"""Whole-call validation for the catalog's writes and reads: each function checks every
argument of one call (``plans.create``, ``prices.update``, ``prices.list``...) and raises one
ValidationError listing all the problems, or returns the clean values.

Unknown keyword arguments are reported with the rest (and make the error a TypeError too, as
for customers). ``metadata_limit`` is ``MAX_METADATA_KEYS``, less one when a provider holds
qzpay's id in one of the record's metadata slots there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from qzpay._unset import UNSET
from qzpay.catalog import validation as v
from qzpay.catalog.models import Interval
from qzpay.catalog.reads import check_page_size
from qzpay.limits import MAX_METADATA_KEYS
from qzpay.storage.base import PlanFilter, PriceFilter

NO_ARGUMENTS: Mapping[str, object] = {}
T = TypeVar("T")


@dataclass(frozen=True)
class PlanInput:
    key: str
    name: str
    description: str | None
    entitlements: list[str]
    limits: dict[str, int]
    metadata: dict[str, str]


@dataclass(frozen=True)
class PriceInput:
    currency: str
    unit_amount: int
    interval: Interval
    interval_count: int
    trial_days: int | None
    lookup_key: str | None
    metadata: dict[str, str]


def check_new_metadata(
    value: object, problems: v.Problems, *, limit: int, field: str = "metadata"
) -> dict[str, str]:
    checked = v.check_plan_metadata(value, problems, allow_none_values=False, field=field)
    metadata = {key: item for key, item in checked.items() if item is not None}
    if len(metadata) > limit:
        problems.add(field, "too_many_keys", f"at most {limit} keys are allowed")
    return metadata


def _present(fields: Mapping[str, Any], name: str, problems: v.Problems, prefix: str) -> bool:
    """Whether a required field is there; reported as ``required`` when it is not."""
    if name in fields:
        return True
    problems.add(f"{prefix}{name}", "required", f"{name} is required")
    return False


def check_plan(
    fields: Mapping[str, Any], problems: v.Problems, *, prefix: str = "", metadata_limit: int
) -> PlanInput | None:
    """A new plan's fields under ``prefix`` + name: ``key`` and ``name`` required, the
    others default when absent."""
    key = name = None
    if _present(fields, "key", problems, prefix):
        key = v.check_key(fields["key"], problems, f"{prefix}key")
    if _present(fields, "name", problems, prefix):
        name = v.check_plan_name(fields["name"], problems, f"{prefix}name")
    description = v.check_description(fields.get("description"), problems, f"{prefix}description")
    entitlements = v.check_entitlements(
        fields.get("entitlements"), problems, f"{prefix}entitlements"
    )
    limits = v.check_limits(fields.get("limits"), problems, f"{prefix}limits")
    metadata = check_new_metadata(
        fields.get("metadata"), problems, limit=metadata_limit, field=f"{prefix}metadata"
    )
    if key is None or name is None:
        return None
    return PlanInput(key, name, description, entitlements, limits, metadata)


def check_price(
    fields: Mapping[str, Any],
    problems: v.Problems,
    *,
    prefix: str = "",
    metadata_limit: int,
    lookup_key_required: bool = False,
) -> PriceInput | None:
    """A new price's fields under ``prefix`` + name: ``currency``, ``unit_amount`` and
    ``interval`` required, the others default when absent (``interval_count`` to 1)."""
    currency = amount = interval = None
    if _present(fields, "currency", problems, prefix):
        currency = v.check_currency(fields["currency"], problems, f"{prefix}currency")
    if _present(fields, "unit_amount", problems, prefix):
        amount = v.check_unit_amount(fields["unit_amount"], problems, f"{prefix}unit_amount")
    if _present(fields, "interval", problems, prefix):
        interval = v.check_interval(fields["interval"], problems, f"{prefix}interval")
    count = v.check_interval_count(
        fields.get("interval_count", 1), interval, problems, f"{prefix}interval_count"
    )
    trial_days = v.check_trial_days(fields.get("trial_days"), problems, f"{prefix}trial_days")
    lookup_key = v.check_lookup_key(
        fields.get("lookup_key"), problems, f"{prefix}lookup_key", required=lookup_key_required
    )
    metadata = check_new_metadata(
        fields.get("metadata"), problems, limit=metadata_limit, field=f"{prefix}metadata"
    )
    if currency is None or amount is None or interval is None or count is None:
        return None
    return PriceInput(currency, amount, interval, count, trial_days, lookup_key, metadata)


# -- one call each -----------------------------------------------------------------------------
def plan_create(
    key: object,
    name: object,
    *,
    description: object = None,
    entitlements: object = (),
    limits: object = None,
    metadata: object = None,
    idempotency_key: object = None,
    unknown: Mapping[str, object] = NO_ARGUMENTS,
    metadata_limit: int = MAX_METADATA_KEYS,
) -> tuple[PlanInput, str | None]:
    """``plans.create``'s arguments: the plan's fields and the idempotency key."""
    problems = v.Problems()
    problems.unknown_arguments(unknown)
    fields = {
        "key": key,
        "name": name,
        "description": description,
        "entitlements": entitlements,
        "limits": limits,
        "metadata": metadata,
    }
    plan = check_plan(fields, problems, metadata_limit=metadata_limit)
    return _created(plan, idempotency_key, problems)


def plan_update(
    *,
    name: object = UNSET,
    description: object = UNSET,
    entitlements: object = UNSET,
    limits: object = UNSET,
    metadata: object = UNSET,
    unknown: Mapping[str, object] = NO_ARGUMENTS,
) -> tuple[dict[str, Any], dict[str, str | None]]:
    """``plans.update``'s arguments: the fields to set (entitlements and limits replaced whole,
    ``description=None`` clears it) and the metadata patch (``None`` removes a key); apply the
    patch with :func:`merge_metadata` and check its size with :func:`check_metadata_size`."""
    given = {
        "name": (name, v.check_plan_name),
        "description": (description, v.check_description),
        "entitlements": (entitlements, v.check_entitlements),
        "limits": (limits, v.check_limits),
    }
    return _update(given, metadata, unknown)


def price_create(
    plan_id: object,
    *,
    currency: object,
    unit_amount: object,
    interval: object,
    interval_count: object = 1,
    trial_days: object = None,
    lookup_key: object = None,
    metadata: object = None,
    idempotency_key: object = None,
    unknown: Mapping[str, object] = NO_ARGUMENTS,
    metadata_limit: int = MAX_METADATA_KEYS,
) -> tuple[str, PriceInput, str | None]:
    """``prices.create``'s arguments: the plan id, the price's fields, the idempotency key."""
    problems = v.Problems()
    problems.unknown_arguments(unknown)
    plan = v.check_id(plan_id, problems, "plan_id")
    fields = {
        "currency": currency,
        "unit_amount": unit_amount,
        "interval": interval,
        "interval_count": interval_count,
        "trial_days": trial_days,
        "lookup_key": lookup_key,
        "metadata": metadata,
    }
    price, idempotency = _created(
        check_price(fields, problems, metadata_limit=metadata_limit), idempotency_key, problems
    )
    assert plan is not None
    return plan, price, idempotency


def _created(
    record: T | None, idempotency_key: object, problems: v.Problems
) -> tuple[T, str | None]:
    """A create's checked fields (None when they had problems) and its idempotency key, or
    one ValidationError listing every problem of the call."""
    key = v.check_idempotency_key(idempotency_key, problems)
    problems.raise_if_any()
    assert record is not None
    return record, key


def price_update(
    *,
    lookup_key: object = UNSET,
    metadata: object = UNSET,
    unknown: Mapping[str, object] = NO_ARGUMENTS,
) -> tuple[dict[str, Any], dict[str, str | None]]:
    """``prices.update``'s arguments: ``{"lookup_key": ...}`` if given (None removes it) and
    the metadata patch."""
    return _update({"lookup_key": (lookup_key, v.check_lookup_key)}, metadata, unknown)


def _update(
    given: Mapping[str, tuple[object, Callable[[object, v.Problems], Any]]],
    metadata: object,
    unknown: Mapping[str, object],
) -> tuple[dict[str, Any], dict[str, str | None]]:
    """An update's arguments: ``given`` maps a field to its argument and check (an argument
    left UNSET is not changed), then the metadata patch (``None`` removes a key)."""
    problems = v.Problems()
    problems.unknown_arguments(unknown)
    changes = {
        field: check(value, problems)
        for field, (value, check) in given.items()
        if value is not UNSET
    }
    patch: dict[str, str | None] = {}
    if metadata is not UNSET:
        if metadata is None:
            problems.add("metadata", "invalid_type", "must be a dict, not NoneType")
        else:
            patch = v.check_plan_metadata(metadata, problems, allow_none_values=True)
    problems.raise_if_any()
    return changes, patch


def merge_metadata(
    current: Mapping[str, str], patch: Mapping[str, str | None], *, limit: int
) -> dict[str, str]:
    """``current`` with ``patch`` applied (None removes a key); a ValidationError if the
    result has more than ``limit`` keys."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    problems = v.Problems()
    v.check_metadata_size(merged, problems, limit=limit)
    problems.raise_if_any()
    return merged


# -- reads: the filters of ``list`` (a page) and ``iterate`` (keyset pages) -----------------
def page_problems(limit: object, offset: object, unknown: Mapping[str, object]) -> v.Problems:
    """What is wrong with a ``list`` call's unknown arguments and page."""
    problems = v.Problems()
    problems.unknown_arguments(unknown)
    v.check_page(limit, offset, problems)
    return problems


def walk_problems(page_size: object, unknown: Mapping[str, object]) -> v.Problems:
    """What is wrong with an ``iterate`` call's unknown arguments and page size."""
    problems = v.Problems()
    check_page_size(page_size, unknown, problems)
    return problems


def plan_filter(problems: v.Problems, *, active: object) -> PlanFilter:
    """The plans' filter, or one ValidationError with ``problems`` (the call's others)."""
    active_ = v.check_active(active, problems)
    problems.raise_if_any()
    return PlanFilter(active=active_)


def price_filter(
    problems: v.Problems, *, plan_id: object, active: object, currency: object
) -> PriceFilter:
    """The prices' filters (currency in any case), or one ValidationError with ``problems``."""
    plan = None if plan_id is None else v.check_id(plan_id, problems, "plan_id")
    active_ = v.check_active(active, problems)
    code = None if currency is None else v.check_currency(currency, problems)
    problems.raise_if_any()
    return PriceFilter(plan_id=plan, active=active_, currency=code)


def plan_list(
    *, active: object, limit: object, offset: object, unknown: Mapping[str, object]
) -> bool | None:
    """``plans.list``'s filter (``active``), after checking the page."""
    return plan_filter(page_problems(limit, offset, unknown), active=active).active


def price_list(
    *,
    plan_id: object,
    active: object,
    currency: object,
    limit: object,
    offset: object,
    unknown: Mapping[str, object],
) -> PriceFilter:
    """``prices.list``'s filters (currency in any case), after checking the page."""
    problems = page_problems(limit, offset, unknown)
    return price_filter(problems, plan_id=plan_id, active=active, currency=currency)


def plan_scan_filters(
    active: object, page_size: object, unknown: Mapping[str, object]
) -> PlanFilter:
    """``plans.iterate``'s filter, after checking the page size."""
    return plan_filter(walk_problems(page_size, unknown), active=active)


def price_scan_filters(
    plan_id: object,
    active: object,
    currency: object,
    page_size: object,
    unknown: Mapping[str, object],
) -> PriceFilter:
    """``prices.iterate``'s filters, after checking the page size."""
    problems = walk_problems(page_size, unknown)
    return price_filter(problems, plan_id=plan_id, active=active, currency=currency)
