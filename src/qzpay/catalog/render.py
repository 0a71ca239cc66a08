"""A catalog diff as text, for people (``qzpay catalog diff``): the summary line, then each
change's own lines (:mod:`qzpay.catalog.changes`), written with the pieces here: values as
JSON, a price's terms in words, metadata key by key, details indented."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from qzpay.catalog.currencies import to_major_units
from qzpay.catalog.spec import PriceSpec

INDENT = "    "


class Described(Protocol):
    """A change: its lines, the first marked ``+``, ``~``, ``±`` or ``-``."""

    def lines(self) -> list[str]: ...


def render(changes: Sequence[Described], summary: str) -> str:
    if not changes:
        return "No changes: the catalog matches the spec."
    lines = [f"Catalog changes: {summary}."]
    for change in changes:
        lines.extend(change.lines())
    return "\n".join(lines)


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


def metadata_delta(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """``-"gone", ~"kept": "old" -> "new", +"added"="value"``."""
    parts = [f"-{show(key)}" for key in old if key not in new]
    for key, value in new.items():
        if key not in old:
            parts.append(f"+{show(key)}={show(value)}")
        elif old[key] != value:
            parts.append(f"~{show(key)}: {show(old[key])} -> {show(value)}")
    return ", ".join(parts)


def show(value: Any) -> str:
    """A value as JSON (quoted strings, so blanks and odd characters stay visible)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def indent(lines: list[str]) -> list[str]:
    return [INDENT + line for line in lines]
