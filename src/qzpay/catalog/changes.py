"""The changes a catalog diff is made of: frozen data, one class per kind of change, each
naming its ``action`` (in ``CatalogDiff.as_dict``) and writing its own ``lines()`` for people
(``qzpay catalog diff``, through :func:`qzpay.catalog.render.render`): the first marked ``+``
(create), ``~`` (update), ``±`` (replace) or ``-`` (archive), the details indented under it.

Plans are named by ``key`` (a plan being created has no id yet), prices by ``lookup_key``
and, once stored, by id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from qzpay.catalog.render import describe_price, indent, metadata_delta, show
from qzpay.catalog.spec import PlanSpec, PriceSpec


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any

    def line(self) -> str:
        """``name: "Basic" -> "Basic+"``; metadata key by key (``-"a", +"b"="x"``)."""
        if self.field == "metadata":
            return f"metadata: {metadata_delta(self.old, self.new)}"
        return f"{self.field}: {show(self.old)} -> {show(self.new)}"


def _details(changes: Iterable[FieldChange]) -> list[str]:
    return indent([change.line() for change in changes])


@dataclass(frozen=True)
class CreatePlan:
    plan: PlanSpec
    action: ClassVar[str] = "create_plan"

    def lines(self) -> list[str]:
        plan = self.plan
        details = [f"name: {show(plan.name)}"]
        if plan.description is not None:
            details.append(f"description: {show(plan.description)}")
        if plan.entitlements:
            details.append(f"entitlements: {show(list(plan.entitlements))}")
        if plan.limits:
            details.append(f"limits: {show(plan.limits)}")
        if plan.metadata:
            details.append(f"metadata: {show(plan.metadata)}")
        return [f"+ plan {plan.key}", *indent(details)]


class _Update:
    """A change of a stored plan or price, made by its service's ``update``."""

    changes: tuple[FieldChange, ...]

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``plans.update`` / ``prices.update`` that make the change
        (metadata as a patch: changed keys set, dropped keys None)."""
        return {change.field: _argument(change) for change in self.changes}

    def lines(self) -> list[str]:
        return [f"~ {self.subject()}", *_details(self.changes)]

    def subject(self) -> str:
        """The record changed: ``plan basic (plan_…)``, ``price basic_monthly (price_…)``."""
        raise NotImplementedError


@dataclass(frozen=True)
class UpdatePlan(_Update):
    plan_id: str
    key: str
    changes: tuple[FieldChange, ...]
    action: ClassVar[str] = "update_plan"

    def subject(self) -> str:
        return f"plan {self.key} ({self.plan_id})"


@dataclass(frozen=True)
class ArchivePlan:
    plan_id: str
    key: str
    price_ids: tuple[str, ...]
    """Its active prices, which archiving the plan archives too."""
    action: ClassVar[str] = "archive_plan"

    def lines(self) -> list[str]:
        line = f"- plan {self.key} ({self.plan_id}): archive"
        if self.price_ids:
            count = len(self.price_ids)
            line += f", with its {count} active price{'' if count == 1 else 's'}"
        return [line]


@dataclass(frozen=True)
class CreatePrice:
    plan_key: str
    price: PriceSpec
    action: ClassVar[str] = "create_price"

    def lines(self) -> list[str]:
        price = self.price
        return [f"+ price {price.lookup_key} on plan {self.plan_key}: {describe_price(price)}"]


@dataclass(frozen=True)
class ReplacePrice:
    """Create ``price`` on plan ``plan_key``, moving ``lookup_key`` to it, and archive the
    active price ``old_price_id`` that had it. ``changes`` names what forced the new price
    (``plan`` is a plan key; ``metadata`` is listed when it differs too)."""

    old_price_id: str
    plan_key: str
    price: PriceSpec
    changes: tuple[FieldChange, ...]
    action: ClassVar[str] = "replace_price"

    def lines(self) -> list[str]:
        price = self.price
        head = (
            f"± price {price.lookup_key} ({self.old_price_id}): replace with a new price on plan "
        )
        return [
            f"{head}{self.plan_key}: {describe_price(price)}; the old price is archived",
            *_details(self.changes),
        ]


@dataclass(frozen=True)
class UpdatePrice(_Update):
    price_id: str
    plan_key: str
    lookup_key: str
    changes: tuple[FieldChange, ...]
    action: ClassVar[str] = "update_price"

    def subject(self) -> str:
        return f"price {self.lookup_key} ({self.price_id})"


@dataclass(frozen=True)
class ArchivePrice:
    price_id: str
    plan_key: str
    lookup_key: str | None
    action: ClassVar[str] = "archive_price"

    def lines(self) -> list[str]:
        name = self.price_id if self.lookup_key is None else f"{self.lookup_key} ({self.price_id})"
        return [f"- price {name} on plan {self.plan_key}: archive"]


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
    return {"action": change.action, **fields}


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
