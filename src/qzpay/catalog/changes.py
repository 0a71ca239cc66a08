"""The changes a catalog diff is made of: plain frozen data, one class per kind of change.

Plans are named by ``key`` (a plan being created has no id yet), prices by ``lookup_key``
and, once stored, by id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qzpay.catalog.spec import PlanSpec, PriceSpec


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class CreatePlan:
    plan: PlanSpec


class _Update:
    """A change of a stored plan or price, made by its service's ``update``."""

    changes: tuple[FieldChange, ...]

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``plans.update`` / ``prices.update`` that make the change
        (metadata as a patch: changed keys set, dropped keys None)."""
        return {change.field: _argument(change) for change in self.changes}


@dataclass(frozen=True)
class UpdatePlan(_Update):
    plan_id: str
    key: str
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class ArchivePlan:
    plan_id: str
    key: str
    price_ids: tuple[str, ...]
    """Its active prices, which archiving the plan archives too."""


@dataclass(frozen=True)
class CreatePrice:
    plan_key: str
    price: PriceSpec


@dataclass(frozen=True)
class ReplacePrice:
    """Create ``price`` on plan ``plan_key``, moving ``lookup_key`` to it, and archive the
    active price ``old_price_id`` that had it. ``changes`` names what forced the new price
    (``plan`` is a plan key; ``metadata`` is listed when it differs too)."""

    old_price_id: str
    plan_key: str
    price: PriceSpec
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class UpdatePrice(_Update):
    price_id: str
    plan_key: str
    lookup_key: str
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class ArchivePrice:
    price_id: str
    plan_key: str
    lookup_key: str | None


Change = (
    CreatePlan | UpdatePlan | CreatePrice | ReplacePrice | UpdatePrice | ArchivePrice | ArchivePlan
)


def metadata_patch(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str | None]:
    """The ``metadata=`` argument of an update turning ``old`` into ``new``."""
    patch: dict[str, str | None] = {key: None for key in old if key not in new}
    patch.update({key: value for key, value in new.items() if old.get(key) != value})
    return patch


def _argument(change: FieldChange) -> Any:
    if change.field == "metadata":
        return metadata_patch(change.old, change.new)
    return change.new


def change_dict(change: Change) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in vars(change).items():
        if name == "changes":
            value = [vars(item) for item in value]
        elif isinstance(value, PlanSpec | PriceSpec):
            value = _spec_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        fields[name] = value
    return {"action": _ACTIONS[type(change)], **fields}


def _spec_dict(spec: PlanSpec | PriceSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in vars(spec).items():
        if name == "prices":  # a new plan's prices are changes of their own
            continue
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[name] = value
    return out


_ACTIONS: dict[type, str] = {
    CreatePlan: "create_plan",
    UpdatePlan: "update_plan",
    ArchivePlan: "archive_plan",
    CreatePrice: "create_price",
    ReplacePrice: "replace_price",
    UpdatePrice: "update_price",
    ArchivePrice: "archive_price",
}
