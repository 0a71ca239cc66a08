"""The catalog (plans and prices) on PostgreSQL: statements, and the mix-in that gives the
transaction its catalog methods (the storage's are :mod:`qzpay.storage.sql_reads`, over
:data:`CATALOG`).

A plan or price is one row (JSONB copies of its lists and maps) and its provider ids a link
table, as customers. Catalog writes are rare next to reads, so a transaction sends each one at
once (after BEGIN): a write that breaks a unique index raises its ConflictError from the call,
and two writes of one transaction keep their order (moving a lookup key from one active price
to another is two updates, the first freeing the key). Reading a record for change queues on
its advisory lock, then locks the row, as customers do, so one record's events keep commit
order. Committed reads are one statement each.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

from qzpay.catalog.models import Plan, Price
from qzpay.storage.base import CreateKey, PlanFilter, PriceFilter
from qzpay.storage.catalog_rows import PLAN_ROWS, PRICE_ROWS
from qzpay.storage.layout import Layout, Table
from qzpay.storage.postgres.checked import only_if_written, record_check
from qzpay.storage.postgres.records import POSTGRES, RecordTransaction
from qzpay.storage.postgres.sql import Check
from qzpay.storage.rows import dump_json
from qzpay.storage.sql_reads import CatalogStatements

R = TypeVar("R", bound=BaseModel)
F = TypeVar("F")

CATALOG_LOCK_CLASS = 0x717A_7063  # "qzpc": first key of the per-plan/price advisory lock


class _Kind(Table[R, F], Generic[R, F]):
    """The table of one record kind (``plan`` or ``price``) and the statements of its link
    table ``plan_links (provider, provider_plan_id, plan_id)``."""

    def __init__(self, rows: Layout[R, F]) -> None:
        super().__init__(rows, POSTGRES)
        kind, table, links = rows.kind, rows.table, f"{rows.kind}_links"
        remote, local = f"provider_{kind}_id", f"{kind}_id"
        links_at = [c.strip() for c in rows.insert_columns.split(",")].index("provider_ids") + 1
        self.insert_links = (
            f"INSERT INTO {links} (provider, {remote}, {local}) "
            f"SELECT key, value, $1::text FROM jsonb_each_text(${links_at}::jsonb)"
        )
        self.drop_links = f"DELETE FROM {links} WHERE {local} = $1 AND provider = ANY({{}}::text[])"
        self.upsert_links = (
            f"INSERT INTO {links} (provider, {remote}, {local}) "
            f"SELECT key, value, $1::text FROM jsonb_each_text({{}}::jsonb) "
            f"ON CONFLICT ({local}, provider) DO UPDATE SET {remote} = excluded.{remote}"
        )
        select = ", ".join(f"r.{name.strip()}" for name in rows.columns.split(","))
        self.by_provider_id = (
            f"SELECT {select} FROM {links} AS l JOIN {table} AS r ON r.id = l.{local} "
            f"WHERE l.{remote} = $1"
        )
        self.by_provider = f"{self.by_provider_id} AND l.provider = $2"
        self.checked_links = only_if_written((self.drop_links, self.upsert_links))

    def insert_statements(self, record: R) -> list[str]:
        """The record's insert, then its links' when it has any."""
        return [self.insert, self.insert_links] if self.rows.links(record) else [self.insert]

    def update_statements(
        self, before: R, after: R, *, checked: bool
    ) -> tuple[list[str], list[object]]:
        """The record's update and its link changes (by difference), and their arguments;
        ``checked``: the link changes of a checked write (made only if the update is)."""
        drop, upsert = self.checked_links if checked else (self.drop_links, self.upsert_links)
        statements = [self.update]
        params = list(self.update_args(after))
        old, new = self.rows.links(before), self.rows.links(after)
        removed = [provider for provider in old if provider not in new]
        if removed:
            params.append(removed)
            statements.append(drop.format(f"${len(params)}"))
        changed = {p: remote for p, remote in new.items() if old.get(p) != remote}
        if changed:
            params.append(dump_json(changed))
            statements.append(upsert.format(f"${len(params)}"))
        return statements, params


PLANS: _Kind[Plan, PlanFilter] = _Kind(PLAN_ROWS)
PRICES: _Kind[Price, PriceFilter] = _Kind(PRICE_ROWS)

GET_PLAN_BY_KEY = f"{PLANS.select} WHERE key = $1"
# The predicate of the partial unique index, so that index answers it.
GET_PRICE_BY_LOOKUP_KEY = (
    f"{PRICES.select} WHERE lookup_key = $1 AND active AND lookup_key IS NOT NULL"
)
ACTIVE_PRICES = f"{PRICES.select} WHERE plan_id = $1 AND active ORDER BY id DESC"
CATALOG = CatalogStatements(PLANS, PRICES, GET_PLAN_BY_KEY, GET_PRICE_BY_LOOKUP_KEY)


_CONFLICTS: dict[str, tuple[str, str]] = {
    "plans_idempotency_key_key": ("idempotency_key_reused", "idempotency key already used"),
    "prices_idempotency_key_key": ("idempotency_key_reused", "idempotency key already used"),
    "plans_key_key": ("plan_key_taken", "the plan key is taken by another plan"),
    "prices_active_lookup_key": (
        "lookup_key_taken",
        "the lookup key is held by another active price",
    ),
    "plan_links_pkey": ("provider_id_taken", "the provider plan id is linked to another plan"),
    "price_links_pkey": (
        "provider_id_taken",
        "the provider price id is linked to another price",
    ),
    "plan_links_plan_provider_key": (
        "provider_already_linked",
        "the plan is already linked at this provider",
    ),
    "price_links_price_provider_key": (
        "provider_already_linked",
        "the price is already linked at this provider",
    ),
}


PLAN_CHECK = record_check(PLANS, CATALOG_LOCK_CLASS, _CONFLICTS)
PRICE_CHECK = record_check(PRICES, CATALOG_LOCK_CLASS, _CONFLICTS)


class CatalogTransaction(RecordTransaction):
    """Catalog writes of PostgresTransaction."""

    async def _insert(
        self, kind: _Kind[R, F], check: Check, record: R, key: CreateKey | None
    ) -> None:
        statements = kind.insert_statements(record)
        await self._insert_record(check, record, statements, kind.insert_args(record, key))

    async def _update(self, kind: _Kind[R, F], check: Check, before: R, after: R) -> None:
        if after != before:
            checked = self._checks(kind.rows.record_id(before))
            await self._change(
                check, after, *kind.update_statements(before, after, checked=checked)
            )

    async def get_plan(self, plan_id: str) -> Plan | None:
        return await self._for_change(PLANS, PLAN_CHECK, plan_id)

    async def find_idempotent_plan(self, idempotency_key: str) -> tuple[Plan, str] | None:
        return await self._idempotent(PLANS, idempotency_key)

    async def insert_plan(self, plan: Plan, key: CreateKey | None = None) -> None:
        await self._insert(PLANS, PLAN_CHECK, plan, key)

    async def update_plan(self, before: Plan, after: Plan) -> None:
        await self._update(PLANS, PLAN_CHECK, before, after)

    async def get_price(self, price_id: str) -> Price | None:
        return await self._for_change(PRICES, PRICE_CHECK, price_id)

    async def find_idempotent_price(self, idempotency_key: str) -> tuple[Price, str] | None:
        return await self._idempotent(PRICES, idempotency_key)

    async def insert_price(self, price: Price, key: CreateKey | None = None) -> None:
        await self._insert(PRICES, PRICE_CHECK, price, key)

    async def find_active_price(self, lookup_key: str) -> Price | None:
        row = await self._fetchrow(GET_PRICE_BY_LOOKUP_KEY, lookup_key)
        return None if row is None else PRICES.from_row(row)

    async def active_prices(self, plan_id: str) -> list[Price]:
        return [PRICES.from_row(row) for row in await self._fetch(ACTIVE_PRICES, plan_id)]

    async def update_price(self, before: Price, after: Price) -> None:
        await self._update(PRICES, PRICE_CHECK, before, after)
