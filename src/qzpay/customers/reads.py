"""Read rules shared by CustomerService and SyncBilling's blocking reads (which answer some
reads on the calling thread, so the checks must not live in the async service alone), and the
page and owner rules every service's reads follow (:mod:`qzpay.catalog.reads` uses them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TypeVar

from qzpay.customers import validation as v
from qzpay.errors import ConflictError
from qzpay.limits import MAX_PAGE_SIZE
from qzpay.storage.base import CustomerFilter

T = TypeVar("T")


def check_external_lookup(provider_customer_id: object, provider: object) -> None:
    v.check_id(provider_customer_id, "provider_customer_id")
    if provider is not None:
        problems = v.Problems()
        v.check_provider(provider, problems)
        problems.raise_if_any()


def single_owner(found: list[T], provider_id: str) -> T | None:
    """The one record linked to ``provider_id``; a ConflictError if several providers use it."""
    if len(found) > 1:
        raise ConflictError(
            f"{provider_id!r} is linked at several providers; pass provider=",
            code="ambiguous_provider_id",
        )
    return found[0] if found else None


def list_filters(
    limit: object,
    offset: object,
    email: object,
    metadata: object,
    include_deleted: object,
    unknown: Mapping[str, object],
) -> CustomerFilter:
    """``list``'s filters, after checking its page (``limit``, ``offset``)."""
    return _filters(unknown, partial(v.check_page, limit, offset), email, metadata, include_deleted)


def scan_filters(
    email: object,
    metadata: object,
    include_deleted: object,
    page_size: object,
    unknown: Mapping[str, object],
) -> CustomerFilter:
    """``scan``'s filters, after checking its ``page_size``."""
    return _filters(unknown, partial(check_page_size, page_size), email, metadata, include_deleted)


def check_page_size(page_size: object, problems: v.Problems) -> int:
    """An ``iterate``'s ``page_size`` (1 in its place when it is out of range)."""
    if (
        isinstance(page_size, bool)
        or not isinstance(page_size, int)
        or not 1 <= page_size <= MAX_PAGE_SIZE
    ):
        problems.add("page_size", "out_of_range", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
        return 1
    return page_size


def _filters(
    unknown: Mapping[str, object],
    check_page: Callable[[v.Problems], object],
    email: object,
    metadata: object,
    include_deleted: object,
) -> CustomerFilter:
    """The filters of a customer read; ValidationError lists every problem: the unknown
    arguments, then the page's (``check_page``), then the filters'."""
    problems = v.Problems()
    problems.unknown_arguments(unknown)
    check_page(problems)
    if email is not None and not isinstance(email, str):
        problems.add("email", "invalid_type", "must be a string")
    elif isinstance(email, str):
        v.check_text(email, problems, "email")
    if not isinstance(include_deleted, bool):
        problems.add("include_deleted", "invalid_type", "must be True or False")
    filters = CustomerFilter(
        email=email if isinstance(email, str) else None,
        metadata={} if metadata is None else v.check_new_metadata(metadata, problems),
        include_deleted=include_deleted is True,
    )
    problems.raise_if_any()
    return filters
