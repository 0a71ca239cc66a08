"""The catalog (plans and prices) on PostgreSQL: statements, and the mix-ins that give the
transaction and the storage their catalog methods.

A plan or price is one row (JSONB copies of its lists and maps) and its provider ids a link
table, as customers. Catalog writes are rare next to reads, so a transaction sends each one at
once (after BEGIN): a write that breaks a unique index raises its ConflictError from the call,
and two writes of one transaction keep their order (moving a lookup key from one active price
to another is two updates, the first freeing the key). Reading a record for change queues on
its advisory lock, then locks the row, as customers do, so one record's events keep commit
order. Committed reads are one statement each.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

import asyncpg

from qzpay.catalog.models import Plan, Price
from qzpay.errors import ConflictError, StorageError
from qzpay.storage.base import PlanFilter, PriceFilter
from qzpay.storage.catalog_rows import PLAN_ROWS, PRICE_ROWS, Layout, update_sql, where
from qzpay.storage.postgres.connections import DRIVER_ERRORS, Connection, driver_error
from qzpay.storage.postgres.sql import known_total, queue
from qzpay.storage.rows import Row, as_is, dump_json

T = TypeVar("T")
R = TypeVar("R", Plan, Price)

CATALOG_LOCK_CLASS = 0x717A_7063  # "qzpc": first key of the per-plan/price advisory lock


def _placeholder(number: int) -> str:
    return f"${number}"


def _values(columns: str, casts: Mapping[str, str]) -> str:
    return ", ".join(
        f"${n}{casts.get(c.strip(), '')}" for n, c in enumerate(columns.split(","), start=1)
    )


_JSONB = {name: "::jsonb" for name in ("entitlements", "limits", "metadata", "provider_ids")}

GET_PLAN_BY_KEY = f"SELECT {PLAN_ROWS.columns} FROM plans WHERE key = $1"
# The predicate of the partial unique index, so that index answers it.
GET_PRICE_BY_LOOKUP_KEY = (
    f"SELECT {PRICE_ROWS.columns} FROM prices "
    "WHERE lookup_key = $1 AND active AND lookup_key IS NOT NULL"
)
ACTIVE_PRICES = (
    f"SELECT {PRICE_ROWS.columns} FROM prices WHERE plan_id = $1 AND active ORDER BY id DESC"
)


class _Kind(Generic[R]):
    """The statements of one record kind (``plan`` or ``price``) and its row mapper."""

    def __init__(self, rows: Layout[R, Any]) -> None:
        self.rows: Layout[R, Any] = rows
        kind, columns, insert_columns = rows.kind, rows.columns, rows.insert_columns
        table, links = rows.table, f"{kind}_links"
        remote, local = f"provider_{kind}_id", f"{kind}_id"
        self.kind = kind
        self.from_row: Callable[[Row], R] = rows.mapper(decode_time=as_is, decode_json=json.loads)
        self.get = f"SELECT {columns} FROM {table} WHERE id = $1"
        self.get_for_update = f"{self.get} FOR UPDATE"
        self.idempotent = (
            f"SELECT {columns}, request_fingerprint FROM {table} WHERE idempotency_key = $1"
        )
        self.links_at = [c.strip() for c in insert_columns.split(",")].index("provider_ids") + 1
        self.insert = (
            f"INSERT INTO {table} ({insert_columns}) VALUES ({_values(insert_columns, _JSONB)})"
        )
        self.insert_links = (
            f"INSERT INTO {links} (provider, {remote}, {local}) "
            f"SELECT key, value, $1::text FROM jsonb_each_text(${self.links_at}::jsonb)"
        )
        self.update = update_sql(table, rows.update_columns, _placeholder, _JSONB)
        self.drop_links = f"DELETE FROM {links} WHERE {local} = $1 AND provider = ANY({{}}::text[])"
        self.upsert_links = (
            f"INSERT INTO {links} (provider, {remote}, {local}) "
            f"SELECT key, value, $1::text FROM jsonb_each_text({{}}::jsonb) "
            f"ON CONFLICT ({local}, provider) DO UPDATE SET {remote} = excluded.{remote}"
        )
        select = ", ".join(f"r.{name.strip()}" for name in columns.split(","))
        self.by_provider_id = (
            f"SELECT {select} FROM {links} AS l JOIN {table} AS r ON r.id = l.{local} "
            f"WHERE l.{remote} = $1"
        )
        self.by_provider = f"{self.by_provider_id} AND l.provider = $2"
        self.select = f"SELECT {columns} FROM {table}"
        self.count = f"SELECT count(*) FROM {table}"


PLANS = _Kind(PLAN_ROWS)
PRICES = _Kind(PRICE_ROWS)


def _with(statements: list[str]) -> str:
    if len(statements) == 1:
        return statements[0]
    ctes = ", ".join(f"w{index} AS ({sql})" for index, sql in enumerate(statements))
    return f"WITH {ctes} SELECT 1"


def _update_statement(kind: _Kind[R], before: R, after: R) -> tuple[str, list[object]]:
    """The record's update and its link changes (by difference) as one statement."""
    statements = [kind.update]
    params = list(kind.rows.update_args(after, encode_time=as_is))
    old, new = kind.rows.links(before), kind.rows.links(after)
    removed = [provider for provider in old if provider not in new]
    if removed:
        params.append(removed)
        statements.append(kind.drop_links.format(f"${len(params)}"))
    changed = {provider: remote for provider, remote in new.items() if old.get(provider) != remote}
    if changed:
        params.append(dump_json(changed))
        statements.append(kind.upsert_links.format(f"${len(params)}"))
    return _with(statements), params


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


def unique_conflict(
    exc: asyncpg.UniqueViolationError, known_constraints: dict[str, tuple[str, str]]
) -> Exception:
    """The ConflictError a unique constraint of ``known_constraints`` (name -> code, message)
    stands for; a StorageError for any other."""
    known = known_constraints.get(exc.constraint_name or "")
    if known is None:
        return StorageError(f"PostgreSQL error: {exc!r}")
    code, message = known
    return ConflictError(message, code=code)


class CatalogTransaction:
    """Catalog writes of PostgresTransaction (its ``_begin``, ``_flush`` and ``_fetchrow``)."""

    async def _begin(self, first: str | None = None) -> Connection:
        raise NotImplementedError  # pragma: no cover - the transaction's

    async def _flush(self, connection: Connection) -> None:
        raise NotImplementedError  # pragma: no cover - the transaction's

    async def _fetchrow(
        self, query: str, *args: object, queue: str | None = None
    ) -> asyncpg.Record | None:
        raise NotImplementedError  # pragma: no cover - the transaction's

    async def _catalog_write(self, statement: str, args: list[object] | tuple[object, ...]) -> None:
        """Send one write now, inside the transaction, after the writes kept so far."""
        connection = await self._begin()
        await self._flush(connection)
        try:
            await connection.execute(statement, *args)
        except asyncpg.UniqueViolationError as exc:
            raise unique_conflict(exc, _CONFLICTS) from exc
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc

    async def _for_update(self, kind: _Kind[R], record_id: str) -> R | None:
        """Read a record for change: queue on its advisory lock, then lock the row."""
        lock = queue(CATALOG_LOCK_CLASS, record_id)
        row = await self._fetchrow(kind.get_for_update, record_id, queue=lock)
        return None if row is None else kind.from_row(row)

    async def _idempotent(self, kind: _Kind[R], idempotency_key: str) -> tuple[R, str] | None:
        row = await self._fetchrow(kind.idempotent, idempotency_key)
        return None if row is None else (kind.from_row(row), row[kind.rows.fingerprint_at])

    async def _insert(
        self,
        kind: _Kind[R],
        record: R,
        idempotency_key: str | None,
        request_fingerprint: str | None,
    ) -> None:
        args = kind.rows.args(
            record,
            encode_time=as_is,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
        )
        statements = [kind.insert, kind.insert_links] if kind.rows.links(record) else [kind.insert]
        await self._catalog_write(_with(statements), args)

    async def _update(self, kind: _Kind[R], before: R, after: R) -> None:
        if after != before:
            await self._catalog_write(*_update_statement(kind, before, after))

    async def get_plan(self, plan_id: str) -> Plan | None:
        return await self._for_update(PLANS, plan_id)

    async def find_idempotent_plan(self, idempotency_key: str) -> tuple[Plan, str] | None:
        return await self._idempotent(PLANS, idempotency_key)

    async def insert_plan(
        self,
        plan: Plan,
        *,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
    ) -> None:
        await self._insert(PLANS, plan, idempotency_key, request_fingerprint)

    async def update_plan(self, before: Plan, after: Plan) -> None:
        await self._update(PLANS, before, after)

    async def get_price(self, price_id: str) -> Price | None:
        return await self._for_update(PRICES, price_id)

    async def find_idempotent_price(self, idempotency_key: str) -> tuple[Price, str] | None:
        return await self._idempotent(PRICES, idempotency_key)

    async def insert_price(
        self,
        price: Price,
        *,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
    ) -> None:
        await self._insert(PRICES, price, idempotency_key, request_fingerprint)

    async def find_active_price(self, lookup_key: str) -> Price | None:
        row = await self._fetchrow(GET_PRICE_BY_LOOKUP_KEY, lookup_key)
        return None if row is None else PRICES.from_row(row)

    async def active_prices(self, plan_id: str) -> list[Price]:
        connection = await self._begin()
        await self._flush(connection)
        try:
            rows = await connection.fetch(ACTIVE_PRICES, plan_id)
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc
        return [PRICES.from_row(row) for row in rows]

    async def update_price(self, before: Price, after: Price) -> None:
        await self._update(PRICES, before, after)


def _page(
    kind: _Kind[Any], clauses: list[str], params: list[Any], *, limit: int, offset: int
) -> tuple[str, list[Any]]:
    """A list page; no OFFSET clause on the first page (see sql.list_query)."""
    params = [*params, limit]
    query = f"{kind.select}{where(clauses)} ORDER BY id DESC LIMIT ${len(params)}"
    if offset:
        params.append(offset)
        query += f" OFFSET ${len(params)}"
    return query, params


def _scan(
    kind: _Kind[Any], clauses: list[str], params: list[Any], *, before_id: str | None, limit: int
) -> tuple[str, list[Any]]:
    if before_id is not None:
        params.append(before_id)
        clauses.append(f"id < ${len(params)}")
    params.append(limit)
    return f"{kind.select}{where(clauses)} ORDER BY id DESC LIMIT ${len(params)}", params


class CatalogStorage:
    """Committed catalog reads of PostgresStorage (its ``_read``: retried on a lost
    connection)."""

    async def _read(self, query: Callable[[Connection], Awaitable[T]]) -> T:
        raise NotImplementedError  # pragma: no cover - the storage's

    async def _one(self, kind: _Kind[R], statement: str, key: str) -> R | None:
        row = await self._read(lambda c: c.fetchrow(statement, key))
        return None if row is None else kind.from_row(row)

    async def _linked(self, kind: _Kind[R], remote_id: str, provider: str | None) -> list[R]:
        if provider is None:
            rows = await self._read(lambda c: c.fetch(kind.by_provider_id, remote_id))
        else:
            rows = await self._read(lambda c: c.fetch(kind.by_provider, remote_id, provider))
        return [kind.from_row(row) for row in rows]

    async def _listed(
        self, kind: _Kind[R], clauses: list[str], params: list[Any], *, limit: int, offset: int
    ) -> tuple[list[R], int]:
        page, page_params = _page(kind, clauses, params, limit=limit, offset=offset)
        count = f"{kind.count}{where(clauses)}"

        async def query(connection: Connection) -> tuple[list[asyncpg.Record], int]:
            rows = await connection.fetch(page, *page_params)
            total = known_total(len(rows), limit=limit, offset=offset)
            if total is None:
                total = int(await connection.fetchval(count, *params))
            return rows, total

        rows, total = await self._read(query)
        return [kind.from_row(row) for row in rows], total

    async def _scanned(
        self,
        kind: _Kind[R],
        clauses: list[str],
        params: list[Any],
        *,
        before_id: str | None,
        limit: int,
    ) -> list[R]:
        query, args = _scan(kind, clauses, params, before_id=before_id, limit=limit)
        rows = await self._read(lambda c: c.fetch(query, *args))
        return [kind.from_row(row) for row in rows]

    async def get_plan(self, plan_id: str) -> Plan | None:
        return await self._one(PLANS, PLANS.get, plan_id)

    async def get_plan_by_key(self, key: str) -> Plan | None:
        return await self._one(PLANS, GET_PLAN_BY_KEY, key)

    async def find_plans_by_provider_id(
        self, provider_plan_id: str, *, provider: str | None
    ) -> list[Plan]:
        return await self._linked(PLANS, provider_plan_id, provider)

    async def list_plans(
        self, filters: PlanFilter, *, limit: int, offset: int
    ) -> tuple[list[Plan], int]:
        params: list[Any] = []
        clauses = PLAN_ROWS.conditions(filters, params, _placeholder)
        return await self._listed(PLANS, clauses, params, limit=limit, offset=offset)

    async def scan_plans(
        self, filters: PlanFilter, *, before_id: str | None, limit: int
    ) -> list[Plan]:
        params: list[Any] = []
        clauses = PLAN_ROWS.conditions(filters, params, _placeholder)
        return await self._scanned(PLANS, clauses, params, before_id=before_id, limit=limit)

    async def get_price(self, price_id: str) -> Price | None:
        return await self._one(PRICES, PRICES.get, price_id)

    async def get_price_by_lookup_key(self, lookup_key: str) -> Price | None:
        return await self._one(PRICES, GET_PRICE_BY_LOOKUP_KEY, lookup_key)

    async def find_prices_by_provider_id(
        self, provider_price_id: str, *, provider: str | None
    ) -> list[Price]:
        return await self._linked(PRICES, provider_price_id, provider)

    async def list_prices(
        self, filters: PriceFilter, *, limit: int, offset: int
    ) -> tuple[list[Price], int]:
        params: list[Any] = []
        clauses = PRICE_ROWS.conditions(filters, params, _placeholder)
        return await self._listed(PRICES, clauses, params, limit=limit, offset=offset)

    async def scan_prices(
        self, filters: PriceFilter, *, before_id: str | None, limit: int
    ) -> list[Price]:
        params: list[Any] = []
        clauses = PRICE_ROWS.conditions(filters, params, _placeholder)
        return await self._scanned(PRICES, clauses, params, before_id=before_id, limit=limit)
