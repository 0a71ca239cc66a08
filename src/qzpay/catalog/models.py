"""The public catalog objects: plans (what a customer subscribes to) and their prices.

A plan or price is never deleted, only archived: ``active=False``. An archived record stays
readable (subscriptions made on it keep pointing at it) and keeps its provider links.

For the engine (``qzpay.engine.resource.Record``), which soft-deletes through ``deleted_at``,
catalog records are never deleted: ``deleted_at`` is a property that is always None, so the
models satisfy ``Record`` and the engine's checks ("deleted records cannot change") never
block them. Archiving is an ordinary change of ``active`` (:func:`archive_changes`) through the
engine's update path; what the engine must add for it is the event's name: ``<name>.archived``
when ``active`` goes from True to False (a Stripe webhook deactivating a price included),
``<name>.updated`` otherwise. An archived record can still change (a price's ``lookup_key``
and ``metadata``; what a provider's dashboard changes), and the engine's delete path must not
be used for these resources.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Final, Literal, Self

from pydantic import BaseModel, ConfigDict

from qzpay.catalog.currencies import to_major_units
from qzpay.customers.models import changed_values
from qzpay.ids import IdGenerator

Interval = Literal["day", "week", "month", "year"]
INTERVALS: Final[tuple[Interval, ...]] = ("day", "week", "month", "year")

plan_ids = IdGenerator("plan_")
price_ids = IdGenerator("price_")


# Fields reported in an event's ``previous``; timestamps are bookkeeping, not changes.
PLAN_FIELDS: Final = (
    "key",
    "name",
    "description",
    "entitlements",
    "limits",
    "metadata",
    "active",
    "provider_plan_ids",
)
PRICE_FIELDS: Final = (
    "plan_id",
    "currency",
    "unit_amount",
    "interval",
    "interval_count",
    "trial_days",
    "lookup_key",
    "metadata",
    "active",
    "provider_price_ids",
)


class CatalogRecord(BaseModel):
    """What plans and prices share: immutable, archived rather than deleted (``deleted_at`` is
    always None, see the module docstring), their events reporting ``CHANGE_FIELDS``."""

    model_config = ConfigDict(frozen=True)

    CHANGE_FIELDS: ClassVar[tuple[str, ...]]

    def changed_fields(self, other: Self) -> dict[str, Any]:
        """The user-visible fields whose values differ in ``other``, with this record's values."""
        return changed_values(self, other, self.CHANGE_FIELDS)

    @property
    def deleted_at(self) -> None:
        """Always None: archived (``active=False``), never deleted (see the module docstring)."""
        return None


class Plan(CatalogRecord):
    """A plan as stored. Immutable: changes go through ``billing.plans.update``.

    ``entitlements`` are feature keys (de-duplicated, in the order given); ``limits`` maps a
    limit's name to a non-negative integer (``{"seats": 5}``). ``metadata``, ``limits``,
    ``entitlements`` and ``provider_plan_ids`` are copies; mutating them changes nothing stored.
    """

    CHANGE_FIELDS = PLAN_FIELDS

    id: str
    key: str
    name: str
    description: str | None = None
    entitlements: list[str]
    limits: dict[str, int]
    metadata: dict[str, str]
    active: bool = True
    provider_plan_ids: dict[str, str]
    created_at: datetime
    updated_at: datetime


class Price(CatalogRecord):
    """A recurring price of a plan. ``unit_amount`` counts the currency's minor unit (cents).

    Amount, currency, interval, interval count and trial days never change: a new price
    replaces an old one. Only ``lookup_key``, ``metadata`` and ``active`` (archiving) change.
    """

    CHANGE_FIELDS = PRICE_FIELDS

    id: str
    plan_id: str
    currency: str
    unit_amount: int
    interval: Interval
    interval_count: int = 1
    trial_days: int | None = None
    lookup_key: str | None = None
    metadata: dict[str, str]
    active: bool = True
    provider_price_ids: dict[str, str]
    created_at: datetime
    updated_at: datetime

    def major_amount(self) -> Decimal:
        """``unit_amount`` in major units (``Decimal("19.99")`` for 1999 USD cents)."""
        return to_major_units(self.unit_amount, self.currency)


def archive_changes(now: datetime) -> dict[str, Any]:
    """The fields archiving sets (what the engine's soft delete sets for customers)."""
    return {"active": False, "updated_at": now}
