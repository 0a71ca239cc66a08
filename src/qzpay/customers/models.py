"""The public customer objects, and the rule every record's event ``previous`` follows."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class Address(BaseModel):
    """A billing address. ``country`` is an ISO 3166-1 alpha-2 code such as ``"US"``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


class Customer(BaseModel):
    """A customer as stored. Immutable: changes go through ``billing.customers.update``.

    ``metadata`` and ``provider_customer_ids`` are copies; mutating them changes nothing stored.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    email: str
    name: str | None = None
    phone: str | None = None
    address: Address | None = None
    metadata: dict[str, str]
    provider_customer_ids: dict[str, str]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    def changed_fields(self, other: Customer) -> dict[str, Any]:
        """The user-visible fields whose values differ in ``other``, with this record's values."""
        return changed_values(self, other, TRACKED_FIELDS, _stored_address)


def _as_is(value: Any) -> Any:
    return value


def changed_values(
    before: object, after: object, fields: Iterable[str], stored: Callable[[Any], Any] = _as_is
) -> dict[str, Any]:
    """``fields`` whose values differ in ``after``, with ``before``'s as an event's
    ``previous`` holds them (``stored(value)``: a model or a time as its JSON form). Customers,
    plans, prices and subscriptions report their changes by this one rule."""
    previous: dict[str, Any] = {}
    for field in fields:
        old = getattr(before, field)
        if old != getattr(after, field):
            previous[field] = stored(old)
    return previous


def _stored_address(value: Any) -> Any:
    return value.model_dump() if isinstance(value, Address) else value


# Fields reported in an event's ``previous``; timestamps are bookkeeping, not changes.
TRACKED_FIELDS = ("email", "name", "phone", "address", "metadata", "provider_customer_ids")
