"""Request and response bodies of the HTTP API.

Request models check shape and JSON types only; every business rule (a valid email, E.164
phones, metadata limits, ...) stays in the library, which reports all problems at once with
stable codes. Responses reuse the library's own ``Customer`` and ``Event`` models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from qzpay.api.bodies import METADATA_RULES, PartialUpdate, page_fields, request_config
from qzpay.catalog.models import Plan, Price
from qzpay.customers.models import Address, Customer
from qzpay.events import Event
from qzpay.page import Page
from qzpay.subscriptions.models import EntitlementsChange, Subscription


class CustomerCreate(BaseModel):
    """A new customer. Only ``email`` is required."""

    model_config = request_config(
        {
            "email": "user@example.com",
            "name": "John Doe",
            "phone": "+14155552671",
            "address": {"line1": "1 Market St", "city": "San Francisco", "country": "US"},
            "metadata": {"userId": "usr_123"},
        }
    )

    email: str = Field(description="A valid email address (no DNS look-up); stored as given.")
    name: str | None = Field(
        default=None, description="Trimmed; must not be blank; at most 256 characters."
    )
    phone: str | None = Field(
        default=None, description="International form; stored in E.164 (`+14155552671`)."
    )
    address: Address | None = Field(
        default=None, description="`country` is an ISO 3166-1 alpha-2 code."
    )
    metadata: dict[str, str] = Field(default_factory=dict, description=METADATA_RULES)


class CustomerUpdate(PartialUpdate):
    """A partial update (merge-patch semantics).

    A field left out is unchanged. ``null`` clears ``name``, ``phone`` or ``address`` (an
    address is replaced whole). ``metadata`` merges into the stored metadata: a key set to
    ``null`` is removed, keys not named are kept. ``email`` cannot be cleared.
    """

    model_config = request_config({"name": "Jane Doe", "metadata": {"plan": "pro"}})

    email: str | SkipJsonSchema[None] = Field(
        default=None, description="A valid email address; cannot be null."
    )
    name: str | None = Field(default=None, description="`null` clears the name.")
    phone: str | None = Field(default=None, description="`null` clears the phone.")
    address: Address | None = Field(
        default=None, description="Replaces the whole address; `null` clears it."
    )
    metadata: dict[str, str | None] | SkipJsonSchema[None] = Field(
        default=None, description="Merged into the stored metadata; a `null` value removes a key."
    )

    def changes(self) -> dict[str, Any]:
        """The fields sent, for ``customers.update`` (an address as a plain mapping)."""
        sent = super().changes()
        return {
            name: value.model_dump() if isinstance(value, Address) else value
            for name, value in sent.items()
        }


class CustomerList(BaseModel):
    """One page of customers, newest first."""

    data: list[Customer]
    total: int = Field(description="Customers matching the filters, on every page.")
    limit: int
    offset: int = Field(description="The offset used (0 when paging with `starting_after`).")
    has_more: bool = Field(description="Whether more matches follow this page.")
    next_cursor: str | None = Field(
        description="Pass as `starting_after` to get the next page; null on the last page."
    )

    @classmethod
    def from_page(cls, page: Page[Customer], next_cursor: str | None) -> CustomerList:
        """``page`` as the response body, with the cursor to the page after it."""
        return cls(**page_fields(page), next_cursor=next_cursor)


class EventList(BaseModel):
    """Events in commit order: a customer's, a plan's, a price's or a subscription's (``data``
    is the record), or ``customer.entitlements_changed`` (``data`` is what the customer may use
    before and after the change)."""

    data: list[Event | Event[Plan] | Event[Price] | Event[Subscription] | Event[EntitlementsChange]]
    next_after: str | None = Field(
        description=(
            "Pass as `after` to continue: the last event's id, or the `after` you sent when "
            "there is nothing new (null if there are no events at all)."
        )
    )


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class WebhookReceipt(BaseModel):
    """What a webhook delivery did."""

    status: Literal["applied", "ignored", "duplicate"] = Field(
        description=(
            "`applied`: the customer was re-fetched and stored (or confirmed unchanged); "
            "`ignored`: not about a customer qzpay knows; `duplicate`: delivered before."
        )
    )
    event_id: str = Field(description="The provider's event id.")


__all__ = [
    "CustomerCreate",
    "CustomerList",
    "CustomerUpdate",
    "EventList",
    "Health",
    "WebhookReceipt",
]
