"""Events: the model, and in-process handlers run after a change commits.

Every event is first written to the storage's event log in the same transaction as the change
it describes; the handlers here are a convenience on top of that durable log.

An event is about one record of any resource registered in :mod:`qzpay.records`: its type is
``<resource>.<verb>`` (``customer.created``, ``plan.archived``) and its ``data`` is the record,
of the model the resource registered. ``Event`` is generic in that model: ``Event[Plan]`` is a
plan's event, and ``Event`` alone means ``Event[Customer]`` (so the customers' API documents it
as it always did). Whatever reads events of several resources (the log, the bus) holds
``Event[Any]`` and decodes each by its type: :func:`event_class`, :func:`decode_event`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Generic, Literal, TypeAlias, cast, overload

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypeVar

from qzpay import records
from qzpay.customers.models import Customer

logger = logging.getLogger("qzpay.events")

EventType: TypeAlias = Literal["customer.created", "customer.updated", "customer.deleted"]
"""The customers' event types (:data:`qzpay.records.CUSTOMER`'s ``event_types``)."""
EVENT_TYPES: tuple[str, ...] = records.CUSTOMER.event_types
"""The customers' event types; every registered resource's are :func:`qzpay.records.event_types`
(the bus accepts those of any resource registered when a handler is added)."""

DataT = TypeVar("DataT", bound=BaseModel, default=Customer)


class Event(BaseModel, Generic[DataT]):
    """A committed change. ``previous`` holds, for ``customer.updated``, the old values of the
    fields that changed (plain JSON values: an address is a dict)."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    data: DataT
    previous: dict[str, Any] | None = None
    created_at: datetime


_new = object.__new__
_set = object.__setattr__
_EVENT_FIELDS = ("id", "type", "data", "previous", "created_at")

_CLASSES: dict[str, tuple[type[Event[Any]], type[BaseModel], bool]] = {}


def _plain(cls: type[Event[Any]]) -> bool:
    """Whether ``cls.model_construct`` given every field just sets ``__dict__`` (the fields in
    declaration order), ``__pydantic_fields_set__`` (all of them) and no extra or private
    attributes: no aliases, extras, private attributes, post-init or ``__new__`` of its own."""
    fields = cls.__pydantic_fields__
    return (
        tuple(fields) == _EVENT_FIELDS
        and all(f.alias is None and f.validation_alias is None for f in fields.values())
        and cls.model_config.get("extra") != "allow"
        and not cls.__pydantic_root_model__
        and not cls.__private_attributes__
        and not cls.__pydantic_post_init__
        and cls.__new__ is object.__new__
    )


def _resolve(event_type: str) -> tuple[type[Event[Any]], type[BaseModel], bool]:
    found = _CLASSES.get(event_type)
    if found is None:
        model = records.event_model(event_type)  # ValueError if nobody registered it
        # A customer's event is ``Event`` itself (its default), any other ``Event[Model]``.
        cls = cast(
            "type[Event[Any]]", Event if model is Customer else Event.__class_getitem__(model)
        )
        found = _CLASSES[event_type] = (cls, model, _plain(cls))
    return found


def event_class(event_type: str) -> type[Event[Any]]:
    """The model of events of type ``event_type``: ``Event`` for a customer's, ``Event[Plan]``
    for ``plan.archived``...; ValueError if no registered resource has that event type."""
    return _resolve(event_type)[0]


class _Type(BaseModel):
    type: str


def decode_event(payload: str | bytes, event_type: str | None = None) -> Event[Any]:
    """The event from its JSON (as ``model_dump_json`` wrote it), its ``data`` decoded as the
    model its type names; pass ``event_type`` when it is known, to parse the JSON once."""
    if event_type is None:
        event_type = _Type.model_validate_json(payload).type
    return event_class(event_type).model_validate_json(payload)


def new_event(
    event_type: str,
    data: object,
    *,
    id: str,
    previous: dict[str, Any] | None,
    created_at: datetime,
) -> Event[Any]:
    """An event about ``data``, a record already valid (so not validated again); ValueError if
    ``event_type`` is no registered resource's, TypeError if ``data`` is not its record."""
    cls, model, plain = _resolve(event_type)
    if not isinstance(data, model):
        raise TypeError(f"a {event_type} event carries a {model.__name__}, not {data!r}")
    if not plain:  # pragma: no cover - Event and Event[Model] are plain (tests/test_event_build)
        return cls.model_construct(
            id=id, type=event_type, data=data, previous=previous, created_at=created_at
        )
    # What ``model_construct`` gives, in its order, without its generic loop over the fields.
    event = _new(cls)
    _set(
        event,
        "__dict__",
        {
            "id": id,
            "type": event_type,
            "data": data,
            "previous": previous,
            "created_at": created_at,
        },
    )
    _set(event, "__pydantic_fields_set__", {"id", "type", "data", "previous", "created_at"})
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


Handler: TypeAlias = Callable[[Event[Any]], Awaitable[object] | object]
H = TypeVar("H", bound=Handler)


def _valid_pattern(pattern: str) -> bool:
    """``"*"``, ``"<resource>.*"`` or an event type, of a resource registered now."""
    if pattern == "*":
        return True
    name, dot, verb = pattern.partition(".")
    if dot and verb == "*":
        return name in records.names()
    try:
        records.for_event(pattern)
    except ValueError:
        return False
    return True


def _matches(pattern: str, event_type: str) -> bool:
    if pattern == "*" or pattern == event_type:
        return True
    return pattern.endswith(".*") and event_type.startswith(pattern[:-1])


class Subscriptions:
    """``on`` and ``off``: of the EventBus itself, and of what delegates to one by overriding
    ``_events`` (Billing; SyncBilling, whose handlers run on its loop thread)."""

    def _events(self) -> EventBus:
        raise NotImplementedError  # pragma: no cover - the subclass's

    @overload
    def on(self, pattern: str) -> Callable[[H], H]: ...
    @overload
    def on(self, pattern: str, handler: Handler) -> Callable[[], None]: ...

    def on(
        self, pattern: str, handler: Handler | None = None
    ) -> Callable[[H], H] | Callable[[], None]:
        """Run ``handler(event)`` after each committed change whose type matches ``pattern``
        (``"customer.created"``, ``"customer.*"``, ``"*"``). Returns an unsubscribe function;
        without ``handler``, returns a decorator that leaves the function unchanged."""
        bus = self._events()
        if not isinstance(pattern, str) or not _valid_pattern(pattern):
            from qzpay.customers.validation import fail

            fail("pattern", "invalid_pattern", f"unknown event type or pattern {pattern!r}")
        if handler is None:

            def decorator(fn: H) -> H:
                bus.subscribe(pattern, fn)
                return fn

            return decorator
        bus.subscribe(pattern, handler)
        return lambda: bus.off(pattern, handler)

    def off(self, pattern: str, handler: Handler) -> None:
        """Remove one registration of ``handler`` for ``pattern``; unknown pairs are ignored."""
        self._events().off(pattern, handler)


class EventBus(Subscriptions):
    """Handlers by pattern (``"customer.created"``, ``"customer.*"``, ``"*"``: any registered
    resource's), run in registration order; a failing handler is logged and never stops the
    others."""

    def __init__(self) -> None:
        self._handlers: list[tuple[str, Handler]] = []

    def _events(self) -> EventBus:
        return self

    def subscribe(self, pattern: str, handler: Handler) -> None:
        """Add ``handler`` for ``pattern`` as it is (``on`` checks the pattern first)."""
        if not callable(handler):
            raise TypeError("handler must be callable")
        self._handlers.append((pattern, handler))

    def off(self, pattern: str, handler: Handler) -> None:
        """Remove one registration of ``handler`` for ``pattern``; unknown pairs are ignored."""
        for index, (registered, fn) in enumerate(self._handlers):
            if registered == pattern and fn == handler:
                del self._handlers[index]
                return

    @property
    def has_handlers(self) -> bool:
        """Whether any handler is registered (when none is, ``dispatch`` does nothing)."""
        return bool(self._handlers)

    async def dispatch(self, event: Event[Any]) -> None:
        if not self._handlers:
            return
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
