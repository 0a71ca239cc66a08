"""Events: the model, and in-process handlers run after a change commits.

Every event is first written to the storage's event log in the same transaction as the change
it describes; the handlers here are a convenience on top of that durable log.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal, TypeAlias, TypeVar, overload

from pydantic import BaseModel, ConfigDict

from qzpay.customers.models import Customer

logger = logging.getLogger("qzpay.events")

EventType: TypeAlias = Literal["customer.created", "customer.updated", "customer.deleted"]
EVENT_TYPES: tuple[str, ...] = ("customer.created", "customer.updated", "customer.deleted")


class Event(BaseModel):
    """A committed change. ``previous`` holds, for ``customer.updated``, the old values of the
    fields that changed (plain JSON values: an address is a dict)."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    data: Customer
    previous: dict[str, Any] | None = None
    created_at: datetime


Handler: TypeAlias = Callable[[Event], Awaitable[object] | object]
H = TypeVar("H", bound=Handler)


def _valid_pattern(pattern: str) -> bool:
    if pattern == "*" or pattern in EVENT_TYPES:
        return True
    prefix = pattern.removesuffix(".*")
    return pattern.endswith(".*") and any(t.startswith(prefix + ".") for t in EVENT_TYPES)


def _matches(pattern: str, event_type: str) -> bool:
    if pattern == "*" or pattern == event_type:
        return True
    return pattern.endswith(".*") and event_type.startswith(pattern[:-1])


class EventBus:
    """Handlers by pattern (``"customer.created"``, ``"customer.*"``, ``"*"``), run in
    registration order; a failing handler is logged and never stops the others."""

    def __init__(self) -> None:
        self._handlers: list[tuple[str, Handler]] = []

    @overload
    def on(self, pattern: str) -> Callable[[H], H]: ...
    @overload
    def on(self, pattern: str, handler: Handler) -> Callable[[], None]: ...

    def on(
        self, pattern: str, handler: Handler | None = None
    ) -> Callable[[H], H] | Callable[[], None]:
        if not isinstance(pattern, str) or not _valid_pattern(pattern):
            from qzpay.customers.validation import fail

            fail("pattern", "invalid_pattern", f"unknown event type or pattern {pattern!r}")
        if handler is None:

            def decorator(fn: H) -> H:
                self._subscribe(pattern, fn)
                return fn

            return decorator
        self._subscribe(pattern, handler)
        return lambda: self.off(pattern, handler)

    def _subscribe(self, pattern: str, handler: Handler) -> None:
        if not callable(handler):
            raise TypeError("handler must be callable")
        self._handlers.append((pattern, handler))

    def off(self, pattern: str, handler: Handler) -> None:
        """Remove one registration of ``handler`` for ``pattern``; unknown pairs are ignored."""
        for index, (registered, fn) in enumerate(self._handlers):
            if registered == pattern and fn == handler:
                del self._handlers[index]
                return

    async def dispatch(self, event: Event) -> None:
        for pattern, handler in list(self._handlers):
            if not _matches(pattern, event.type):
                continue
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception(
                    "event handler %r failed for event %s (%s)",
                    getattr(handler, "__qualname__", handler),
                    event.id,
                    event.type,
                )
