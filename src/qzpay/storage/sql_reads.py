"""The committed catalog and subscription reads of the SQL backends, written once: each is one
statement of the backend's :class:`~qzpay.storage.layout.Table` (or two for a list page that
cannot tell its total), and the backend only runs statements (``_rows``, ``_page_rows``).

SQLite runs them on its event-loop reader, PostgreSQL on a pooled connection retried once when
it was lost; the statements differ only in their dialect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from qzpay.catalog.models import Plan, Price
from qzpay.storage.base import PlanFilter, PriceFilter
from qzpay.storage.layout import Page, Table
from qzpay.storage.rows import EncodeTime, Row
from qzpay.storage.subscription_base import Grant, SubscriptionFilter
from qzpay.subscriptions.models import Subscription

R = TypeVar("R", bound=BaseModel)


class SQLReads:
    """Committed reads of one record kind's table; the backend runs the statements."""

    async def _rows(self, statement: str, *args: object) -> Sequence[Row]:
        raise NotImplementedError  # pragma: no cover - the backend's

    async def _page_rows(self, page: Page, *, limit: int, offset: int) -> tuple[Sequence[Row], int]:
        """A list page's rows and the total number of matches (``page.count`` only when
        ``known_total`` cannot tell it from the page)."""
        raise NotImplementedError  # pragma: no cover - the backend's

    async def _one(self, table: Table[R, Any], statement: str, key: str) -> R | None:
        rows = await self._rows(statement, key)
        return table.from_row(rows[0]) if rows else None

    async def _all(self, table: Table[R, Any], statement: str, *args: object) -> list[R]:
        return [table.from_row(row) for row in await self._rows(statement, *args)]

    async def _linked(self, table: Table[R, Any], remote_id: str, provider: str | None) -> list[R]:
        statement, args = table.linked(remote_id, provider)
        return await self._all(table, statement, *args)

    async def _listed(
        self, table: Table[R, Any], filters: Any, *, limit: int, offset: int
    ) -> tuple[list[R], int]:
        page = table.page(filters, limit=limit, offset=offset)
        rows, total = await self._page_rows(page, limit=limit, offset=offset)
        return [table.from_row(row) for row in rows], total

    async def _scanned(
        self, table: Table[R, Any], filters: Any, *, before_id: str | None, limit: int
    ) -> list[R]:
        statement, args = table.scan(filters, before_id=before_id, limit=limit)
        return await self._all(table, statement, *args)


@dataclass(frozen=True, slots=True)
class CatalogStatements:
    """A backend's catalog tables and the look-ups by plan key and by active lookup key."""

    plans: Table[Plan, PlanFilter]
    prices: Table[Price, PriceFilter]
    plan_by_key: str
    price_by_lookup_key: str


class CatalogReads(SQLReads):
    """The Storage protocol's committed catalog reads over the backend's ``catalog``."""

    catalog: ClassVar[CatalogStatements]

    async def get_plan(self, plan_id: str) -> Plan | None:
        plans = self.catalog.plans
        return await self._one(plans, plans.get, plan_id)

    async def get_plan_by_key(self, key: str) -> Plan | None:
        return await self._one(self.catalog.plans, self.catalog.plan_by_key, key)

    async def find_plans_by_provider_id(
        self, provider_plan_id: str, *, provider: str | None
    ) -> list[Plan]:
        return await self._linked(self.catalog.plans, provider_plan_id, provider)

    async def list_plans(
        self, filters: PlanFilter, *, limit: int, offset: int
    ) -> tuple[list[Plan], int]:
        return await self._listed(self.catalog.plans, filters, limit=limit, offset=offset)

    async def scan_plans(
        self, filters: PlanFilter, *, before_id: str | None, limit: int
    ) -> list[Plan]:
        return await self._scanned(self.catalog.plans, filters, before_id=before_id, limit=limit)

    async def get_price(self, price_id: str) -> Price | None:
        prices = self.catalog.prices
        return await self._one(prices, prices.get, price_id)

    async def get_price_by_lookup_key(self, lookup_key: str) -> Price | None:
        """The active price holding ``lookup_key`` (the partial unique index's predicate)."""
        return await self._one(self.catalog.prices, self.catalog.price_by_lookup_key, lookup_key)

    async def find_prices_by_provider_id(
        self, provider_price_id: str, *, provider: str | None
    ) -> list[Price]:
        return await self._linked(self.catalog.prices, provider_price_id, provider)

    async def list_prices(
        self, filters: PriceFilter, *, limit: int, offset: int
    ) -> tuple[list[Price], int]:
        return await self._listed(self.catalog.prices, filters, limit=limit, offset=offset)

    async def scan_prices(
        self, filters: PriceFilter, *, before_id: str | None, limit: int
    ) -> list[Price]:
        return await self._scanned(self.catalog.prices, filters, before_id=before_id, limit=limit)


@dataclass(frozen=True, slots=True)
class SubscriptionStatements:
    """A backend's subscription table, its entitlement read (rows of subscription id, plan id,
    the plan's entitlements and limits as JSON) and its due read, and how it passes a time."""

    subscriptions: Table[Subscription, SubscriptionFilter]
    grants: str
    due: str
    encode_time: EncodeTime


def grants_from_rows(rows: Iterable[Row]) -> list[Grant]:
    """The rows of a grants statement as grants (both drivers give the JSON as text)."""
    loads = json.loads
    return [Grant(row[0], row[1], tuple(loads(row[2])), loads(row[3])) for row in rows]


class SubscriptionReads(SQLReads):
    """The Storage protocol's committed subscription reads over the backend's
    ``subscription_statements``."""

    subscription_statements: ClassVar[SubscriptionStatements]

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        table = self.subscription_statements.subscriptions
        return await self._one(table, table.get, subscription_id)

    async def find_subscriptions_by_provider_id(
        self, provider_subscription_id: str, *, provider: str | None
    ) -> list[Subscription]:
        table = self.subscription_statements.subscriptions
        return await self._linked(table, provider_subscription_id, provider)

    async def list_subscriptions(
        self, filters: SubscriptionFilter, *, limit: int, offset: int
    ) -> tuple[list[Subscription], int]:
        table = self.subscription_statements.subscriptions
        return await self._listed(table, filters, limit=limit, offset=offset)

    async def scan_subscriptions(
        self, filters: SubscriptionFilter, *, before_id: str | None, limit: int
    ) -> list[Subscription]:
        table = self.subscription_statements.subscriptions
        return await self._scanned(table, filters, before_id=before_id, limit=limit)

    async def grants(self, customer_id: str) -> list[Grant]:
        rows = await self._rows(self.subscription_statements.grants, customer_id)
        return grants_from_rows(rows)

    async def due_subscriptions(self, now: datetime, *, limit: int) -> list[Subscription]:
        statements = self.subscription_statements
        moment = statements.encode_time(now)
        return await self._all(statements.subscriptions, statements.due, moment, limit)
