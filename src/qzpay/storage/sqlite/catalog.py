"""The catalog (plans and prices) on SQLite: the transaction's mix-in, and the statements of
the storage's reads (:data:`CATALOG`, read by :mod:`qzpay.storage.sql_reads`). The write
transaction holds the file's write lock, so conflicts are checked by reading first; the unique
indexes of migration 0006 stay the last word."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Generic, TypeVar

from qzpay.catalog.models import Plan, Price
from qzpay.errors import ConflictError
from qzpay.storage.base import CreateKey, PlanFilter, PriceFilter
from qzpay.storage.catalog_rows import PLAN_ROWS, PRICE_ROWS
from qzpay.storage.layout import Layout, Table, link_changes
from qzpay.storage.sql_reads import CatalogStatements
from qzpay.storage.sqlite.records import SQLITE, RecordWrites

R = TypeVar("R", bound=Plan | Price)
F = TypeVar("F")


class _Kind(Table[R, F], Generic[R, F]):
    """One record kind's table and the statements of its link table
    ``plan_links (provider, provider_plan_id, plan_id)``."""

    def __init__(self, rows: Layout[R, F]) -> None:
        super().__init__(rows, SQLITE)
        kind, select = rows.kind, self.select
        table, remote, local = f"{kind}_links", f"provider_{kind}_id", f"{kind}_id"
        self.owner = f"SELECT {local} FROM {table} WHERE provider = ? AND {remote} = ?"
        self.link = f"INSERT INTO {table} (provider, {remote}, {local}) VALUES (?, ?, ?)"
        self.unlink = f"DELETE FROM {table} WHERE provider = ? AND {remote} = ?"
        self.by_provider_id = (
            f"{select} WHERE id IN (SELECT {local} FROM {table} WHERE {remote} = ?)"
        )
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


PLANS: _Kind[Plan, PlanFilter] = _Kind(PLAN_ROWS)
PRICES: _Kind[Price, PriceFilter] = _Kind(PRICE_ROWS)
_BY_KEY = f"{PLANS.select} WHERE key = ?"
# The predicate of the partial unique index, so that index answers it.
_BY_LOOKUP_KEY = f"{PRICES.select} WHERE lookup_key = ? AND active = 1 AND lookup_key IS NOT NULL"
_ACTIVE_PRICES = f"{PRICES.select} WHERE plan_id = ? AND active = 1 ORDER BY id DESC"
CATALOG = CatalogStatements(PLANS, PRICES, _BY_KEY, _BY_LOOKUP_KEY)


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


class CatalogTransaction(RecordWrites):
    """Catalog writes of SQLiteTransaction."""

    def _insert(
        self,
        kind: _Kind[R, F],
        record: R,
        taken: Callable[[sqlite3.Connection, R], None],
        key: CreateKey | None,
    ) -> None:
        """Insert after the checks, in this order: the idempotency key, ``taken`` (the
        record's unique key), its provider links."""
        db, links = self._db, kind.rows.links(record)
        self._check_key(kind, None if key is None else key.idempotency_key)
        taken(db, record)
        kind.claim(db, record.id, links)
        db.execute(kind.insert, kind.insert_args(record, key))
        kind.write(db, record.id, {}, links)

    def _update(self, kind: _Kind[R, F], before: R, after: R) -> None:
        db = self._db
        old, new = kind.rows.links(before), kind.rows.links(after)
        kind.claim(db, after.id, link_changes(old, new)[1])
        db.execute(kind.update, kind.update_args(after))
        kind.write(db, after.id, old, new)

    async def get_plan(self, plan_id: str) -> Plan | None:
        return self._row(PLANS, PLANS.get, plan_id)

    async def find_idempotent_plan(self, idempotency_key: str) -> tuple[Plan, str] | None:
        return self._idempotent(PLANS, idempotency_key)

    async def insert_plan(self, plan: Plan, key: CreateKey | None = None) -> None:
        self._insert(PLANS, plan, _plan_key_holder, key)

    async def update_plan(self, before: Plan, after: Plan) -> None:
        self._update(PLANS, before, after)

    async def get_price(self, price_id: str) -> Price | None:
        return self._row(PRICES, PRICES.get, price_id)

    async def find_idempotent_price(self, idempotency_key: str) -> tuple[Price, str] | None:
        return self._idempotent(PRICES, idempotency_key)

    async def insert_price(self, price: Price, key: CreateKey | None = None) -> None:
        self._insert(PRICES, price, _lookup_key_holder, key)

    async def find_active_price(self, lookup_key: str) -> Price | None:
        return self._row(PRICES, _BY_LOOKUP_KEY, lookup_key)

    async def active_prices(self, plan_id: str) -> list[Price]:
        rows = self._db.execute(_ACTIVE_PRICES, (plan_id,)).fetchall()
        return [PRICES.from_row(row) for row in rows]

    async def update_price(self, before: Price, after: Price) -> None:
        _lookup_key_holder(self._db, after)
        self._update(PRICES, before, after)
