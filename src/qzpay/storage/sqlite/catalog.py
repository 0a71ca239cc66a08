"""The catalog (plans and prices) on SQLite: mixed into the transaction, the reader and the
storage. The write transaction holds the file's write lock, so conflicts are checked by
reading first; the unique indexes of migration 0006 stay the last word."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from qzpay._time import from_micros, to_micros
from qzpay.catalog.models import Plan, Price
from qzpay.errors import ConflictError
from qzpay.storage.base import PlanFilter, PriceFilter
from qzpay.storage.catalog_rows import (
    PLAN_ROWS,
    PRICE_ROWS,
    Layout,
    link_changes,
    update_sql,
    where,
)
from qzpay.storage.rows import Row


def _mark(number: int) -> str:
    return f"?{number}"


R = TypeVar("R", Plan, Price)


class _Kind(Generic[R]):
    """One record kind's statements (from its :class:`Layout`) and row mapper; its link table
    is ``plan_links (provider, provider_plan_id, plan_id)``."""

    def __init__(self, rows: Layout[R, Any]) -> None:
        self.rows: Layout[R, Any] = rows
        self.kind = kind = rows.kind
        self.from_row: Callable[[Row], R] = rows.mapper(
            decode_time=from_micros, decode_json=json.loads
        )
        self.table = rows.table
        self.select = select = f"SELECT {rows.columns} FROM {self.table}"
        self.by_record_id = f"{select} WHERE id = ?"
        self.idempotent = f"SELECT {rows.columns}, request_fingerprint FROM {self.table} "
        self.idempotent += "WHERE idempotency_key = ?"
        marks = ", ".join("?" for _ in rows.insert_columns.split(","))
        self.insert = f"INSERT INTO {self.table} ({rows.insert_columns}) VALUES ({marks})"
        self.update = update_sql(self.table, rows.update_columns, _mark)
        table, remote, local = f"{kind}_links", f"provider_{kind}_id", f"{kind}_id"
        self.owner = f"SELECT {local} FROM {table} WHERE provider = ? AND {remote} = ?"
        self.link = f"INSERT INTO {table} (provider, {remote}, {local}) VALUES (?, ?, ?)"
        self.unlink = f"DELETE FROM {table} WHERE provider = ? AND {remote} = ?"
        self.by_id = f"{select} WHERE id IN (SELECT {local} FROM {table} WHERE {remote} = ?)"
        self.by_provider = (
            f"{select} WHERE id IN (SELECT {local} FROM {table} WHERE {remote} = ? "
            "AND provider = ?)"
        )

    def claim(self, db: sqlite3.Connection, record_id: str, links: dict[str, str]) -> None:
        for provider, remote_id in links.items():
            row = db.execute(self.owner, (provider, remote_id)).fetchone()
            if row is not None and row[0] != record_id:
                raise ConflictError(
                    f"{provider} {self.kind} {remote_id!r} is already linked to {self.kind} "
                    f"{row[0]}",
                    code="provider_id_taken",
                )

    def write(
        self, db: sqlite3.Connection, record_id: str, old: dict[str, str], new: dict[str, str]
    ) -> None:
        dropped, added = link_changes(old, new)
        self.claim(db, record_id, added)
        if dropped:
            db.executemany(self.unlink, dropped)
        if added:
            db.executemany(self.link, [(p, v, record_id) for p, v in added.items()])


PLANS = _Kind(PLAN_ROWS)
PRICES = _Kind(PRICE_ROWS)
# The predicate of the partial unique index, so that index answers it.
_BY_LOOKUP_KEY = f"{PRICES.select} WHERE lookup_key = ? AND active = 1 AND lookup_key IS NOT NULL"
_ACTIVE_PRICES = f"{PRICES.select} WHERE plan_id = ? AND active = 1 ORDER BY id DESC"


def _plan_key_holder(db: sqlite3.Connection, plan: Plan) -> None:
    holder = db.execute("SELECT id FROM plans WHERE key = ?", (plan.key,)).fetchone()
    if holder is not None:
        raise ConflictError(
            f"plan key {plan.key!r} is taken by plan {holder[0]}", code="plan_key_taken"
        )


def _lookup_key_holder(db: sqlite3.Connection, price: Price) -> None:
    if not price.active or price.lookup_key is None:
        return
    row = db.execute(
        "SELECT id FROM prices WHERE lookup_key = ? AND active = 1 AND id <> ?",
        (price.lookup_key, price.id),
    ).fetchone()
    if row is not None:
        raise ConflictError(
            f"lookup key {price.lookup_key!r} is held by the active price {row[0]}",
            code="lookup_key_taken",
        )


class CatalogTransaction:
    """Catalog writes of SQLiteTransaction (which holds the write connection as ``_db``)."""

    _db: sqlite3.Connection

    def _row(self, kind: _Kind[R], statement: str, key: str) -> R | None:
        row = self._db.execute(statement, (key,)).fetchone()
        return None if row is None else kind.from_row(row)

    def _idempotent(self, kind: _Kind[R], idempotency_key: str) -> tuple[R, str] | None:
        row = self._db.execute(kind.idempotent, (idempotency_key,)).fetchone()
        return None if row is None else (kind.from_row(row), row[kind.rows.fingerprint_at])

    def _insert(
        self,
        kind: _Kind[R],
        record: R,
        taken: Callable[[sqlite3.Connection, R], None],
        idempotency_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        """Insert after the checks, in this order: the idempotency key, ``taken`` (the
        record's unique key), its provider links."""
        db, links = self._db, kind.rows.links(record)
        if (
            idempotency_key is not None
            and db.execute(
                f"SELECT 1 FROM {kind.table} WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
        ):
            raise ConflictError("idempotency key already used", code="idempotency_key_reused")
        taken(db, record)
        kind.claim(db, record.id, links)
        args = kind.rows.args(
            record,
            encode_time=to_micros,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
        )
        db.execute(kind.insert, args)
        kind.write(db, record.id, {}, links)

    def _update(self, kind: _Kind[R], before: R, after: R) -> None:
        db = self._db
        old, new = kind.rows.links(before), kind.rows.links(after)
        kind.claim(db, after.id, link_changes(old, new)[1])
        db.execute(kind.update, kind.rows.update_args(after, encode_time=to_micros))
        kind.write(db, after.id, old, new)

    async def get_plan(self, plan_id: str) -> Plan | None:
        return self._row(PLANS, PLANS.by_record_id, plan_id)

    async def find_idempotent_plan(self, idempotency_key: str) -> tuple[Plan, str] | None:
        return self._idempotent(PLANS, idempotency_key)

    async def insert_plan(
        self,
        plan: Plan,
        *,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
    ) -> None:
        self._insert(PLANS, plan, _plan_key_holder, idempotency_key, request_fingerprint)

    async def update_plan(self, before: Plan, after: Plan) -> None:
        self._update(PLANS, before, after)

    async def get_price(self, price_id: str) -> Price | None:
        return self._row(PRICES, PRICES.by_record_id, price_id)

    async def find_idempotent_price(self, idempotency_key: str) -> tuple[Price, str] | None:
        return self._idempotent(PRICES, idempotency_key)

    async def insert_price(
        self,
        price: Price,
        *,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
    ) -> None:
        self._insert(PRICES, price, _lookup_key_holder, idempotency_key, request_fingerprint)

    async def find_active_price(self, lookup_key: str) -> Price | None:
        return self._row(PRICES, _BY_LOOKUP_KEY, lookup_key)

    async def active_prices(self, plan_id: str) -> list[Price]:
        rows = self._db.execute(_ACTIVE_PRICES, (plan_id,)).fetchall()
        return [PRICES.from_row(row) for row in rows]

    async def update_price(self, before: Price, after: Price) -> None:
        _lookup_key_holder(self._db, after)
        self._update(PRICES, before, after)


class CatalogReader:
    """Catalog reads of the Reader (committed data; ``_query`` runs one statement)."""

    def _query(self, sql: str, params: Iterable[object] = ()) -> list[Any]:
        raise NotImplementedError  # pragma: no cover - the Reader's

    def get_plan(self, plan_id: str) -> Plan | None:
        return self._one(PLANS, PLANS.by_record_id, plan_id)

    def get_plan_by_key(self, key: str) -> Plan | None:
        return self._one(PLANS, f"{PLANS.select} WHERE key = ?", key)

    def find_plans_by_provider_id(
        self, provider_plan_id: str, *, provider: str | None
    ) -> list[Plan]:
        return self._linked(PLANS, provider_plan_id, provider)

    def list_plans(self, filters: PlanFilter, *, limit: int, offset: int) -> tuple[list[Plan], int]:
        params: list[Any] = []
        return self._list(
            PLANS, PLAN_ROWS.conditions(filters, params, _mark), params, limit, offset
        )

    def scan_plans(self, filters: PlanFilter, *, before_id: str | None, limit: int) -> list[Plan]:
        params: list[Any] = []
        clauses = PLAN_ROWS.conditions(filters, params, _mark)
        return self._scan(PLANS, clauses, params, before_id, limit)

    def get_price(self, price_id: str) -> Price | None:
        return self._one(PRICES, PRICES.by_record_id, price_id)

    def get_price_by_lookup_key(self, lookup_key: str) -> Price | None:
        return self._one(PRICES, _BY_LOOKUP_KEY, lookup_key)

    def find_prices_by_provider_id(
        self, provider_price_id: str, *, provider: str | None
    ) -> list[Price]:
        return self._linked(PRICES, provider_price_id, provider)

    def list_prices(
        self, filters: PriceFilter, *, limit: int, offset: int
    ) -> tuple[list[Price], int]:
        params: list[Any] = []
        clauses = PRICE_ROWS.conditions(filters, params, _mark)
        return self._list(PRICES, clauses, params, limit, offset)

    def scan_prices(
        self, filters: PriceFilter, *, before_id: str | None, limit: int
    ) -> list[Price]:
        params: list[Any] = []
        clauses = PRICE_ROWS.conditions(filters, params, _mark)
        return self._scan(PRICES, clauses, params, before_id, limit)

    # -- shared -------------------------------------------------------------------------
    def _one(self, kind: _Kind[R], statement: str, key: str) -> R | None:
        rows = self._query(statement, (key,))
        return kind.from_row(rows[0]) if rows else None

    def _linked(self, kind: _Kind[R], remote_id: str, provider: str | None) -> list[R]:
        if provider is None:
            rows = self._query(kind.by_id, (remote_id,))
        else:
            rows = self._query(kind.by_provider, (remote_id, provider))
        return [kind.from_row(row) for row in rows]

    def _list(
        self, kind: _Kind[R], conditions: list[str], params: list[Any], limit: int, offset: int
    ) -> tuple[list[R], int]:
        clauses, n = where(conditions), len(params)
        rows = self._query(
            f"{kind.select}{clauses} ORDER BY id DESC LIMIT ?{n + 1} OFFSET ?{n + 2}",
            [*params, limit, offset],
        )
        found = len(rows)
        if found < limit and (found or offset == 0):
            total = offset + found
        else:
            total = int(self._query(f"SELECT count(*) FROM {kind.table}{clauses}", params)[0][0])
        return [kind.from_row(row) for row in rows], total

    def _scan(
        self,
        kind: _Kind[R],
        clauses: list[str],
        params: list[Any],
        before_id: str | None,
        limit: int,
    ) -> list[R]:
        if before_id is not None:
            params.append(before_id)
            clauses.append(f"id < ?{len(params)}")
        params.append(limit)
        rows = self._query(
            f"{kind.select}{where(clauses)} ORDER BY id DESC LIMIT ?{len(params)}", params
        )
        return [kind.from_row(row) for row in rows]


class CatalogStorage:
    """The catalog reads of SQLiteStorage, on its event-loop reader."""

    async def _loop_reader(self) -> CatalogReader:
        raise NotImplementedError  # pragma: no cover - the storage's

    async def get_plan(self, plan_id: str) -> Plan | None:
        return (await self._loop_reader()).get_plan(plan_id)

    async def get_plan_by_key(self, key: str) -> Plan | None:
        return (await self._loop_reader()).get_plan_by_key(key)

    async def find_plans_by_provider_id(
        self, provider_plan_id: str, *, provider: str | None
    ) -> list[Plan]:
        reader = await self._loop_reader()
        return reader.find_plans_by_provider_id(provider_plan_id, provider=provider)

    async def list_plans(
        self, filters: PlanFilter, *, limit: int, offset: int
    ) -> tuple[list[Plan], int]:
        return (await self._loop_reader()).list_plans(filters, limit=limit, offset=offset)

    async def scan_plans(
        self, filters: PlanFilter, *, before_id: str | None, limit: int
    ) -> list[Plan]:
        return (await self._loop_reader()).scan_plans(filters, before_id=before_id, limit=limit)

    async def get_price(self, price_id: str) -> Price | None:
        return (await self._loop_reader()).get_price(price_id)

    async def get_price_by_lookup_key(self, lookup_key: str) -> Price | None:
        return (await self._loop_reader()).get_price_by_lookup_key(lookup_key)

    async def find_prices_by_provider_id(
        self, provider_price_id: str, *, provider: str | None
    ) -> list[Price]:
        reader = await self._loop_reader()
        return reader.find_prices_by_provider_id(provider_price_id, provider=provider)

    async def list_prices(
        self, filters: PriceFilter, *, limit: int, offset: int
    ) -> tuple[list[Price], int]:
        return (await self._loop_reader()).list_prices(filters, limit=limit, offset=offset)

    async def scan_prices(
        self, filters: PriceFilter, *, before_id: str | None, limit: int
    ) -> list[Price]:
        return (await self._loop_reader()).scan_prices(filters, before_id=before_id, limit=limit)
