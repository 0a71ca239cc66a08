"""Plans and prices in the record registry (:mod:`qzpay.records`): how storage decodes a plan
or price it keeps as JSON (a sync task's snapshot, an event's data), and their links fields.

Imported by the catalog's storage code as well as by its engine resources, so any process that
can read a plan from storage has them registered.
"""

from __future__ import annotations

from qzpay.catalog.models import Plan, Price
from qzpay.records import register

# Archived, never deleted: ``plan.created``, ``plan.updated``, ``plan.archived``.
EVENTS = ("created", "updated", "archived")
PLAN = register("plan", Plan, links_field="provider_plan_ids", events=EVENTS)
PRICE = register("price", Price, links_field="provider_price_ids", events=EVENTS)
