"""Request and response bodies of the plans and prices routes.

As for customers (qzpay.api.schemas): request models check shape and JSON types only, and
every business rule (slugs, currencies, amounts, intervals, metadata limits, ...) stays in
the library, which reports all problems at once with stable codes. Responses are the
library's own ``Plan`` and ``Price`` models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from qzpay.catalog.models import Interval, Plan, Price
from qzpay.page import Page

_METADATA_RULES = (
    "At most 50 keys; keys 1–40 characters without `[` or `]`; values strings of at most "
    "500 characters."
)
_SLUG = "A slug: `[a-z0-9][a-z0-9_-]{0,63}`."


def _sent(model: BaseModel) -> dict[str, Any]:
    """The fields the client sent (an explicit ``null`` as ``None``), as keyword arguments."""
    return {name: getattr(model, name) for name in model.model_fields_set}


class PlanCreate(BaseModel):
    """A new plan. ``key`` and ``name`` are required."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "key": "pro",
                    "name": "Pro",
                    "description": "For growing teams",
                    "entitlements": ["api", "sso"],
                    "limits": {"seats": 5},
                    "metadata": {"tier": "2"},
                }
            ]
        },
    )

    key: str = Field(description=f"The plan's unique, stable key. {_SLUG}")
    name: str = Field(description="Trimmed; must not be blank.")
    description: str | None = Field(default=None, description="Optional; at most 40,000 chars.")
    entitlements: list[str] = Field(
        default_factory=list, description=f"Feature keys, de-duplicated. Each: {_SLUG}"
    )
    limits: dict[str, int] = Field(
        default_factory=dict, description="A limit's name (a slug) to an integer ≥ 0."
    )
    metadata: dict[str, str] = Field(default_factory=dict, description=_METADATA_RULES)


class PlanUpdate(BaseModel):
    """A partial update: a field left out is unchanged. ``entitlements`` and ``limits`` are
    replaced whole; ``null`` clears ``description``; ``metadata`` merges into the stored
    metadata (a key set to ``null`` is removed). An archived plan cannot change (409)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Pro (2025)", "limits": {"seats": 10}}]},
    )

    name: str | SkipJsonSchema[None] = Field(default=None, description="Cannot be null.")
    description: str | None = Field(default=None, description="`null` clears it.")
    entitlements: list[str] | SkipJsonSchema[None] = Field(
        default=None, description="Replaces the entitlements."
    )
    limits: dict[str, int] | SkipJsonSchema[None] = Field(
        default=None, description="Replaces the limits."
    )
    metadata: dict[str, str | None] | SkipJsonSchema[None] = Field(
        default=None, description="Merged into the stored metadata; a `null` value removes a key."
    )

    def changes(self) -> dict[str, Any]:
        """The fields sent, for ``plans.update`` (a ``null`` the library rejects is a 422)."""
        return _sent(self)


class PriceCreate(BaseModel):
    """A new recurring price of a live plan."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "plan_id": "plan_01J0000000000000000000000",
                    "currency": "usd",
                    "unit_amount": 1999,
                    "interval": "month",
                    "lookup_key": "pro_monthly",
                }
            ]
        },
    )

    plan_id: str = Field(description="The plan (`plan_…`); it must not be archived.")
    currency: str = Field(description="ISO 4217 code, any case; stored upper case.")
    unit_amount: int = Field(
        description="In the currency's minor unit (1999 is USD 19.99); 0 is allowed."
    )
    interval: Interval = Field(description="The billing interval.")
    interval_count: int = Field(
        default=1, description="Intervals per billing period; at most three years in all."
    )
    trial_days: int | None = Field(default=None, description="1–730, or null for no trial.")
    lookup_key: str | None = Field(
        default=None, description="Names at most one active price (409 if another has it)."
    )
    metadata: dict[str, str] = Field(default_factory=dict, description=_METADATA_RULES)


class PriceUpdate(BaseModel):
    """Only ``lookup_key`` and ``metadata`` change (a price's amount, currency and interval
    never do). A lookup key another active price holds moves to this one; ``null`` removes
    it. ``metadata`` merges (a key set to ``null`` is removed)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"lookup_key": "pro_monthly", "metadata": {"v": "2"}}]},
    )

    lookup_key: str | None = Field(default=None, description="`null` removes it.")
    metadata: dict[str, str | None] | SkipJsonSchema[None] = Field(
        default=None, description="Merged into the stored metadata; a `null` value removes a key."
    )

    def changes(self) -> dict[str, Any]:
        """The fields sent, for ``prices.update``."""
        return _sent(self)


class PlanList(BaseModel):
    """One page of plans, newest first."""

    data: list[Plan]
    total: int = Field(description="Plans matching the filters, on every page.")
    limit: int
    offset: int
    has_more: bool = Field(description="Whether more matches follow this page.")

    @classmethod
    def from_page(cls, page: Page[Plan]) -> PlanList:
        return cls(**{name: getattr(page, name) for name in Page.model_fields})


class PriceList(BaseModel):
    """One page of prices, newest first."""

    data: list[Price]
    total: int = Field(description="Prices matching the filters, on every page.")
    limit: int
    offset: int
    has_more: bool = Field(description="Whether more matches follow this page.")

    @classmethod
    def from_page(cls, page: Page[Price]) -> PriceList:
        return cls(**{name: getattr(page, name) for name in Page.model_fields})


__all__ = ["PlanCreate", "PlanList", "PlanUpdate", "PriceCreate", "PriceList", "PriceUpdate"]
