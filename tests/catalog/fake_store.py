"""A tiny in-memory "apply" for catalog diffs: plain lists, no storage, no engine.

It carries out each change the way ``billing.catalog.apply`` is meant to (a replaced price
loses its lookup key and is archived; archiving a plan archives its active prices) and
records the events each step would emit, so tests can check that a second apply does nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from qzpay.catalog.changes import (
    ArchivePlan,
    ArchivePrice,
    CreatePlan,
    CreatePrice,
    ReplacePrice,
    UpdatePlan,
    UpdatePrice,
)
from qzpay.catalog.diff import CatalogDiff
from qzpay.catalog.inputs import merge_metadata
from qzpay.catalog.models import Plan, Price, plan_ids, price_ids
from qzpay.catalog.spec import PriceSpec
from qzpay.limits import MAX_METADATA_KEYS

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Store:
    def __init__(self) -> None:
        self.plans: list[Plan] = []
        self.prices: list[Price] = []
        self.events: list[str] = []

    # -- look-ups ----------------------------------------------------------------------------
    def plan(self, key: str) -> Plan:
        return next(plan for plan in self.plans if plan.key == key)

    def price(self, lookup_key: str) -> Price:
        return next(p for p in self.prices if p.active and p.lookup_key == lookup_key)

    # -- writes -----------------------------------------------------------------------------
    def _replace_plan(self, before: Plan, after: Plan, event: str) -> None:
        if before.changed_fields(after):
            self.plans[self.plans.index(before)] = after
            self.events.append(event)

    def _replace_price(self, before: Price, after: Price, event: str) -> None:
        if before.changed_fields(after):
            self.prices[self.prices.index(before)] = after
            self.events.append(event)

    def add_price(self, plan_key: str, spec: PriceSpec, *, active: bool = True) -> Price:
        plan = self.plan(plan_key)
        assert plan.active, "archived plans cannot get new prices"
        price = Price(
            id=price_ids.new(),
            plan_id=plan.id,
            currency=spec.currency,
            unit_amount=spec.unit_amount,
            interval=spec.interval,
            interval_count=spec.interval_count,
            trial_days=spec.trial_days,
            lookup_key=spec.lookup_key,
            metadata=dict(spec.metadata),
            active=active,
            provider_price_ids={},
            created_at=NOW,
            updated_at=NOW,
        )
        if active:
            taken = [p for p in self.prices if p.active and p.lookup_key == spec.lookup_key]
            assert not taken, "lookup keys are unique among active prices"
        self.prices.append(price)
        self.events.append("price.created")
        return price

    def _update(self, record: Any, arguments: dict[str, Any]) -> dict[str, Any]:
        fields = dict(arguments)
        if "metadata" in fields:
            fields["metadata"] = merge_metadata(
                record.metadata, fields["metadata"], limit=MAX_METADATA_KEYS
            )
        return fields

    def archive_price(self, price: Price) -> None:
        self._replace_price(price, price.model_copy(update={"active": False}), "price.archived")

    def apply(self, diff: CatalogDiff) -> None:
        for change in diff.changes:
            match change:
                case CreatePlan(plan=spec):
                    self.plans.append(
                        Plan(
                            id=plan_ids.new(),
                            key=spec.key,
                            name=spec.name,
                            description=spec.description,
                            entitlements=list(spec.entitlements),
                            limits=dict(spec.limits),
                            metadata=dict(spec.metadata),
                            provider_plan_ids={},
                            created_at=NOW,
                            updated_at=NOW,
                        )
                    )
                    self.events.append("plan.created")
                case UpdatePlan(key=key):
                    plan = self.plan(key)
                    after = plan.model_copy(update=self._update(plan, change.arguments()))
                    self._replace_plan(plan, after, "plan.updated")
                case CreatePrice(plan_key=plan_key, price=spec):
                    self.add_price(plan_key, spec)
                case ReplacePrice(old_price_id=old_id, plan_key=plan_key, price=spec):
                    old = next(p for p in self.prices if p.id == old_id)
                    moved = old.model_copy(update={"lookup_key": None})
                    self._replace_price(old, moved, "price.updated")
                    self.add_price(plan_key, spec)
                    self.archive_price(moved)
                case UpdatePrice(price_id=price_id):
                    current = next(p for p in self.prices if p.id == price_id)
                    changed = current.model_copy(update=self._update(current, change.arguments()))
                    self._replace_price(current, changed, "price.updated")
                case ArchivePrice(price_id=price_id):
                    self.archive_price(next(p for p in self.prices if p.id == price_id))
                case ArchivePlan(plan_id=plan_id):
                    plan = next(p for p in self.plans if p.id == plan_id)
                    for price in [p for p in self.prices if p.plan_id == plan_id and p.active]:
                        self.archive_price(price)
                    self._replace_plan(
                        plan, plan.model_copy(update={"active": False}), "plan.archived"
                    )
