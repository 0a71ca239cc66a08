"""The public subscription objects: a customer's subscription to a price, and the change of
what a customer may use (``customer.entitlements_changed``).

A subscription is billed by at most one provider (``provider``; None for a free subscription
kept only here). That provider is the source of truth for its billing state (status, periods,
trial, cancellation): qzpay asks it to change and stores what it answers, and applies what its
webhooks report. A subscription is never deleted: it ends as ``canceled`` and stays readable.

Access: a subscription grants its plan's entitlements and limits while its status is one of
:data:`GRANTING` (``trialing``, ``active``, ``past_due``: a payment is being retried, access
continues until the provider gives up). ``incomplete`` (not paid yet), ``paused``, ``unpaid``,
``canceled`` and ``incomplete_expired`` grant nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict

from qzpay.customers.models import changed_values
from qzpay.ids import IdGenerator

SubscriptionStatus = Literal[
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "unpaid",
    "paused",
    "canceled",
]
STATUSES: Final[tuple[SubscriptionStatus, ...]] = get_args(SubscriptionStatus)
GRANTING: Final[tuple[SubscriptionStatus, ...]] = ("trialing", "active", "past_due")
"""The statuses in which a subscription grants its plan's entitlements and limits."""
ENDED: Final[tuple[SubscriptionStatus, ...]] = ("canceled", "incomplete_expired")
"""Final statuses: nothing changes a subscription in one of them any more."""

Proration = Literal["create_prorations", "none"]

subscription_ids = IdGenerator("sub_")

# Fields reported in an event's ``previous``; ``updated_at`` is bookkeeping, not a change.
SUBSCRIPTION_FIELDS: Final = (
    "customer_id",
    "price_id",
    "plan_id",
    "quantity",
    "status",
    "current_period_start",
    "current_period_end",
    "trial_start",
    "trial_end",
    "cancel_at_period_end",
    "canceled_at",
    "ended_at",
    "payment_url",
    "provider",
    "provider_subscription_id",
    "metadata",
)


class Subscription(BaseModel):
    """A subscription as stored. Immutable: changes go through ``billing.subscriptions``.

    ``payment_url`` is where the customer completes the first payment or authorises the
    subscription while it is ``incomplete`` (None otherwise, and for free subscriptions).
    ``metadata`` is a copy; mutating it changes nothing stored.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    customer_id: str
    price_id: str
    plan_id: str
    quantity: int = 1
    status: SubscriptionStatus
    current_period_start: datetime
    current_period_end: datetime
    trial_start: datetime | None = None
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = None
    ended_at: datetime | None = None
    payment_url: str | None = None
    provider: str | None = None
    provider_subscription_id: str | None = None
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime

    @property
    def grants_access(self) -> bool:
        """Whether the status grants the plan's entitlements (:data:`GRANTING`)."""
        return self.status in GRANTING

    @property
    def provider_subscription_ids(self) -> dict[str, str]:
        """``{provider: provider_subscription_id}``, or ``{}`` for a subscription no provider
        bills: the links the engine and sync tasks read (a subscription has at most one)."""
        if self.provider is None or self.provider_subscription_id is None:
            return {}
        return {self.provider: self.provider_subscription_id}

    @property
    def deleted_at(self) -> None:
        """Always None: a subscription ends (``canceled``), it is never deleted."""
        return None

    def changed_fields(self, other: Subscription) -> dict[str, Any]:
        """The user-visible fields whose values differ in ``other``, with this record's values
        (JSON values: times as ISO 8601 text, as an event's ``previous`` is stored)."""
        return changed_values(self, other, SUBSCRIPTION_FIELDS, _stored_time)


def _stored_time(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class EntitlementsChange(BaseModel):
    """The data of ``customer.entitlements_changed``: what the customer may use before and
    after a change (each a sorted list of entitlement keys), at ``changed_at``.

    ``id`` is the customer's id, so the event is in the customer's timeline
    (``list_record_events``) like its other events.
    """

    model_config = ConfigDict(frozen=True)

    customer_id: str
    before: list[str]
    after: list[str]
    changed_at: datetime

    @property
    def id(self) -> str:
        return self.customer_id

    @property
    def updated_at(self) -> datetime:
        """When the change committed (what an event is stamped with)."""
        return self.changed_at
