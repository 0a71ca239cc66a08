"""The catalog (plans and prices) in MemoryStorage: the committed plans and prices with their
own indexes (the rest is :mod:`qzpay.storage.memory.records`), and the mix-in that gives the
transaction its catalog methods (the storage's reads are ``catalog_reads.py``).

Plans are found by id, key and provider id in O(1); prices by id, active lookup key and
provider id. Lists walk the ids newest first and filter: a catalog is small (dozens to a few
thousand records), so no per-filter index is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import TypeVar

from qzpay.catalog.models import Plan, Price
from qzpay.catalog.registry import PLAN, PRICE
from qzpay.errors import ConflictError
from qzpay.records import RecordType
from qzpay.storage.base import CreateKey, PlanFilter, PriceFilter
from qzpay.storage.memory.records import Committed, Staged

__all__ = ["PLAN", "PRICE"]

M = TypeVar("M", bound=Plan | Price)


def copy_plan(plan: Plan) -> Plan:
    return plan.model_copy(
        update={
            "entitlements": list(plan.entitlements),
            "limits": dict(plan.limits),
            "metadata": dict(plan.metadata),
            "provider_plan_ids": dict(plan.provider_plan_ids),
        }
    )


def copy_price(price: Price) -> Price:
    return price.model_copy(
        update={
            "metadata": dict(price.metadata),
            "provider_price_ids": dict(price.provider_price_ids),
        }
    )


class Keyed(Committed[M]):
    """The committed records of a catalog kind, and the record holding each of its unique keys:
    a plan's ``key``; a price's ``lookup_key`` while it is active (``active_only``)."""

    __slots__ = ("active_only", "by_key", "get_key")

    def __init__(
        self,
        record_type: RecordType,
        copy: Callable[[M], M],
        key_field: str,
        *,
        active_only: bool = False,
    ) -> None:
        super().__init__(record_type, copy)
        self.get_key: Callable[[M], str | None] = attrgetter(key_field)
        self.active_only = active_only
        self.by_key: dict[str, str] = {}

    def key_of(self, record: M) -> str | None:
        """The unique key ``record`` holds, if any."""
        return None if self.active_only and not record.active else self.get_key(record)

    def _index(self, record_id: str, old: M | None, new: M) -> None:
        by_key = self.by_key
        old_key = None if old is None else self.key_of(old)
        if old_key is not None and by_key.get(old_key) == record_id:
            del by_key[old_key]
        new_key = self.key_of(new)
        if new_key is not None:
            by_key[new_key] = record_id

    def holder(self, staged: Staged[M] | None, key: str, other_than: str | None = None) -> M | None:
        """The record (not ``other_than``) holding ``key`` as a transaction sees it."""
        records = {} if staged is None else staged.records
        get_key, active_only = self.get_key, self.active_only
        for record in records.values():
            matched = get_key(record) == key and record.id != other_than
            if matched and (record.active or not active_only):
                return record
        held = self.by_key.get(key)
        if held is None or held in records or held == other_than:
            return None
        return self.records[held]


class CatalogState:
    """The committed catalog; changed only at commit, under the store's commit lock."""

    __slots__ = ("plans", "prices")

    def __init__(self) -> None:
        self.plans: Keyed[Plan] = Keyed(PLAN, copy_plan, "key")
        self.prices: Keyed[Price] = Keyed(PRICE, copy_price, "lookup_key", active_only=True)


def plan_matches(plan: Plan, filters: PlanFilter) -> bool:
    return filters.active is None or plan.active == filters.active


def price_matches(price: Price, filters: PriceFilter) -> bool:
    return (
        (filters.plan_id is None or price.plan_id == filters.plan_id)
        and (filters.active is None or price.active == filters.active)
        and (filters.currency is None or price.currency == filters.currency)
    )


class CatalogTransaction:
    """Catalog reads and writes of MemoryTransaction: staged in ``plans`` and ``prices`` (each
    made on the transaction's first write of its kind) over the committed catalog."""

    plans: Staged[Plan] | None
    prices: Staged[Price] | None

    def _committed(self) -> CatalogState:
        raise NotImplementedError  # pragma: no cover - the transaction's

    # -- plans ------------------------------------------------------------------------------
    def _plan(self, plan_id: str) -> Plan | None:
        """The plan as this transaction sees it, not copied (its subscriptions' grants)."""
        return self._committed().plans.seen(self.plans, plan_id)

    async def get_plan(self, plan_id: str) -> Plan | None:
        return self._committed().plans.read(self.plans, plan_id)

    async def find_idempotent_plan(self, idempotency_key: str) -> tuple[Plan, str] | None:
        return self._committed().plans.idempotent(self.plans, idempotency_key)

    def _check_plan_key(self, plan: Plan) -> None:
        holder = self._committed().plans.holder(self.plans, plan.key, plan.id)
        if holder is not None:
            raise ConflictError(
                f"plan key {plan.key!r} is taken by plan {holder.id}", code="plan_key_taken"
            )

    async def insert_plan(self, plan: Plan, key: CreateKey | None = None) -> None:
        self.plans = self._committed().plans.insert(self.plans, plan, key, self._check_plan_key)

    async def update_plan(self, before: Plan, after: Plan) -> None:
        self.plans = self._committed().plans.update(self.plans, before, after)

    # -- prices -----------------------------------------------------------------------------
    async def get_price(self, price_id: str) -> Price | None:
        return self._committed().prices.read(self.prices, price_id)

    async def find_idempotent_price(self, idempotency_key: str) -> tuple[Price, str] | None:
        return self._committed().prices.idempotent(self.prices, idempotency_key)

    def _check_lookup_key(self, price: Price) -> None:
        prices = self._committed().prices
        key = prices.key_of(price)
        if key is None:
            return
        holder = prices.holder(self.prices, key, price.id)
        if holder is not None:
            raise ConflictError(
                f"lookup key {key!r} is held by the active price {holder.id}",
                code="lookup_key_taken",
            )

    async def insert_price(self, price: Price, key: CreateKey | None = None) -> None:
        prices = self._committed().prices
        self.prices = prices.insert(self.prices, price, key, self._check_lookup_key)

    async def find_active_price(self, lookup_key: str) -> Price | None:
        holder = self._committed().prices.holder(self.prices, lookup_key)
        return None if holder is None else copy_price(holder)

    async def active_prices(self, plan_id: str) -> list[Price]:
        committed = self._committed().prices.records
        staged = {} if self.prices is None else self.prices.records
        ids = sorted({*staged, *committed}, reverse=True)
        found = [staged.get(i) or committed[i] for i in ids]
        return [copy_price(p) for p in found if p.plan_id == plan_id and p.active]

    async def update_price(self, before: Price, after: Price) -> None:
        prices = self._committed().prices
        self.prices = prices.update(self.prices, before, after, self._check_lookup_key)
