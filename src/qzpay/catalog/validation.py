"""Every input rule for plans and prices, in one place.

Each check adds its problems to a :class:`Problems` (the customers' collector: every problem of
a call is reported at once, the first ``MAX_FIELD_ERRORS`` listed and the rest counted) under
the argument's name (``key``, ``unit_amount``, ``entitlements[2]``, ``metadata.x``,
``limits.seats``) or, for a catalog spec, under its path (``plans[0].prices[1].currency``).
Values are never coerced: ``"1999"`` or ``19.99`` is not an amount and ``True`` is not an
integer. The limits are Stripe's, so anything accepted here can be synced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from qzpay.catalog.currencies import normalize
from qzpay.catalog.models import INTERVALS, Interval
from qzpay.customers.validation import (
    Problems,
    check_idempotency_key,
    check_metadata,
    check_metadata_size,
    check_page,
    check_text,
    text_problem,
)
from qzpay.limits import (
    MAX_DESCRIPTION_LENGTH,
    MAX_ENTITLEMENTS,
    MAX_ID_LENGTH,
    MAX_LIMIT_VALUE,
    MAX_LOOKUP_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PLAN_LIMITS,
    MAX_PRICE_PERIOD,
    MAX_SLUG_LENGTH,
    MAX_TRIAL_DAYS,
    MAX_UNIT_AMOUNT,
)

__all__ = [
    "RESERVED_METADATA_KEYS",
    "SLUG",
    "Problems",
    "check_active",
    "check_currency",
    "check_description",
    "check_entitlements",
    "check_id",
    "check_idempotency_key",
    "check_interval",
    "check_interval_count",
    "check_key",
    "check_limits",
    "check_lookup_key",
    "check_metadata_size",
    "check_page",
    "check_plan_metadata",
    "check_plan_name",
    "check_trial_days",
    "check_unit_amount",
]

SLUG: Final = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{MAX_SLUG_LENGTH - 1}}}")
_SLUG_RULE = (
    f"must be 1 to {MAX_SLUG_LENGTH} lowercase letters, digits, '_' or '-', "
    "starting with a letter or digit"
)
# Stored at providers to find our records: never user metadata (qzpay_customer_id is refused
# by the customers' metadata check already).
RESERVED_METADATA_KEYS: Final = ("qzpay_plan_id", "qzpay_price_id", "qzpay_subscription_id")


def _type_name(value: object) -> str:
    return type(value).__name__


def _is_int(value: object) -> bool:
    """An integer, and not a bool (``True`` is an int to Python, never to qzpay)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _slug(value: object, problems: Problems, field: str, what: str = "") -> str | None:
    if not isinstance(value, str):
        problems.add(field, "invalid_type", f"{what}must be a string, not {_type_name(value)}")
        return None
    if not SLUG.fullmatch(value):
        problems.add(field, "invalid_slug", f"{what}{_SLUG_RULE}")
        return None
    return value


# -- plans -------------------------------------------------------------------------------------
def check_key(value: object, problems: Problems, field: str = "key") -> str | None:
    """A plan's stable key: a slug such as ``"pro"`` or ``"team-2024"``."""
    return _slug(value, problems, field)


def check_plan_name(value: object, problems: Problems, field: str = "name") -> str | None:
    """Required, trimmed, not blank."""
    if value is None:
        problems.add(field, "required", "a plan needs a name")
        return None
    return _text(value, problems, field, MAX_NAME_LENGTH, "")


def check_description(value: object, problems: Problems, field: str = "description") -> str | None:
    """Optional, trimmed; blank is an error (pass None to have no description)."""
    if value is None:
        return None
    return _text(value, problems, field, MAX_DESCRIPTION_LENGTH, " or None")


def _text(
    value: object,
    problems: Problems,
    field: str,
    limit: int,
    alt: str,
    *,
    trim: bool = True,
    blank: str = "must not be blank",
) -> str | None:
    """A string of safe text, not blank, at most ``limit`` characters: trimmed, or with
    ``trim=False`` kept exactly as given. ``alt`` completes "must be a string"."""
    if not isinstance(value, str):
        problems.add(field, "invalid_type", f"must be a string{alt}, not {_type_name(value)}")
        return None
    if not check_text(value, problems, field):
        return None
    text = value.strip() if trim else value
    if not value.strip():
        problems.add(field, "blank", blank)
        return None
    if len(text) > limit:
        problems.add(field, "too_long", f"must be at most {limit} characters")
        return None
    return text


def check_entitlements(value: object, problems: Problems, field: str = "entitlements") -> list[str]:
    """A list (or tuple) of slugs; duplicates are dropped, the first occurrence's order kept,
    and at most ``MAX_ENTITLEMENTS`` remain."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        problems.add(field, "invalid_type", f"must be a list of strings, not {_type_name(value)}")
        return []
    seen: dict[str, None] = {}
    for index, item in enumerate(value):
        slug = _slug(item, problems, f"{field}[{index}]")
        if slug is not None:
            seen.setdefault(slug, None)
    if len(seen) > MAX_ENTITLEMENTS:
        problems.add(field, "too_many_items", f"at most {MAX_ENTITLEMENTS} distinct entitlements")
    return list(seen)


def check_limits(value: object, problems: Problems, field: str = "limits") -> dict[str, int]:
    """``{slug: integer from 0}``, at most ``MAX_PLAN_LIMITS`` keys."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add(field, "invalid_type", f"must be a dict, not {_type_name(value)}")
        return {}
    result: dict[str, int] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            problems.add(field, "invalid_slug", f"keys must be strings, not {_type_name(key)}")
            continue
        path = f"{field}.{key}"
        if _slug(key, problems, path, "keys ") is None:
            continue
        if not _is_int(item):
            problems.add(path, "invalid_type", f"must be an integer, not {_type_name(item)}")
        elif not 0 <= item <= MAX_LIMIT_VALUE:
            problems.add(path, "out_of_range", f"must be an integer from 0 to {MAX_LIMIT_VALUE}")
        else:
            result[key] = item
    if len(value) > MAX_PLAN_LIMITS:
        problems.add(field, "too_many_keys", f"at most {MAX_PLAN_LIMITS} keys are allowed")
    return result


def check_plan_metadata(
    value: object, problems: Problems, *, allow_none_values: bool, field: str = "metadata"
) -> dict[str, str | None]:
    """The customers' metadata rules, with qzpay's provider keys reserved too. None is {}."""
    if value is None:
        return {}
    checked = check_metadata(value, problems, allow_none_values=allow_none_values, field=field)
    for key in RESERVED_METADATA_KEYS:
        if key in checked:
            del checked[key]
            problems.add(f"{field}.{key}", "reserved_key", f"{key!r} is reserved for qzpay")
    return checked


# -- prices ------------------------------------------------------------------------------------
def check_currency(value: object, problems: Problems, field: str = "currency") -> str | None:
    """An ISO 4217 code in any case, returned upper-case."""
    if not isinstance(value, str):
        problems.add(field, "invalid_type", f"must be a string, not {_type_name(value)}")
        return None
    code = normalize(value)
    if code is None:
        problems.add(
            field, "invalid_currency", "must be an ISO 4217 currency code, such as USD or BRL"
        )
    return code


def check_unit_amount(value: object, problems: Problems, field: str = "unit_amount") -> int | None:
    """An integer of minor units (cents) from 0 to ``MAX_UNIT_AMOUNT``; never a float or text."""
    return _int_in(
        value,
        problems,
        field,
        (0, MAX_UNIT_AMOUNT),
        "an integer in the currency's minor unit (1999 for 19.99)",
        f"must be from 0 to {MAX_UNIT_AMOUNT}",
    )


def _int_in(
    value: object,
    problems: Problems,
    field: str,
    bounds: tuple[int, int],
    kind: str,
    out_of_range: str,
) -> int | None:
    """An integer (never a bool, float or text) within ``bounds``, both included; ``kind``
    completes "must be", ``out_of_range`` is the message of a value outside them."""
    if not _is_int(value):
        problems.add(field, "invalid_type", f"must be {kind}, not {_type_name(value)}")
        return None
    assert isinstance(value, int)
    if not bounds[0] <= value <= bounds[1]:
        problems.add(field, "out_of_range", out_of_range)
        return None
    return value


def check_interval(value: object, problems: Problems, field: str = "interval") -> Interval | None:
    if not isinstance(value, str):
        problems.add(field, "invalid_type", f"must be a string, not {_type_name(value)}")
        return None
    for interval in INTERVALS:
        if value == interval:
            return interval
    problems.add(field, "invalid_interval", "must be one of " + ", ".join(INTERVALS))
    return None


def check_interval_count(
    value: object, interval: Interval | None, problems: Problems, field: str = "interval_count"
) -> int | None:
    """At least 1, with the whole period at most three years (1,095 days, 156 weeks,
    36 months or 3 years), Stripe's rule."""
    if not _is_int(value):
        problems.add(field, "invalid_type", f"must be an integer, not {_type_name(value)}")
        return None
    assert isinstance(value, int)
    if value < 1:
        problems.add(field, "out_of_range", "must be at least 1")
        return None
    if interval is not None and value > MAX_PRICE_PERIOD[interval]:
        most = MAX_PRICE_PERIOD[interval]
        problems.add(
            field,
            "period_too_long",
            f"the billing period must be at most 3 years ({most} {interval}s)",
        )
        return None
    return value


def check_trial_days(value: object, problems: Problems, field: str = "trial_days") -> int | None:
    if value is None:
        return None
    out_of_range = f"must be from 1 to {MAX_TRIAL_DAYS} (or None)"
    return _int_in(value, problems, field, (1, MAX_TRIAL_DAYS), "an integer or None", out_of_range)


def check_lookup_key(
    value: object, problems: Problems, field: str = "lookup_key", *, required: bool = False
) -> str | None:
    """Any text of 1 to ``MAX_LOOKUP_KEY_LENGTH`` characters, kept exactly as given."""
    if value is None:
        if required:
            problems.add(field, "required", "every price of a catalog needs a lookup_key")
        return None
    blank = "must not be blank (pass None for no lookup key)"
    return _text(value, problems, field, MAX_LOOKUP_KEY_LENGTH, " or None", trim=False, blank=blank)


# -- ids and filters ---------------------------------------------------------------------------
def check_id(value: object, problems: Problems, field: str) -> str | None:
    """An opaque id (``plan_id``), collected with the other problems of the call."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        problems.add(
            field, "invalid_id", f"must be a non-empty string of at most {MAX_ID_LENGTH} characters"
        )
        return None
    problem = text_problem(value)
    if problem is not None:
        problems.add(field, *problem)
        return None
    return value


def check_active(value: object, problems: Problems, field: str = "active") -> bool | None:
    """A list filter: True, False or None (both)."""
    if value is not None and not isinstance(value, bool):
        problems.add(field, "invalid_type", f"must be True, False or None, not {_type_name(value)}")
        return None
    return value
