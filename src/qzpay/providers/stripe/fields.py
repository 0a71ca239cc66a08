"""How Stripe writes and reads fields, whatever the object (customer, product, price,
subscription): an update sends only what changed, ``""`` clears a field or a metadata key, and a
blank value read back means unset. One place, so the adapters' mappings cannot drift apart."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel


def text(value: object) -> str | None:
    """Stripe reports unset strings as null; ``""`` (what clearing sends) means unset too."""
    return value if isinstance(value, str) and value else None


def metadata(raw: object) -> dict[str, str]:
    """A Stripe object's metadata as read back: its string values, blank ones (unset) left out."""
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, str) and v}


def changed(before: BaseModel, after: BaseModel, fields: Iterable[str]) -> dict[str, Any]:
    """``after``'s value of each of ``fields`` that differs from ``before``'s, in that order;
    None is sent as ``""``, which clears the field at Stripe."""
    params: dict[str, Any] = {}
    for field in fields:
        value = getattr(after, field)
        if getattr(before, field) != value:
            params[field] = "" if value is None else value
    return params


def metadata_changes(
    before: Mapping[str, str], after: Mapping[str, str], owned_key: str
) -> dict[str, str]:
    """Changed and added keys, removed keys as ``""`` (Stripe's unset); ``owned_key`` (our id,
    set at creation) is never sent by an update."""
    changes = {k: v for k, v in after.items() if before.get(k) != v}
    changes.update({k: "" for k in before if k not in after})
    changes.pop(owned_key, None)
    return changes


def metadata_param(
    before: Mapping[str, str], after: Mapping[str, str], owned_key: str
) -> dict[str, dict[str, str]]:
    """``{"metadata": changes}`` for an update, or nothing when no key changed."""
    changes = metadata_changes(before, after, owned_key)
    return {"metadata": changes} if changes else {}
