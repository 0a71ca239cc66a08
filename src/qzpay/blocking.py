"""Blocking twins derived from the async services, so each operation has one signature.

``SyncBilling`` exposes every async service method as a blocking one. Re-typing each signature
by hand drifted (a parameter added to the service had to be added to the twin too), so a twin
declares ``create = blocking(CustomerService.create)`` and gets the service's exact parameters
through ``ParamSpec``: mypy checks calls against the one signature, and the service's docstring
is the twin's.

A twin that answers some reads on the calling thread (no hop to the loop thread) keeps its own
body but declares it with ``@same_signature(Service.method)``, which makes mypy verify that the
body's parameters match the service's.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar, overload

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")
Twin = TypeVar("Twin")


class Runner(Protocol):
    def __call__(self, coro: Coroutine[Any, Any, T], /) -> T: ...


class BlockingTwin(Generic[S]):
    """Base of a blocking twin: holds the async service and the function that runs one of its
    coroutines to completion on SyncBilling's loop thread."""

    def __init__(self, run: Runner, service: S) -> None:
        self._run = run
        self._service = service


class blocking(Generic[S, P, R]):
    """``name = blocking(Service.name)`` on a :class:`BlockingTwin`: the service's coroutine
    method as a blocking method with the same parameters."""

    def __init__(self, method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]]) -> None:
        self._method = method
        self.__doc__ = method.__doc__
        signature = inspect.signature(method)
        self._signature = signature.replace(parameters=list(signature.parameters.values())[1:])

    @overload
    def __get__(self, twin: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, twin: BlockingTwin[S], owner: type[Any]) -> Callable[P, R]: ...

    def __get__(self, twin: BlockingTwin[S] | None, owner: type[Any]) -> Self | Callable[P, R]:
        if twin is None:
            return self
        method, service, run = self._method, twin._service, twin._run

        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            return run(method(service, *args, **kwargs))

        call.__doc__ = method.__doc__
        call.__name__ = getattr(method, "__name__", "call")
        call.__signature__ = self._signature  # type: ignore[attr-defined]
        return call


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


async def walk_pages(
    fetch: Callable[[str | None], Coroutine[Any, Any, list[Item]]], page_size: int
) -> AsyncIterator[Item]:
    """Every item of a keyset walk: ``fetch(before_id)`` returns the next page (newest first)."""
    before: str | None = None
    while True:
        batch = await fetch(before)
        for item in batch:
            yield item
        if len(batch) < page_size:
            return
        before = batch[-1].id


def walk_pages_blocking(
    fetch: Callable[[str | None], list[Item]], page_size: int
) -> Iterator[Item]:
    """:func:`walk_pages` for blocking fetches (SyncBilling's ``iterate``)."""
    before: str | None = None
    while True:
        batch = fetch(before)
        yield from batch
        if len(batch) < page_size:
            return
        before = batch[-1].id
