"""Whole-call validation for subscriptions and entitlements: each function checks every
argument of one call and raises one ValidationError listing all the problems, or returns the
clean values (the catalog's rules and collector, :mod:`qzpay.catalog.validation`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from qzpay.catalog import validation as v
from qzpay.catalog.inputs import NO_ARGUMENTS, check_new_metadata
from qzpay.customers.validation import check_provider
from qzpay.limits import MAX_METADATA_KEYS, MAX_QUANTITY, MAX_TRIAL_DAYS
from qzpay.subscriptions.models import STATUSES, Proration, SubscriptionStatus

PRORATIONS: tuple[Proration, ...] = get_args(Proration)


@dataclass(frozen=True)
class NewSubscription:
    customer_id: str
    price_id: str
    quantity: int
    trial_days: int | None
    provider: str | None
    metadata: dict[str, str]
    idempotency_key: str | None


@dataclass(frozen=True)
class SubscriptionQuery:
    customer_id: str | None
    status: SubscriptionStatus | None
    plan_id: str | None
    price_id: str | None


def _quantity(value: object, problems: v.Problems, field: str = "quantity") -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(field, "invalid_type", f"must be an integer, not {type(value).__name__}")
        return None
    if not 1 <= value <= MAX_QUANTITY:
        problems.add(field, "out_of_range", f"must be from 1 to {MAX_QUANTITY}")
        return None
    return value


def _trial_days(value: object, problems: v.Problems) -> int | None:
    """None (the price's trial), 0 (no trial) or 1 to MAX_TRIAL_DAYS days."""
    if value is None or (value == 0 and not isinstance(value, bool) and isinstance(value, int)):
        return value
    return v.check_trial_days(value, problems)


def _status(value: object, problems: v.Problems) -> SubscriptionStatus | None:
    if value is None:
        return None
    for status in STATUSES:
        if value == status and isinstance(value, str):
            return status
    problems.add("status", "invalid_status", "must be one of " + ", ".join(STATUSES))
    return None


def create(
    customer_id: object,
    price_id: object,
    *,
    quantity: object,
    trial_days: object,
    provider: object,
    metadata: object,
    idempotency_key: object,
    unknown: Mapping[str, object] = NO_ARGUMENTS,
    metadata_limit: int = MAX_METADATA_KEYS,
) -> NewSubscription:
    """``subscriptions.create``'s arguments."""
    problems = v.Problems()
    problems.unknown_arguments(unknown)
    customer = v.check_id(customer_id, problems, "customer_id")
    price = v.check_id(price_id, problems, "price_id")
    count = _quantity(quantity, problems)
    trial = _trial_days(trial_days, problems)
    name = None if provider is None else check_provider(provider, problems)
    checked_metadata = check_new_metadata(metadata, problems, limit=metadata_limit)
    key = v.check_idempotency_key(idempotency_key, problems)
    problems.raise_if_any()
    assert customer is not None
    assert price is not None
    assert count is not None
    return NewSubscription(customer, price, count, trial, name, checked_metadata, key)


def change_price(
    price_id: object, *, quantity: object, proration: object, unknown: Mapping[str, object]
) -> tuple[str, int | None, Proration]:
    """``subscriptions.change_price``'s arguments (``quantity`` None keeps the current one)."""
    problems = v.Problems()
    problems.unknown_arguments(unknown)
    price = v.check_id(price_id, problems, "price_id")
    count = None if quantity is None else _quantity(quantity, problems)
    chosen: Proration = "create_prorations"
    if proration not in PRORATIONS or not isinstance(proration, str):
        problems.add("proration", "invalid_proration", "must be one of " + ", ".join(PRORATIONS))
    else:
        chosen = proration
    problems.raise_if_any()
    assert price is not None
    return price, count, chosen


def check_flag(value: object, field: str) -> bool:
    problems = v.Problems()
    if not isinstance(value, bool):
        problems.add(field, "invalid_type", f"must be True or False, not {type(value).__name__}")
    problems.raise_if_any()
    return bool(value)


def query(
    *,
    customer_id: object,
    status: object,
    plan_id: object,
    price_id: object,
    problems: v.Problems,
) -> SubscriptionQuery:
    """The filters of ``list`` / ``iterate`` (problems collected, not raised)."""
    ids: dict[str, Any] = {}
    for field, value in (
        ("customer_id", customer_id),
        ("plan_id", plan_id),
        ("price_id", price_id),
    ):
        ids[field] = None if value is None else v.check_id(value, problems, field)
    return SubscriptionQuery(
        customer_id=ids["customer_id"],
        status=_status(status, problems),
        plan_id=ids["plan_id"],
        price_id=ids["price_id"],
    )


def entitlement_query(customer_id: object, key: object, field: str = "key") -> tuple[str, str]:
    """A customer id and an entitlement key (or limit name): a slug, as plans define them."""
    problems = v.Problems()
    customer = v.check_id(customer_id, problems, "customer_id")
    slug = v.check_key(key, problems, field)
    problems.raise_if_any()
    assert customer is not None
    assert slug is not None
    return customer, slug


def customer_only(customer_id: object) -> str:
    problems = v.Problems()
    customer = v.check_id(customer_id, problems, "customer_id")
    problems.raise_if_any()
    assert customer is not None
    return customer


__all__ = ["MAX_TRIAL_DAYS", "NewSubscription", "SubscriptionQuery"]


def check_provider_name(value: object) -> str:
    problems = v.Problems()
    name = check_provider(value, problems)
    problems.raise_if_any()
    assert name is not None
    return name
