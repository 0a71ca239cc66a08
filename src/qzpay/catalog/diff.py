"""What it takes to make the stored catalog match a spec: ``diff(plans, prices, spec)``.

Pure: it reads the current plans and prices (every one, archived too) and a parsed
:class:`~qzpay.catalog.spec.CatalogSpec`, and returns a :class:`CatalogDiff` — plain data that
``billing.catalog.apply`` carries out in :meth:`CatalogDiff.changes` order and that
``qzpay catalog diff`` prints (``str(diff)``) or dumps (``diff.as_dict()``).

The rules (issue 12):

* a plan is matched by ``key``, a price by ``lookup_key`` among the *active* prices;
* a plan the spec names and the store lacks is created; a stored one whose name, description,
  entitlements, limits or metadata differ is updated (metadata as a whole: keys the spec
  lacks are removed);
* a price the spec names and no active price has is created; one whose plan, currency,
  amount, interval, interval count or trial days differ is *replaced* (those never change on
  a price): a new price is created, the old archived, the lookup key moved to the new one; one
  whose only difference is metadata is updated;
* with ``archive_missing`` only, active plans the spec does not name are archived (with their
  active prices), and so are active prices it does not name;
* a spec naming an archived plan is a ConflictError (``plan_archived``): archived plans cannot
  change or get new prices, so the spec must use a new key.

Applying a diff and diffing again gives an empty diff: that is what makes ``apply`` idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from qzpay.catalog.changes import (
    ArchivePlan,
    ArchivePrice,
    Change,
    CreatePlan,
    CreatePrice,
    FieldChange,
    ReplacePrice,
    UpdatePlan,
    UpdatePrice,
    change_dict,
)
from qzpay.catalog.models import Plan, Price
from qzpay.catalog.render import render
from qzpay.catalog.spec import CatalogSpec, PlanSpec, PriceSpec
from qzpay.errors import ConflictError

__all__ = [
    "ArchivePlan",
    "ArchivePrice",
    "CatalogDiff",
    "Change",
    "CreatePlan",
    "CreatePrice",
    "FieldChange",
    "ReplacePrice",
    "UpdatePlan",
    "UpdatePrice",
    "diff",
]


@dataclass(frozen=True)
class CatalogDiff:
    create_plans: tuple[CreatePlan, ...] = ()
    update_plans: tuple[UpdatePlan, ...] = ()
    create_prices: tuple[CreatePrice, ...] = ()
    replace_prices: tuple[ReplacePrice, ...] = ()
    update_prices: tuple[UpdatePrice, ...] = ()
    archive_prices: tuple[ArchivePrice, ...] = ()
    archive_plans: tuple[ArchivePlan, ...] = ()

    @property
    def changes(self) -> tuple[Change, ...]:
        """Every change, in the order to apply them: plans first (prices need them), new and
        replacing prices before archives, plans archived last."""
        return (
            *self.create_plans,
            *self.update_plans,
            *self.create_prices,
            *self.replace_prices,
            *self.update_prices,
            *self.archive_prices,
            *self.archive_plans,
        )

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def __str__(self) -> str:
        return render(self.changes, self.summary())

    def summary(self) -> str:
        """One line: how many plans and prices each kind of change touches."""
        counts = [
            (len(self.create_plans), "plan", "to create"),
            (len(self.update_plans), "plan", "to update"),
            (len(self.archive_plans), "plan", "to archive"),
            (len(self.create_prices), "price", "to create"),
            (len(self.replace_prices), "price", "to replace"),
            (len(self.update_prices), "price", "to update"),
            (len(self.archive_prices), "price", "to archive"),
        ]
        parts = [f"{n} {what}{'' if n == 1 else 's'} {verb}" for n, what, verb in counts if n]
        return ", ".join(parts) if parts else "no changes"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"summary": ..., "changes": [{"action": "create_plan", ...}, ...]}``."""
        return {"summary": self.summary(), "changes": [change_dict(c) for c in self.changes]}


def diff(
    plans: Iterable[Plan],
    prices: Iterable[Price],
    spec: CatalogSpec,
    *,
    archive_missing: bool = False,
) -> CatalogDiff:
    """What must change for the stored catalog (``plans``, ``prices``: all of them, archived
    ones included) to match ``spec`` (see the module docstring for the rules)."""
    by_key = {plan.key: plan for plan in plans}
    key_of = {plan.id: plan.key for plan in by_key.values()}
    active = [price for price in prices if price.active]
    by_lookup = {price.lookup_key: price for price in active if price.lookup_key is not None}

    create_plans: list[CreatePlan] = []
    update_plans: list[UpdatePlan] = []
    create_prices: list[CreatePrice] = []
    replace_prices: list[ReplacePrice] = []
    update_prices: list[UpdatePrice] = []
    claimed: set[str] = set()
    for wanted in spec.plans:
        plan = by_key.get(wanted.key)
        if plan is None:
            create_plans.append(CreatePlan(wanted))
        elif not plan.active:
            raise ConflictError(
                f"plan {wanted.key!r} ({plan.id}) is archived: archived plans cannot change "
                "or get new prices; give the plan a new key in the catalog",
                code="plan_archived",
            )
        else:
            changes = _plan_changes(plan, wanted)
            if changes:
                update_plans.append(UpdatePlan(plan.id, plan.key, changes))
        plan_id = None if plan is None else plan.id
        for price_spec in wanted.prices:
            current = by_lookup.get(price_spec.lookup_key)
            if current is None:
                create_prices.append(CreatePrice(wanted.key, price_spec))
                continue
            claimed.add(current.id)
            fixed = _fixed_changes(current, price_spec, plan_id, wanted.key, key_of)
            metadata = _metadata_change(current.metadata, price_spec.metadata)
            if fixed:
                changes = (*fixed, *metadata)
                replace_prices.append(ReplacePrice(current.id, wanted.key, price_spec, changes))
            elif metadata:
                update_prices.append(
                    UpdatePrice(current.id, wanted.key, price_spec.lookup_key, metadata)
                )

    archive_prices: list[ArchivePrice] = []
    archive_plans: list[ArchivePlan] = []
    if archive_missing:
        named = {plan.key for plan in spec.plans}
        dropped = {p.id for p in by_key.values() if p.active and p.key not in named}
        left = [price for price in active if price.id not in claimed]
        for plan in by_key.values():
            if plan.id in dropped:
                ids = tuple(price.id for price in left if price.plan_id == plan.id)
                archive_plans.append(ArchivePlan(plan.id, plan.key, ids))
        for price in left:
            if price.plan_id not in dropped:
                plan_key = key_of.get(price.plan_id, price.plan_id)
                archive_prices.append(ArchivePrice(price.id, plan_key, price.lookup_key))

    return CatalogDiff(
        create_plans=tuple(create_plans),
        update_plans=tuple(update_plans),
        create_prices=tuple(create_prices),
        replace_prices=tuple(replace_prices),
        update_prices=tuple(update_prices),
        archive_prices=tuple(archive_prices),
        archive_plans=tuple(archive_plans),
    )


def _plan_changes(plan: Plan, wanted: PlanSpec) -> tuple[FieldChange, ...]:
    pairs: list[tuple[str, Any, Any]] = [
        ("name", plan.name, wanted.name),
        ("description", plan.description, wanted.description),
        ("entitlements", plan.entitlements, list(wanted.entitlements)),
        ("limits", plan.limits, dict(wanted.limits)),
    ]
    changes = [FieldChange(field, old, new) for field, old, new in pairs if old != new]
    return (*changes, *_metadata_change(plan.metadata, wanted.metadata))


def _fixed_changes(
    price: Price,
    wanted: PriceSpec,
    plan_id: str | None,
    plan_key: str,
    key_of: Mapping[str, str],
) -> tuple[FieldChange, ...]:
    """The differences only a new price can make."""
    changes: list[FieldChange] = []
    if price.plan_id != plan_id:
        changes.append(FieldChange("plan", key_of.get(price.plan_id, price.plan_id), plan_key))
    for field in ("currency", "unit_amount", "interval", "interval_count", "trial_days"):
        old, new = getattr(price, field), getattr(wanted, field)
        if old != new:
            changes.append(FieldChange(field, old, new))
    return tuple(changes)


def _metadata_change(
    current: Mapping[str, str], wanted: Mapping[str, str]
) -> tuple[FieldChange, ...]:
    if dict(current) == dict(wanted):
        return ()
    return (FieldChange("metadata", dict(current), dict(wanted)),)
