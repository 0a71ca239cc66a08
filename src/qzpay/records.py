"""Every resource's record model, by resource name: how storage decodes what it keeps as JSON.

A sync task carries a snapshot of its record, stored as JSON with the resource's name
(``"customer"``); storage decodes it through this registry, which imports only the models, so
that storage needs neither the services nor the engine. A resource added later registers its
model here, with the field holding its provider links (``find_sync_task_by_link`` reads it)
and the verbs of its events: an event's type is ``<name>.<verb>`` (``customer.created``,
``plan.archived``), and its ``data`` decodes to the model of the resource the type names
(:func:`for_event`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from qzpay.customers.models import Customer

DEFAULT_EVENTS: tuple[str, ...] = ("created", "updated", "deleted")
"""The verbs of a resource's events unless it registers others (a catalog record is archived,
never deleted: ``events=("created", "updated", "archived")``)."""


@dataclass(frozen=True, slots=True)
class RecordType:
    """One resource's record: its name, its pydantic model, its links field and the verbs of
    its events."""

    name: str
    model: type[BaseModel]
    links_field: str
    events: tuple[str, ...] = DEFAULT_EVENTS

    @property
    def event_types(self) -> tuple[str, ...]:
        """Its event types: ``("customer.created", "customer.updated", "customer.deleted")``."""
        return tuple(f"{self.name}.{verb}" for verb in self.events)

    def decode(self, data: str | bytes) -> BaseModel:
        """The record from its JSON text."""
        return self.model.model_validate_json(data)

    def validate(self, data: Any) -> BaseModel:
        """The record from decoded JSON (a mapping) or a record of the model."""
        return self.model.model_validate(data)

    def links(self, record: BaseModel) -> dict[str, str]:
        """Provider name -> the provider's id of ``record``."""
        links: dict[str, str] = getattr(record, self.links_field)
        return links


_TYPES: dict[str, RecordType] = {}
_EXTRA: dict[str, type[BaseModel]] = {}
"""Event types whose data is not the resource's record (``customer.entitlements_changed``)."""
_WORD = re.compile(r"[a-z][a-z0-9_]*")


def register(
    name: str,
    model: type[BaseModel],
    *,
    links_field: str,
    events: tuple[str, ...] = DEFAULT_EVENTS,
) -> RecordType:
    """Register a resource's record model and the verbs of its events (again with the same
    values is a no-op). A name or verb is lower case letters, digits and underscores."""
    for word in (name, *events):
        if not _WORD.fullmatch(word):
            raise ValueError(f"{word!r} is not a resource name or event verb")
    if not events or len(set(events)) != len(events):
        raise ValueError(f"resource {name!r} needs distinct event verbs, not {events!r}")
    record_type = RecordType(name, model, links_field, tuple(events))
    known = _TYPES.setdefault(name, record_type)
    if known != record_type:
        raise ValueError(
            f"resource {name!r} is registered already, with {known.model.__name__} "
            f"(events {', '.join(known.events)})"
        )
    return known


def record_type(name: str) -> RecordType:
    """The registered resource ``name``; ValueError if none is."""
    try:
        return _TYPES[name]
    except KeyError:
        raise ValueError(f"no resource named {name!r} is registered") from None


def register_event(name: str, verb: str, model: type[BaseModel]) -> str:
    """Register an event of the resource ``name`` whose data is ``model`` rather than the
    resource's record (``customer.entitlements_changed``: what a customer may use changed).
    ``model`` has an ``id`` (the record the event is about: the record's timeline lists it)
    and an ``updated_at`` (when it happened). Returns the event type; again with the same
    values is a no-op."""
    if name not in _TYPES:
        raise ValueError(f"no resource named {name!r} is registered")
    if not _WORD.fullmatch(verb) or verb in _TYPES[name].events:
        raise ValueError(f"{verb!r} is not a new event verb of {name!r}")
    event_type = f"{name}.{verb}"
    known = _EXTRA.setdefault(event_type, model)
    if known is not model:
        raise ValueError(f"event {event_type!r} is registered already, with {known.__name__}")
    return event_type


def for_event(event_type: str) -> RecordType:
    """The resource whose event ``event_type`` is (``"plan.archived"`` -> plans); ValueError
    if no registered resource has that event."""
    name, dot, verb = event_type.partition(".")
    found = _TYPES.get(name)
    if found is None or not dot or (verb not in found.events and event_type not in _EXTRA):
        raise ValueError(f"no registered resource has events of type {event_type!r}")
    return found


def event_model(event_type: str) -> type[BaseModel]:
    """The model of the data of events of type ``event_type``: the resource's record, or the
    model an extra event registered (:func:`register_event`); ValueError if unknown."""
    extra = _EXTRA.get(event_type)
    return extra if extra is not None else for_event(event_type).model


def names() -> list[str]:
    """The registered resource names, in registration order."""
    return list(_TYPES)


def event_types() -> list[str]:
    """Every registered resource's event types (its extra events after its own), in
    registration order."""
    found: list[str] = []
    for record_type in _TYPES.values():
        found.extend(record_type.event_types)
        found.extend(t for t in _EXTRA if t.partition(".")[0] == record_type.name)
    return found


CUSTOMER = register("customer", Customer, links_field="provider_customer_ids")
