"""Read rules shared by the plan, price and subscription services: id and look-up checks (the
page and owner rules are the customers', :mod:`qzpay.customers.reads`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qzpay.catalog import validation as v
from qzpay.customers.reads import check_page_size as _check_page_size
from qzpay.customers.reads import single_owner
from qzpay.customers.validation import check_provider

__all__ = [
    "check_external_lookup",
    "check_lookup_key",
    "check_page_size",
    "check_record_id",
    "check_slug",
    "single_owner",
]


def _checked(
    check: Callable[[object, v.Problems, str], str | None], value: object, field: str
) -> str:
    """``value`` through one of validation's checks; its ValidationError if any."""
    problems = v.Problems()
    checked = check(value, problems, field)
    problems.raise_if_any()
    assert checked is not None
    return checked


def check_record_id(value: object, field: str) -> str:
    """An id argument (``plan_id``, ``price_id``); ValidationError if it cannot be one."""
    return _checked(v.check_id, value, field)


def check_slug(value: object, field: str) -> str:
    """A plan ``key`` argument of a read."""
    return _checked(v.check_key, value, field)


def check_lookup_key(value: object) -> str:
    problems = v.Problems()
    if value is None:
        problems.add("lookup_key", "invalid_type", "must be a string, not NoneType")
    checked = v.check_lookup_key(value, problems, "lookup_key")
    problems.raise_if_any()
    assert checked is not None
    return checked


def check_external_lookup(provider_id: object, provider: object, field: str) -> str:
    problems = v.Problems()
    checked = v.check_id(provider_id, problems, field)
    if provider is not None:
        check_provider(provider, problems)
    problems.raise_if_any()
    assert checked is not None
    return checked


def check_page_size(page_size: object, unknown: Mapping[str, object], problems: v.Problems) -> int:
    """``iterate``'s ``page_size`` (and its unknown arguments) into ``problems``."""
    problems.unknown_arguments(unknown)
    return _check_page_size(page_size, problems)
