"""Read rules shared by the plan and price services (and their blocking twins): id and
look-up checks, pages, keyset walks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from typing import Any, Generic, TypeVar

from qzpay.blocking import Item, Runner, walk_pages, walk_pages_blocking
from qzpay.catalog import validation as v
from qzpay.customers.validation import check_provider
from qzpay.errors import ConflictError
from qzpay.limits import MAX_PAGE_SIZE
from qzpay.page import Page

T = TypeVar("T")


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


def single_owner(found: list[T], provider_id: str) -> T | None:
    if len(found) > 1:
        raise ConflictError(
            f"{provider_id!r} is linked at several providers; pass provider=",
            code="ambiguous_provider_id",
        )
    return found[0] if found else None


def make_page(data: list[T], total: int, limit: int, offset: int) -> Page[T]:
    return Page[T].model_construct(
        data=data, total=total, limit=limit, offset=offset, has_more=offset + len(data) < total
    )


def check_page_size(page_size: object, unknown: Mapping[str, object], problems: v.Problems) -> int:
    """``iterate``'s ``page_size`` (and its unknown arguments) into ``problems``."""
    problems.unknown_arguments(unknown)
    if (
        isinstance(page_size, bool)
        or not isinstance(page_size, int)
        or not 1 <= page_size <= MAX_PAGE_SIZE
    ):
        problems.add("page_size", "out_of_range", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
        return 1
    return page_size


class KeysetWalk(Generic[Item]):
    """What a service's ``iterate`` returns: every match, newest first, a page at a time by
    keyset (``fetch(before_id)`` reads the next page). It is an async iterator, and
    :meth:`blocking` walks the same pages from another thread (the blocking twin's
    ``iterate``), each page read by ``run``."""

    def __init__(
        self, fetch: Callable[[str | None], Coroutine[Any, Any, list[Item]]], page_size: int
    ) -> None:
        self._fetch = fetch
        self._page_size = page_size
        self._items: AsyncIterator[Item] | None = None

    def __aiter__(self) -> KeysetWalk[Item]:
        return self

    async def __anext__(self) -> Item:
        if self._items is None:
            self._items = walk_pages(self._fetch, self._page_size)
        return await anext(self._items)

    def blocking(self, run: Runner) -> Iterator[Item]:
        return walk_pages_blocking(lambda before: run(self._fetch(before)), self._page_size)
