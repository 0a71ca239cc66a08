"""The catalog's row layouts, shared by SQLite and PostgreSQL (as ``rows`` is for customers):
column lists, row mappers, argument builders and the filter conditions of the list reads,
all derived from one table of columns per record kind (:class:`Layout`).

Times and JSON cross each driver differently (see :mod:`qzpay.storage.rows`), so mappers take
the backend's decoders and argument builders its time encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from qzpay.catalog.models import Plan, Price
from qzpay.catalog.registry import PLAN, PRICE
from qzpay.storage.base import PlanFilter, PriceFilter
from qzpay.storage.rows import Decode, EncodeTime, Row, dump_json

__all__ = ["PLAN", "PRICE"]  # registered in qzpay.records whenever storage is loaded

R = TypeVar("R", bound=BaseModel)
F = TypeVar("F")

Codec = Literal["json", "time", "maybe_time", "flag"] | None
"""How a column crosses the driver: JSON text, the backend's time encoding (``maybe_time``:
of a time that may be None), a boolean read back with ``bool`` (SQLite stores an integer), or
as it is (None)."""


class Layout(Generic[R, F]):
    """One catalog record kind's row: ``columns`` as ``(column, model field, codec)`` in the
    order the mappers read them back (a query for an idempotent create adds the request
    fingerprint as the next column), ``updated`` the columns an update sets after the id, and
    ``filters`` the filter fields that are equality conditions on the column of that name."""

    def __init__(
        self,
        kind: str,
        model: type[R],
        columns: tuple[tuple[str, str, Codec], ...],
        *,
        updated: tuple[str, ...],
        filters: tuple[str, ...],
    ) -> None:
        self.kind = kind
        self.table = f"{kind}s"
        self._model: type[R] = model
        self._columns = columns
        self._updated = tuple(column for column in columns if column[0] in updated)
        self._id = next(column for column in columns if column[0] == "id")
        self._filters = filters
        # The field behind a ``provider_ids`` column (None: the kind has no link table).
        self.links_field = next(
            (field for name, field, _ in columns if name == "provider_ids"), None
        )
        self.columns = ", ".join(name for name, _, _ in columns)
        self.fingerprint_at = len(columns)
        self.insert_columns = f"{self.columns}, idempotency_key, request_fingerprint"
        self.update_columns = ", ".join(name for name, _, _ in self._updated)

    def mapper(self, *, decode_time: Decode, decode_json: Decode) -> Callable[[Row], R]:
        """Row (``columns``) -> record."""

        def maybe_time(value: Any) -> Any:
            return None if value is None else decode_time(value)

        decoders: dict[Codec, Decode] = {
            "json": decode_json,
            "time": decode_time,
            "maybe_time": maybe_time,
            "flag": bool,
        }
        fields = [(field, decoders.get(codec)) for _, field, codec in self._columns]
        construct = self._model.model_construct

        def from_row(row: Row) -> R:
            return construct(
                **{
                    field: row[at] if decode is None else decode(row[at])
                    for at, (field, decode) in enumerate(fields)
                }
            )

        return from_row

    def links(self, record: R) -> dict[str, str]:
        """The record's provider ids (the ``provider_ids`` column; none without one)."""
        if self.links_field is None:
            return {}
        links: dict[str, str] = getattr(record, self.links_field)
        return links

    def args(
        self,
        record: R,
        *,
        encode_time: EncodeTime,
        idempotency_key: str | None,
        request_fingerprint: str | None,
    ) -> tuple[object, ...]:
        """The arguments of an insert into ``insert_columns``."""
        return (*_encode(record, self._columns, encode_time), idempotency_key, request_fingerprint)

    def update_args(self, record: R, *, encode_time: EncodeTime) -> tuple[object, ...]:
        """The id, then ``update_columns``."""
        return tuple(_encode(record, (self._id, *self._updated), encode_time))

    def conditions(
        self, filters: F, params: list[Any], placeholder: Callable[[int], str]
    ) -> list[str]:
        """SQL conditions for ``filters``, their arguments appended to ``params``."""
        clauses: list[str] = []
        for column in self._filters:
            value = getattr(filters, column)
            if value is not None:
                params.append(value)
                clauses.append(f"{column} = {placeholder(len(params))}")
        return clauses


def _encode(
    record: object, columns: tuple[tuple[str, str, Codec], ...], encode_time: EncodeTime
) -> list[object]:
    values: list[object] = []
    for _, field, codec in columns:
        value = getattr(record, field)
        if codec == "json":
            value = dump_json(value)
        elif codec == "time" or (codec == "maybe_time" and value is not None):
            value = encode_time(value)
        values.append(value)
    return values


PLAN_ROWS: Layout[Plan, PlanFilter] = Layout(
    "plan",
    Plan,
    (
        ("id", "id", None),
        ("key", "key", None),
        ("name", "name", None),
        ("description", "description", None),
        ("entitlements", "entitlements", "json"),
        ("limits", "limits", "json"),
        ("metadata", "metadata", "json"),
        ("active", "active", "flag"),
        ("provider_ids", "provider_plan_ids", "json"),
        ("created_at", "created_at", "time"),
        ("updated_at", "updated_at", "time"),
    ),
    # Everything but the id, the key (which never changes) and the creation time.
    updated=(
        "name",
        "description",
        "entitlements",
        "limits",
        "metadata",
        "active",
        "provider_ids",
        "updated_at",
    ),
    filters=("active",),
)
PRICE_ROWS: Layout[Price, PriceFilter] = Layout(
    "price",
    Price,
    (
        ("id", "id", None),
        ("plan_id", "plan_id", None),
        ("currency", "currency", None),
        ("unit_amount", "unit_amount", None),
        ("recurring_interval", "interval", None),
        ("interval_count", "interval_count", None),
        ("trial_days", "trial_days", None),
        ("lookup_key", "lookup_key", None),
        ("metadata", "metadata", "json"),
        ("active", "active", "flag"),
        ("provider_ids", "provider_price_ids", "json"),
        ("created_at", "created_at", "time"),
        ("updated_at", "updated_at", "time"),
    ),
    # Amount, currency and interval never change on a price.
    updated=("lookup_key", "metadata", "active", "provider_ids", "updated_at"),
    filters=("plan_id", "active", "currency"),
)
PLAN_COLUMNS = PLAN_ROWS.columns
PRICE_COLUMNS = PRICE_ROWS.columns


def update_sql(
    table: str,
    columns: str,
    placeholder: Callable[[int], str],
    casts: Mapping[str, str] | None = None,
) -> str:
    """``UPDATE table SET ... WHERE id = <1st>``, the columns from the 2nd argument on (with
    ``casts[column]`` after a column's placeholder, if any)."""
    casts = casts or {}
    names = [column.strip() for column in columns.split(",")]
    sets = ", ".join(
        f"{name} = {placeholder(number)}{casts.get(name, '')}"
        for number, name in enumerate(names, start=2)
    )
    return f"UPDATE {table} SET {sets} WHERE id = {placeholder(1)}"


def where(clauses: list[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def link_changes(
    old: dict[str, str], new: dict[str, str]
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The (provider, id) links ``new`` drops, and those it adds, relative to ``old``."""
    dropped = [(p, v) for p, v in old.items() if new.get(p) != v]
    added = {p: v for p, v in new.items() if old.get(p) != v}
    return dropped, added
