"""Factories: valid arguments by default, overridden per test."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime
from typing import Any

from qzpay import Billing, Customer, Event
from qzpay.customers.models import Address
from qzpay.ids import customer_ids, event_ids

_sequence = itertools.count(1)


def customer_args(**overrides: Any) -> dict[str, Any]:
    n = next(_sequence)
    args: dict[str, Any] = {
        "email": f"user{n}@example.com",
        "name": f"User {n}",
        "metadata": {"userId": f"usr_{n}"},
    }
    args.update(overrides)
    return args


async def create_customer(billing: Billing, **overrides: Any) -> Customer:
    return await billing.customers.create(**customer_args(**overrides))


def unique_email(label: str = "customer") -> str:
    """An address no other test uses (test servers are shared by the whole session)."""
    return f"{label}.{secrets.token_hex(6)}@example.com"


ADDRESS = Address(
    line1="1 Main St", line2="Apt 2", city="Springfield", state="IL", postal_code="62701",
    country="US",
)  # fmt: skip


def stored_customer(**overrides: Any) -> Customer:
    """A stored-looking qzpay customer (id and timestamps set) with every field filled in, as
    the sync machinery hands it to a provider; a unique email unless overridden."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": customer_ids.new(),
        "email": unique_email(),
        "name": "Ada Lovelace",
        "phone": "+14155552671",
        "address": ADDRESS,
        "metadata": {"plan": "pro", "team": "core"},
        "provider_customer_ids": {},
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    return Customer(**values)


def changed(customer: Customer, **fields: Any) -> Customer:
    """``customer`` with these fields replaced (as a local edit would leave it)."""
    return customer.model_copy(update=fields)


def change_event(after: Any, before: Any, kind: str) -> Event[Any]:
    """The event a service would record for a change of a record from ``before`` to
    ``after``, for tests that write through a storage transaction directly."""
    return Event.model_construct(
        id=event_ids.new(),
        type=kind,
        data=after,
        previous=before.changed_fields(after),
        created_at=after.updated_at,
    )


def idempotency_key() -> str:
    """A fresh caller idempotency key."""
    return f"idem-{secrets.token_hex(8)}"
