"""Blocking twins derived from the async services, so each operation has one signature.

``SyncBilling`` exposes every async service method as a blocking one. Re-typing each signature
by hand drifted (a parameter added to the service had to be added to the twin too), so a twin
declares ``create = blocking(CustomerService.create)`` and gets the service's exact parameters
through ``ParamSpec``: mypy checks calls against the one signature, and the service's docstring
is the twin's.

A twin that answers some reads on the calling thread (no hop to the loop thread) keeps its own
body. For a single-record read it declares it with ``@same_signature(Service.method)``, which
makes mypy verify that the body's parameters match the service's. The filtered reads do not
re-type their parameters at all: every ``list`` returns a :class:`PageRead` (a coroutine that
reads one offset page) and every ``iterate`` a :class:`KeysetWalk` (an async iterator over
keyset pages), both with their arguments already checked. A twin gets the service's
parameters from them (``blocking`` and ``iterating``, or ``reading`` where the twin reads the
page itself).
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterator
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar, overload

from qzpay.page import Page, make_page

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)
T = TypeVar("T")
F = TypeVar("F")
Q = TypeVar("Q")
F_contra = TypeVar("F_contra", contravariant=True)
Twin = TypeVar("Twin")
W = TypeVar("W", bound="BlockingTwin[Any]")


class Runner(Protocol):
    def __call__(self, coro: Coroutine[Any, Any, T], /) -> T: ...


class BlockingTwin(Generic[S_co]):
    """Base of a blocking twin: holds the async service and the function that runs one of its
    coroutines to completion on SyncBilling's loop thread. Covariant: a method a service
    inherits (``RecordService.sync_pending``) is derived on the twin of the subclass."""

    def __init__(self, run: Runner, service: S_co) -> None:
        self._run = run
        self._service = service


class _Derived(Generic[S, P, R]):
    """A twin method derived from a service method: the service's parameters (``signature``,
    what ``inspect`` and the API docs show) and docstring; :meth:`_call` runs it."""

    def __init__(
        self, method: Callable[Concatenate[S, P], object], signature: inspect.Signature
    ) -> None:
        self.__doc__ = method.__doc__
        self._name = getattr(method, "__name__", "call")
        self._signature = signature

    def _call(self, twin: BlockingTwin[S], /, *args: P.args, **kwargs: P.kwargs) -> R:
        raise NotImplementedError

    @overload
    def __get__(self, twin: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, twin: BlockingTwin[S], owner: type[Any]) -> Callable[P, R]: ...

    def __get__(self, twin: BlockingTwin[S] | None, owner: type[Any]) -> Self | Callable[P, R]:
        if twin is None:
            return self

        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            return self._call(twin, *args, **kwargs)

        call.__doc__ = self.__doc__
        call.__name__ = self._name
        call.__signature__ = self._signature  # type: ignore[attr-defined]
        return call


class blocking(_Derived[S, P, R]):
    """``name = blocking(Service.name)`` on a :class:`BlockingTwin`: the service's coroutine
    method as a blocking method with the same parameters."""

    def __init__(self, method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]]) -> None:
        # A list's PageRead is awaited to its Page.
        super().__init__(method, _unbound(_returning(method, "PageRead", "Page")))
        self._method = method

    def _call(self, twin: BlockingTwin[S], /, *args: P.args, **kwargs: P.kwargs) -> R:
        return twin._run(self._method(twin._service, *args, **kwargs))


def same_signature(
    source: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]],
) -> Callable[[Callable[Concatenate[Twin, P], R]], Callable[Concatenate[Twin, P], R]]:
    """Declare that a hand-written blocking method takes exactly ``source``'s parameters and
    returns what it awaits to; mypy rejects the body if they differ."""

    def check(body: Callable[Concatenate[Twin, P], R]) -> Callable[Concatenate[Twin, P], R]:
        if body.__doc__ is None:
            body.__doc__ = source.__doc__
        return body

    return check


class HasId(Protocol):
    @property
    def id(self) -> str: ...


Item = TypeVar("Item", bound=HasId)


async def _walk_pages(
    fetch: Callable[[str | None], Coroutine[Any, Any, list[Item]]], page_size: int
) -> AsyncIterator[Item]:
    before: str | None = None
    while True:
        batch = await fetch(before)
        for item in batch:
            yield item
        if len(batch) < page_size:
            return
        before = batch[-1].id


def _walk_pages_blocking(
    fetch: Callable[[str | None], list[Item]], page_size: int
) -> Iterator[Item]:
    before: str | None = None
    while True:
        batch = fetch(before)
        yield from batch
        if len(batch) < page_size:
            return
        before = batch[-1].id


class KeysetWalk(Generic[Item, F]):
    """What a service's ``iterate`` returns: every match of ``filters``, newest first, a page
    at a time by keyset (``scan(filters, before_id, page_size)`` reads one). It is an async
    iterator; :meth:`blocking` walks the same pages for a blocking twin."""

    def __init__(
        self,
        scan: Callable[[F, str | None, int], Coroutine[Any, Any, list[Item]]],
        filters: F,
        page_size: int,
    ) -> None:
        self._scan = scan
        self.filters = filters
        self.page_size = page_size
        self._items: AsyncIterator[Item] | None = None

    def page(self, before_id: str | None) -> Coroutine[Any, Any, list[Item]]:
        """The page after ``before_id`` (the first page for None)."""
        return self._scan(self.filters, before_id, self.page_size)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Item:
        if self._items is None:
            self._items = _walk_pages(self.page, self.page_size)
        return await anext(self._items)

    def blocking(self, read: Callable[[str | None], list[Item]]) -> Iterator[Item]:
        """Every item, each page read by ``read(before_id)`` (a blocking read of :meth:`page`)."""
        return _walk_pages_blocking(read, self.page_size)


class Lister(Protocol[Item, F_contra]):
    """A storage's ``list_<kind>`` read: one page of matches and the total."""

    def __call__(
        self, filters: F_contra, /, *, limit: int, offset: int
    ) -> Awaitable[tuple[list[Item], int]]: ...


class BlockingLister(Protocol[Item, F_contra]):
    def __call__(
        self, filters: F_contra, /, *, limit: int, offset: int
    ) -> tuple[list[Item], int]: ...


async def _read_page(
    read: Lister[Item, F], check: Callable[[], F], limit: int, offset: int
) -> Page[Item]:
    data, total = await read(check(), limit=limit, offset=offset)
    return make_page(data, total, limit, offset)


async def _never_started() -> Any:
    """The stand-in for a PageRead read by its blocking twin or closed unstarted."""


_READ_BLOCKING = _never_started()
_READ_BLOCKING.close()


class PageRead(Coroutine[Any, Any, "Page[Item]"], Generic[Item, F]):
    """What a service's ``list`` returns: one offset page of matches, newest first. It is a
    coroutine, so ``await`` it or hand it to ``asyncio.create_task``; as before it was one, a
    bad argument raises when it is awaited, not at the call. :meth:`blocking` reads the same
    page for a blocking twin, so the twin does not re-type ``list``'s parameters.

    ``check`` returns the storage filters after checking every argument (ValidationError)."""

    __slots__ = ("_check", "_limit", "_offset", "_read", "_running")

    def __init__(
        self, read: Lister[Item, F], check: Callable[[], F], *, limit: int, offset: int
    ) -> None:
        self._read = read
        self._check = check
        self._limit = limit
        self._offset = offset
        self._running: Coroutine[Any, Any, Page[Item]] | None = None

    def _coroutine(self) -> Coroutine[Any, Any, Page[Item]]:
        if self._running is None:
            self._running = _read_page(self._read, self._check, self._limit, self._offset)
        return self._running

    def __await__(self) -> Generator[Any, None, Page[Item]]:
        return self._coroutine().__await__()

    def send(self, value: Any, /) -> Any:
        return self._coroutine().send(value)

    def throw(self, error: Any, value: Any = None, traceback: Any = None, /) -> Any:
        return self._coroutine().throw(error, value, traceback)

    def close(self) -> None:
        if self._running is None:
            self._running = _READ_BLOCKING  # closed unstarted, as a coroutine may be
        self._running.close()

    def blocking(self, read: BlockingLister[Item, F]) -> Page[Item]:
        """The page, read by ``read`` (a blocking read of the same storage query)."""
        self._running = _READ_BLOCKING
        data, total = read(self._check(), limit=self._limit, offset=self._offset)
        return make_page(data, total, self._limit, self._offset)

    def __del__(self) -> None:
        if self._running is None:  # as Python warns of a coroutine never awaited
            name = getattr(self._read, "__qualname__", "list")
            warnings.warn(f"a list() page ({name}) was never awaited", RuntimeWarning, 2)


def _returning(method: Callable[..., object], outer: str, inner: str) -> inspect.Signature:
    """``method``'s signature with its ``outer[Item, Filter]`` return shown as ``inner[Item]``."""
    signature = inspect.signature(method)
    returns = str(signature.return_annotation)  # "KeysetWalk[Plan, PlanFilter]"
    shown = re.sub(rf"^{outer}\[([^,\]]+).*\]$", rf"{inner}[\1]", returns)
    return signature.replace(return_annotation=shown)


def _unbound(signature: inspect.Signature) -> inspect.Signature:
    """``signature`` without its first parameter (``self``)."""
    return signature.replace(parameters=[*signature.parameters.values()][1:])


def reading(
    source: Callable[Concatenate[S, P], Q],
) -> Callable[[Callable[[W, Q], R]], Callable[Concatenate[W, P], R]]:
    """Declare a twin's hand-written ``list`` or ``iterate``: it takes ``source``'s parameters,
    which ``source`` checks on the calling thread, and reads the PageRead or KeysetWalk that
    ``source`` returns as it likes (SyncCustomers: on the calling thread when storage can). The
    parameters are written once, in the service."""

    def wrap(body: Callable[[W, Q], R]) -> Callable[Concatenate[W, P], R]:
        def call(twin: W, /, *args: P.args, **kwargs: P.kwargs) -> R:
            return body(twin, source(twin._service, *args, **kwargs))

        returns = inspect.signature(body).return_annotation
        call.__doc__ = body.__doc__ or source.__doc__
        call.__name__ = body.__name__
        call.__qualname__ = body.__qualname__
        call.__signature__ = inspect.signature(source).replace(return_annotation=returns)  # type: ignore[attr-defined]
        return call

    return wrap


class iterating(_Derived[S, P, Iterator[Item]], Generic[S, P, Item, F]):
    """``iterate = iterating(Service.iterate)`` on a :class:`BlockingTwin`: the service's
    keyset walk (its arguments checked at the call) as a blocking iterator whose pages are read
    on the loop thread, with the same parameters."""

    def __init__(self, method: Callable[Concatenate[S, P], KeysetWalk[Item, F]]) -> None:
        super().__init__(method, _unbound(_returning(method, "KeysetWalk", "Iterator")))
        self._method = method

    def _call(self, twin: BlockingTwin[S], /, *args: P.args, **kwargs: P.kwargs) -> Iterator[Item]:
        walk = self._method(twin._service, *args, **kwargs)
        return walk.blocking(lambda before: twin._run(walk.page(before)))
