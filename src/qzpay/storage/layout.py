"""Row layouts and the statements derived from them, shared by SQLite and PostgreSQL for every
record kind kept as one row (plans, prices, subscriptions; customers keep their hand-tuned
``rows`` module, as theirs is the hot path).

A :class:`Layout` is one table of columns per record kind, from which the column lists, the row
mapper and the argument builders derive; a :class:`Table` is a layout in one SQL dialect: its
statements (get, idempotent create, insert, update, list page, keyset page) written once for
both backends, which differ only in the placeholder (``$1`` / ``?1``), the JSON cast and how a
time crosses the driver (see :mod:`qzpay.storage.rows`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from qzpay.storage.params import CreateKey
from qzpay.storage.rows import Decode, EncodeTime, Row, dump_json

R = TypeVar("R", bound=BaseModel)
F = TypeVar("F")

Codec = Literal["json", "time", "maybe_time", "flag"] | None
"""How a column crosses the driver: JSON text, the backend's time encoding (``maybe_time``:
of a time that may be None), a boolean read back with ``bool`` (SQLite stores an integer), or
as it is (None)."""
Column = tuple[str, str, Codec]
"""``(column, model field, codec)``."""


def same(*names: str, codec: Codec = None) -> tuple[Column, ...]:
    """Columns named as the model fields they hold, each crossing the driver by ``codec``."""
    return tuple((name, name, codec) for name in names)


STAMPS = same("created_at", "updated_at", codec="time")
"""The creation and change times every record kind ends its row with."""


class Layout(Generic[R, F]):
    """One record kind's row: ``columns`` in the order the mappers read them back (a query for
    an idempotent create adds the request fingerprint as the next column), ``updated`` the
    model fields whose columns an update sets after the id, and ``filters`` the filter fields
    that are equality conditions on the column of that name."""

    def __init__(
        self,
        kind: str,
        model: type[R],
        columns: tuple[Column, ...],
        *,
        updated: tuple[str, ...],
        filters: tuple[str, ...],
    ) -> None:
        self.kind = kind
        self.table = f"{kind}s"
        self.model: type[R] = model
        self._columns = columns
        self._updated = tuple(column for column in columns if column[1] in updated)
        self._id = next(column for column in columns if column[0] == "id")
        self._filters = filters
        # The field behind a ``provider_ids`` column (None: the kind has no link table).
        self.links_field = next(
            (field for name, field, _ in columns if name == "provider_ids"), None
        )
        self.json_columns = frozenset(name for name, _, codec in columns if codec == "json")
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
        construct = self.model.model_construct

        def from_row(row: Row) -> R:
            return construct(
                **{
                    field: row[at] if decode is None else decode(row[at])
                    for at, (field, decode) in enumerate(fields)
                }
            )

        return from_row

    def record_id(self, record: R) -> str:
        record_id: str = getattr(record, self._id[1])
        return record_id

    def links(self, record: R) -> dict[str, str]:
        """The record's provider ids (the ``provider_ids`` column; none without one)."""
        if self.links_field is None:
            return {}
        links: dict[str, str] = getattr(record, self.links_field)
        return links

    def args(
        self, record: R, key: CreateKey | None, *, encode_time: EncodeTime
    ) -> tuple[object, ...]:
        """The arguments of an insert into ``insert_columns``."""
        keyed = (None, None) if key is None else (key.idempotency_key, key.request_fingerprint)
        return (*_encode(record, self._columns, encode_time), *keyed)

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


def _encode(record: object, columns: tuple[Column, ...], encode_time: EncodeTime) -> list[object]:
    values: list[object] = []
    for _, field, codec in columns:
        value = getattr(record, field)
        if codec == "json":
            value = dump_json(value)
        elif codec == "time" or (codec == "maybe_time" and value is not None):
            value = encode_time(value)
        values.append(value)
    return values


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one backend writes a statement and passes a time: ``mark`` starts a numbered
    placeholder (``$`` for ``$1``, ``?`` for ``?1``), ``json_cast`` follows a JSON argument."""

    mark: str
    json_cast: str
    encode_time: EncodeTime
    decode_time: Decode

    def placeholder(self, number: int) -> str:
        return f"{self.mark}{number}"


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


def known_total(found: int, *, limit: int, offset: int) -> int | None:
    """The total of a list page when the page itself tells it (the last page), else None."""
    if found < limit and (found or offset == 0):
        return offset + found
    return None


def link_changes(
    old: dict[str, str], new: dict[str, str]
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The (provider, id) links ``new`` drops, and those it adds, relative to ``old``."""
    dropped = [(p, v) for p, v in old.items() if new.get(p) != v]
    added = {p: v for p, v in new.items() if old.get(p) != v}
    return dropped, added


@dataclass(frozen=True, slots=True)
class Page:
    """A list page's statement and the count of all its matches, each with its arguments
    (``count`` is needed only when ``known_total`` cannot tell the total from the page)."""

    query: str
    params: list[Any]
    count: str
    count_params: list[Any]


class Table(Generic[R, F]):
    """A :class:`Layout` in one :class:`Dialect`: its statements, row mapper and arguments.

    ``by_provider_id`` and ``by_provider`` find the records linked to a provider id (at one
    provider); each backend writes them for a kind with a link table, and
    :class:`ColumnLinked` for a kind whose one provider id is a column.
    """

    by_provider_id: str
    by_provider: str

    def __init__(self, rows: Layout[R, F], dialect: Dialect) -> None:
        self.rows = rows
        self.kind = rows.kind
        self.table = table = rows.table
        self.dialect = dialect
        mark = dialect.placeholder
        casts = dict.fromkeys(rows.json_columns, dialect.json_cast)
        self.from_row: Callable[[Row], R] = rows.mapper(
            decode_time=dialect.decode_time, decode_json=json.loads
        )
        self.select = f"SELECT {rows.columns} FROM {table}"
        self.get = f"{self.select} WHERE id = {mark(1)}"
        self.idempotent = (
            f"SELECT {rows.columns}, request_fingerprint FROM {table} "
            f"WHERE idempotency_key = {mark(1)}"
        )
        names = [name.strip() for name in rows.insert_columns.split(",")]
        values = ", ".join(
            f"{mark(number)}{casts.get(name, '')}" for number, name in enumerate(names, start=1)
        )
        self.insert = f"INSERT INTO {table} ({rows.insert_columns}) VALUES ({values})"
        self.update = update_sql(table, rows.update_columns, mark, casts)

    def insert_args(self, record: R, key: CreateKey | None) -> tuple[object, ...]:
        return self.rows.args(record, key, encode_time=self.dialect.encode_time)

    def update_args(self, record: R) -> tuple[object, ...]:
        return self.rows.update_args(record, encode_time=self.dialect.encode_time)

    def page(self, filters: F, *, limit: int, offset: int) -> Page:
        """A list page, newest first, and its count. No OFFSET clause on the first page: with
        one PostgreSQL plans the statement anew on every call (see ``sql.list_query``)."""
        mark = self.dialect.placeholder
        params: list[Any] = []
        clauses = where(self.rows.conditions(filters, params, mark))
        page_params = [*params, limit]
        query = f"{self.select}{clauses} ORDER BY id DESC LIMIT {mark(len(page_params))}"
        if offset:
            page_params.append(offset)
            query += f" OFFSET {mark(len(page_params))}"
        return Page(query, page_params, f"SELECT count(*) FROM {self.table}{clauses}", params)

    def scan(self, filters: F, *, before_id: str | None, limit: int) -> tuple[str, list[Any]]:
        """A keyset page: ids below ``before_id`` (all if None), newest first."""
        mark = self.dialect.placeholder
        params: list[Any] = []
        clauses = self.rows.conditions(filters, params, mark)
        if before_id is not None:
            params.append(before_id)
            clauses.append(f"id < {mark(len(params))}")
        params.append(limit)
        return f"{self.select}{where(clauses)} ORDER BY id DESC LIMIT {mark(len(params))}", params

    def linked(self, remote_id: str, provider: str | None) -> tuple[str, tuple[str, ...]]:
        """The look-up of the records linked to ``remote_id`` (at ``provider``, if given):
        its statement and arguments."""
        if provider is None:
            return self.by_provider_id, (remote_id,)
        return self.by_provider, (remote_id, provider)


class ColumnLinked(Table[R, F]):
    """A table whose records hold one provider id in ``column`` and its provider in
    ``provider``: a provider id is unique per provider (a partial unique index on both, which
    an equality on ``column`` lets answer either look-up)."""

    def __init__(self, rows: Layout[R, F], dialect: Dialect, column: str) -> None:
        super().__init__(rows, dialect)
        mark = dialect.placeholder
        self.by_provider_id = f"{self.select} WHERE {column} = {mark(1)} ORDER BY id"
        self.by_provider = f"{self.select} WHERE {column} = {mark(1)} AND provider = {mark(2)}"
