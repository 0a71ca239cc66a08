"""A catalog diff as text, for people (``qzpay catalog diff``): one line per change, marked
``+`` (create), ``~`` (update), ``±`` (replace) or ``-`` (archive), with indented details."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
)
from qzpay.catalog.currencies import to_major_units
from qzpay.catalog.spec import PriceSpec

INDENT = "    "


def render(changes: Sequence[Change], summary: str) -> str:
    if not changes:
        return "No changes: the catalog matches the spec."
    lines = [f"Catalog changes: {summary}."]
    for change in changes:
        lines.extend(_lines(change))
    return "\n".join(lines)


def _lines(change: Change) -> list[str]:
    match change:
        case CreatePlan(plan=plan):
            details = [f"name: {_show(plan.name)}"]
            if plan.description is not None:
                details.append(f"description: {_show(plan.description)}")
            if plan.entitlements:
                details.append(f"entitlements: {_show(list(plan.entitlements))}")
            if plan.limits:
                details.append(f"limits: {_show(plan.limits)}")
            if plan.metadata:
                details.append(f"metadata: {_show(plan.metadata)}")
            return [f"+ plan {plan.key}", *_indent(details)]
        case UpdatePlan(plan_id=plan_id, key=key, changes=changes):
            return [f"~ plan {key} ({plan_id})", *_indent(_field_lines(changes))]
        case ArchivePlan(plan_id=plan_id, key=key, price_ids=price_ids):
            line = f"- plan {key} ({plan_id}): archive"
            if price_ids:
                count = len(price_ids)
                line += f", with its {count} active price{'' if count == 1 else 's'}"
            return [line]
        case CreatePrice(plan_key=plan_key, price=price):
            return [f"+ price {price.lookup_key} on plan {plan_key}: {describe_price(price)}"]
        case ReplacePrice(old_price_id=old, plan_key=plan_key, price=price, changes=changes):
            head = f"± price {price.lookup_key} ({old}): replace with a new price on plan "
            return [
                f"{head}{plan_key}: {describe_price(price)}; the old price is archived",
                *_indent(_field_lines(changes)),
            ]
        case UpdatePrice(price_id=price_id, lookup_key=lookup_key, changes=changes):
            return [f"~ price {lookup_key} ({price_id})", *_indent(_field_lines(changes))]
        case ArchivePrice(price_id=price_id, plan_key=plan_key, lookup_key=lookup_key):
            name = price_id if lookup_key is None else f"{lookup_key} ({price_id})"
            return [f"- price {name} on plan {plan_key}: archive"]
    raise TypeError(f"not a catalog change: {change!r}")  # pragma: no cover


def describe_price(price: PriceSpec) -> str:
    """``"19.99 USD every month, 14-day trial"``."""
    amount = to_major_units(price.unit_amount, price.currency)
    every = (
        price.interval
        if price.interval_count == 1
        else (f"{price.interval_count} {price.interval}s")
    )
    text = f"{amount} {price.currency} every {every}"
    if price.trial_days is not None:
        text += f", {price.trial_days}-day trial"
    return text


def _field_lines(changes: Sequence[FieldChange]) -> list[str]:
    lines = []
    for change in changes:
        if change.field == "metadata":
            lines.append(f"metadata: {_metadata_delta(change.old, change.new)}")
        else:
            lines.append(f"{change.field}: {_show(change.old)} -> {_show(change.new)}")
    return lines


def _metadata_delta(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    parts = [f"-{_show(key)}" for key in old if key not in new]
    for key, value in new.items():
        if key not in old:
            parts.append(f"+{_show(key)}={_show(value)}")
        elif old[key] != value:
            parts.append(f"~{_show(key)}: {_show(old[key])} -> {_show(value)}")
    return ", ".join(parts)


def _show(value: Any) -> str:
    """A value as JSON (quoted strings, so blanks and odd characters stay visible)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _indent(lines: list[str]) -> list[str]:
    return [INDENT + line for line in lines]
