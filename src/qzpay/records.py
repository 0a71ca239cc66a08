"""Every resource's record model, by resource name: how storage decodes what it keeps as JSON.

A sync task carries a snapshot of its record, stored as JSON with the resource's name
(``"customer"``); storage decodes it through this registry, which imports only the models, so
that storage needs neither the services nor the engine. A resource added later registers its
model here, with the field holding its provider links (``find_sync_task_by_link`` reads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from qzpay.customers.models import Customer


@dataclass(frozen=True, slots=True)
class RecordType:
    """One resource's record: its name, its pydantic model and its links field."""

    name: str
    model: type[BaseModel]
    links_field: str

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


def register(name: str, model: type[BaseModel], *, links_field: str) -> RecordType:
    """Register a resource's record model (again with the same values is a no-op)."""
    record_type = RecordType(name, model, links_field)
    known = _TYPES.setdefault(name, record_type)
    if known != record_type:
        raise ValueError(f"resource {name!r} is registered already, with {known.model.__name__}")
    return known


def record_type(name: str) -> RecordType:
    """The registered resource ``name``; ValueError if none is."""
    try:
        return _TYPES[name]
    except KeyError:
        raise ValueError(f"no resource named {name!r} is registered") from None


def names() -> list[str]:
    """The registered resource names, in registration order."""
    return list(_TYPES)


CUSTOMER = register("customer", Customer, links_field="provider_customer_ids")
