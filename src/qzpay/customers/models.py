"""The public customer objects."""

from __future__ import annotations

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
        previous: dict[str, Any] = {}
        for field in TRACKED_FIELDS:
            old = getattr(self, field)
            if old != getattr(other, field):
                previous[field] = old.model_dump() if isinstance(old, Address) else old
        return previous


# Fields reported in an event's ``previous``; timestamps are bookkeeping, not changes.
TRACKED_FIELDS = ("email", "name", "phone", "address", "metadata", "provider_customer_ids")
