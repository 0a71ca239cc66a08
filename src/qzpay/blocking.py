"""Blocking twins derived from the async services, so each operation has one signature.

``SyncBilling`` exposes every async service method as a blocking one. Re-typing each signature
by hand drifted (a parameter added to the service had to be added to the twin too), so a twin
declares ``create = blocking(CustomerService.create)`` and gets the service's exact parameters
through ``ParamSpec``: mypy checks calls against the one signature, and the service's docstring
is the twin's.

A twin that answers some reads on the calling thread (no hop to the loop thread) keeps its own
body but declares it with ``@same_signature(Service.method)``, which makes mypy verify that the
body's parameters match the service's.

Every ``iterate`` returns a :class:`KeysetWalk`: an async iterator for the service, and the same
keyset pages for its twin (``iterating``, or ``walking`` where the twin reads pages itself).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar, overload

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)
T = TypeVar("T")
F = TypeVar("F")
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
        super().__init__(method, _unbound(inspect.signature(method)))
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


def _iterator_signature(method: Callable[..., object]) -> inspect.Signature:
    """``method``'s signature returning an Iterator of the walk's items."""
    signature = inspect.signature(method)
    returns = str(signature.return_annotation)  # "KeysetWalk[Plan, PlanFilter]"
    iterator = re.sub(r"^KeysetWalk\[([^,\]]+).*\]$", r"Iterator[\1]", returns)
    return signature.replace(return_annotation=iterator)


def _unbound(signature: inspect.Signature) -> inspect.Signature:
    """``signature`` without its first parameter (``self``)."""
    return signature.replace(parameters=[*signature.parameters.values()][1:])


def walking(
    source: Callable[Concatenate[S, P], KeysetWalk[Item, F]],
) -> Callable[
    [Callable[[W, KeysetWalk[Item, F]], Iterator[Item]]],
    Callable[Concatenate[W, P], Iterator[Item]],
]:
    """Declare a twin's hand-written ``iterate``: it takes ``source``'s parameters (checked by
    ``source`` on the calling thread) and walks the walk that ``source`` returns, reading each
    page as it likes (SyncCustomers: on the calling thread when storage can)."""

    def wrap(
        body: Callable[[W, KeysetWalk[Item, F]], Iterator[Item]],
    ) -> Callable[Concatenate[W, P], Iterator[Item]]:
        def call(twin: W, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[Item]:
            return body(twin, source(twin._service, *args, **kwargs))

        call.__doc__ = body.__doc__ or source.__doc__
        call.__name__ = body.__name__
        call.__qualname__ = body.__qualname__
        call.__signature__ = _iterator_signature(source)  # type: ignore[attr-defined]
        return call

    return wrap


class iterating(_Derived[S, P, Iterator[Item]], Generic[S, P, Item, F]):
    """``iterate = iterating(Service.iterate)`` on a :class:`BlockingTwin`: the service's
    keyset walk (its arguments checked at the call) as a blocking iterator whose pages are read
    on the loop thread, with the same parameters."""

    def __init__(self, method: Callable[Concatenate[S, P], KeysetWalk[Item, F]]) -> None:
        super().__init__(method, _unbound(_iterator_signature(method)))
        self._method = method

    def _call(self, twin: BlockingTwin[S], /, *args: P.args, **kwargs: P.kwargs) -> Iterator[Item]:
        walk = self._method(twin._service, *args, **kwargs)
        return walk.blocking(lambda before: twin._run(walk.page(before)))
