"""A small catalog for subscription tests, made through the public API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from qzpay import Billing
from qzpay.catalog.models import Plan, Price


@dataclass(frozen=True)
class Catalog:
    """``free_plan`` (api, reports; projects 3, seats 5) with a weekly free price ``free`` and
    another, ``old_free``; ``team_plan`` (api, sso; projects 10) with a free monthly price
    ``team_free`` and a paid one, ``paid`` (USD 19.99 a month, 14 days' trial)."""

    free_plan: Plan
    free: Price
    old_free: Price
    team_plan: Plan
    team_free: Price
    paid: Price


async def make_catalog(billing: Billing) -> Catalog:
    tag = secrets.token_hex(3)
    free_plan = await billing.plans.create(
        key=f"free-{tag}",
        name="Free",
        entitlements=["reports", "api"],
        limits={"projects": 3, "seats": 5},
    )
    team_plan = await billing.plans.create(
        key=f"team-{tag}", name="Team", entitlements=["api", "sso"], limits={"projects": 10}
    )
    free = await billing.prices.create(free_plan.id, currency="USD", unit_amount=0, interval="week")
    old_free = await billing.prices.create(
        free_plan.id, currency="USD", unit_amount=0, interval="month"
    )
    team_free = await billing.prices.create(
        team_plan.id, currency="USD", unit_amount=0, interval="month"
    )
    paid = await billing.prices.create(
        team_plan.id, currency="USD", unit_amount=1999, interval="month", trial_days=14
    )
    return Catalog(free_plan, free, old_free, team_plan, team_free, paid)
