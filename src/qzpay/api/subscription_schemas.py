"""Request and response bodies of the subscriptions and entitlements routes.

As for customers and the catalog (qzpay.api.schemas, qzpay.api.catalog_schemas): request
models check shape and JSON types only, and every business rule (id lengths, quantity and
trial ranges, provider names, metadata limits, ...) stays in the library, which reports all
problems of a call at once with stable codes (``invalid_id``, ``out_of_range``, ...). The
limits are still documented in the OpenAPI schema (``maxLength``, ``minimum``, ``maximum``,
from qzpay.limits), so a client can check them first. Responses are the library's own
``Subscription`` model, and small bodies for the entitlement answers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, JsonValue
from pydantic.json_schema import SkipJsonSchema

from qzpay.api.bodies import METADATA_RULES, PageBody, request_config
from qzpay.limits import (
    MAX_ID_LENGTH,
    MAX_PROVIDER_NAME_LENGTH,
    MAX_QUANTITY,
    MAX_SLUG_LENGTH,
    MAX_TRIAL_DAYS,
)
from qzpay.subscriptions.models import Proration, Subscription

_ID: dict[str, JsonValue] = {"minLength": 1, "maxLength": MAX_ID_LENGTH}
_QUANTITY: dict[str, JsonValue] = {"minimum": 1, "maximum": MAX_QUANTITY}
_QUANTITY_RULE = f"An integer from 1 to {MAX_QUANTITY:,} (seats, units)."


class SubscriptionCreate(BaseModel):
    """A new subscription of a live customer to an active price."""

    model_config = request_config(
        {
            "customer_id": "cus_01J0000000000000000000000",
            "price_id": "price_01J0000000000000000000000",
            "quantity": 1,
            "metadata": {"source": "signup"},
        }
    )

    customer_id: str = Field(
        description="The customer (`cus_…`); it must not be deleted.", json_schema_extra=_ID
    )
    price_id: str = Field(
        description=(
            "An active price (`price_…`) of a live plan. A paid price needs a provider to "
            "bill it (409 `provider_required` without one)."
        ),
        json_schema_extra=_ID,
    )
    quantity: int = Field(default=1, description=_QUANTITY_RULE, json_schema_extra=_QUANTITY)
    trial_days: int | None = Field(
        default=None,
        description=(
            f"Days of trial: 0 for none, 1–{MAX_TRIAL_DAYS}, or null for the price's own "
            "trial. A free price kept without a provider never has a trial."
        ),
        json_schema_extra={"minimum": 0, "maximum": MAX_TRIAL_DAYS},
    )
    provider: str | None = Field(
        default=None,
        description=(
            "The configured provider that bills it (`stripe`, `mercadopago`); needed when "
            "several are configured. Absent: the only one, or none."
        ),
        json_schema_extra={"minLength": 1, "maxLength": MAX_PROVIDER_NAME_LENGTH},
    )
    metadata: dict[str, str] = Field(default_factory=dict, description=METADATA_RULES)


class SubscriptionCancel(BaseModel):
    """How to cancel. The body may be left out: the subscription then ends at period end."""

    model_config = request_config({"at_period_end": False})

    at_period_end: bool = Field(
        default=True,
        description=(
            "`true`: keep access until the current period ends, then end "
            "(`cancel_at_period_end`); `false`: end now (`canceled`)."
        ),
    )


class SubscriptionPriceChange(BaseModel):
    """Move the subscription to another active price (and its plan)."""

    model_config = request_config({"price_id": "price_01J0000000000000000000000", "quantity": 3})

    price_id: str = Field(
        description=(
            "The new active price (`price_…`). Without a provider it must be free too "
            "(409 `provider_required`)."
        ),
        json_schema_extra=_ID,
    )
    quantity: int | SkipJsonSchema[None] = Field(
        default=None,
        description=f"{_QUANTITY_RULE} Absent: the current quantity is kept.",
        json_schema_extra=_QUANTITY,
    )
    proration: Proration = Field(
        default="create_prorations",
        description="Whether the provider prorates the change (ignored without a provider).",
    )

    def changes(self) -> dict[str, Any]:
        """Keyword arguments for ``subscriptions.change_price`` (besides the price)."""
        return {"quantity": self.quantity, "proration": self.proration}


class SubscriptionList(PageBody[Subscription]):
    """One page of subscriptions, newest first."""

    total: int = Field(description="Subscriptions matching the filters, on every page.")


class Entitlements(BaseModel):
    """What the customer may use now: the union of the entitlement keys of the plans of its
    `trialing`, `active` and `past_due` subscriptions (empty for an unknown customer)."""

    customer_id: str
    entitlements: list[str] = Field(description="Entitlement keys, sorted.")


class EntitlementCheck(BaseModel):
    """Whether the customer may use the feature ``key`` now."""

    customer_id: str
    key: str = Field(description="The entitlement key asked about.")
    allowed: bool = Field(description="False for an unknown customer or key.")


class LimitValue(BaseModel):
    """A limit of the customer now: the largest value among the plans granting it access."""

    customer_id: str
    key: str = Field(description="The limit's name.")
    limit: int | None = Field(
        description="Null when no plan granting the customer access defines it."
    )


KEY_RULE = f"A slug: `[a-z0-9][a-z0-9_-]{{0,{MAX_SLUG_LENGTH - 1}}}`."

__all__ = [
    "KEY_RULE",
    "EntitlementCheck",
    "Entitlements",
    "LimitValue",
    "SubscriptionCancel",
    "SubscriptionCreate",
    "SubscriptionList",
    "SubscriptionPriceChange",
]
