"""The catalog's row layouts, shared by SQLite and PostgreSQL (as ``rows`` is for customers):
one table of columns per record kind (:class:`~qzpay.storage.layout.Layout`), from which the
column lists, row mappers, argument builders and the filter conditions of the list reads
derive."""

from __future__ import annotations

from qzpay.catalog.models import PLAN_FIELDS, Plan, Price
from qzpay.catalog.registry import PLAN, PRICE
from qzpay.storage.base import PlanFilter, PriceFilter
from qzpay.storage.layout import STAMPS, Layout, same

__all__ = ["PLAN", "PRICE"]  # registered in qzpay.records whenever storage is loaded

PLAN_ROWS: Layout[Plan, PlanFilter] = Layout(
    "plan",
    Plan,
    (
        *same("id", "key", "name", "description"),
        *same("entitlements", "limits", "metadata", codec="json"),
        *same("active", codec="flag"),
        ("provider_ids", "provider_plan_ids", "json"),
        *STAMPS,
    ),
    # Every field an event reports but the key (which never changes), and the time of the
    # change.
    updated=(*(f for f in PLAN_FIELDS if f != "key"), "updated_at"),
    filters=("active",),
)
PRICE_ROWS: Layout[Price, PriceFilter] = Layout(
    "price",
    Price,
    (
        *same("id", "plan_id", "currency", "unit_amount"),
        ("recurring_interval", "interval", None),
        *same("interval_count", "trial_days", "lookup_key"),
        *same("metadata", codec="json"),
        *same("active", codec="flag"),
        ("provider_ids", "provider_price_ids", "json"),
        *STAMPS,
    ),
    # Amount, currency and interval never change on a price.
    updated=("lookup_key", "metadata", "active", "provider_price_ids", "updated_at"),
    filters=("plan_id", "active", "currency"),
)
