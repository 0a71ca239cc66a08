"""Request and response bodies of the plans and prices routes.

As for customers (qzpay.api.schemas): request models check shape and JSON types only, and
every business rule (slugs, currencies, amounts, intervals, metadata limits, ...) stays in
the library, which reports all problems at once with stable codes. Responses are the
library's own ``Plan`` and ``Price`` models.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from qzpay.api.bodies import METADATA_RULES, PageBody, PartialUpdate, request_config
from qzpay.catalog.models import Interval, Plan, Price

_SLUG = "A slug: `[a-z0-9][a-z0-9_-]{0,63}`."


class PlanCreate(BaseModel):
    """A new plan. ``key`` and ``name`` are required."""

    model_config = request_config(
        {
            "key": "pro",
            "name": "Pro",
            "description": "For growing teams",
            "entitlements": ["api", "sso"],
            "limits": {"seats": 5},
            "metadata": {"tier": "2"},
        }
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
    metadata: dict[str, str] = Field(default_factory=dict, description=METADATA_RULES)


class PlanUpdate(PartialUpdate):
    """A partial update: a field left out is unchanged. ``entitlements`` and ``limits`` are
    replaced whole; ``null`` clears ``description``; ``metadata`` merges into the stored
    metadata (a key set to ``null`` is removed). An archived plan cannot change (409)."""

    model_config = request_config({"name": "Pro (2025)", "limits": {"seats": 10}})

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


class PriceCreate(BaseModel):
    """A new recurring price of a live plan."""

    model_config = request_config(
        {
            "plan_id": "plan_01J0000000000000000000000",
            "currency": "usd",
            "unit_amount": 1999,
            "interval": "month",
            "lookup_key": "pro_monthly",
        }
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
    metadata: dict[str, str] = Field(default_factory=dict, description=METADATA_RULES)


class PriceUpdate(PartialUpdate):
    """Only ``lookup_key`` and ``metadata`` change (a price's amount, currency and interval
    never do). A lookup key another active price holds moves to this one; ``null`` removes
    it. ``metadata`` merges (a key set to ``null`` is removed)."""

    model_config = request_config({"lookup_key": "pro_monthly", "metadata": {"v": "2"}})

    lookup_key: str | None = Field(default=None, description="`null` removes it.")
    metadata: dict[str, str | None] | SkipJsonSchema[None] = Field(
        default=None, description="Merged into the stored metadata; a `null` value removes a key."
    )


class PlanList(PageBody[Plan]):
    """One page of plans, newest first."""

    total: int = Field(description="Plans matching the filters, on every page.")


class PriceList(PageBody[Price]):
    """One page of prices, newest first."""

    total: int = Field(description="Prices matching the filters, on every page.")


__all__ = ["PlanCreate", "PlanList", "PlanUpdate", "PriceCreate", "PriceList", "PriceUpdate"]
