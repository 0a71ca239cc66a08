"""Committed catalog reads of MemoryStorage (copies, picked under the commit lock), mixed into
the storage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any, Generic, TypeVar

from qzpay.catalog.models import Plan, Price
from qzpay.storage.base import PlanFilter, PriceFilter
from qzpay.storage.memory.catalog import CatalogState, Keyed, plan_matches, price_matches
from qzpay.storage.memory.records import newest

M = TypeVar("M", bound=Plan | Price)
F = TypeVar("F", PlanFilter, PriceFilter)


@dataclass(frozen=True, slots=True)
class _Kind(Generic[M, F]):
    """Where one record kind lives in the CatalogState, and how its records are filtered."""

    committed: Callable[[CatalogState], Keyed[M]]
    matches: Callable[[M, F], bool]


_PLANS: _Kind[Plan, PlanFilter] = _Kind(lambda state: state.plans, plan_matches)
_PRICES: _Kind[Price, PriceFilter] = _Kind(lambda state: state.prices, price_matches)


class CatalogStorage:
    """The catalog reads of MemoryStorage: copies of committed records, picked under the
    commit lock."""

    def _catalog(self) -> tuple[CatalogState, Any]:
        """The committed catalog and the lock that guards it."""
        raise NotImplementedError  # pragma: no cover - the storage's

    async def get_plan(self, plan_id: str) -> Plan | None:
        return self._get(_PLANS, plan_id)

    async def get_plan_by_key(self, key: str) -> Plan | None:
        return self._get(_PLANS, key, by_key=True)

    async def find_plans_by_provider_id(
        self, provider_plan_id: str, *, provider: str | None
    ) -> list[Plan]:
        return self._linked(_PLANS, provider_plan_id, provider)

    async def list_plans(
        self, filters: PlanFilter, *, limit: int, offset: int
    ) -> tuple[list[Plan], int]:
        return self._list(_PLANS, filters, limit, offset)

    async def scan_plans(
        self, filters: PlanFilter, *, before_id: str | None, limit: int
    ) -> list[Plan]:
        return self._scan(_PLANS, filters, before_id, limit)

    async def get_price(self, price_id: str) -> Price | None:
        return self._get(_PRICES, price_id)

    async def get_price_by_lookup_key(self, lookup_key: str) -> Price | None:
        return self._get(_PRICES, lookup_key, by_key=True)

    async def find_prices_by_provider_id(
        self, provider_price_id: str, *, provider: str | None
    ) -> list[Price]:
        return self._linked(_PRICES, provider_price_id, provider)

    async def list_prices(
        self, filters: PriceFilter, *, limit: int, offset: int
    ) -> tuple[list[Price], int]:
        return self._list(_PRICES, filters, limit, offset)

    async def scan_prices(
        self, filters: PriceFilter, *, before_id: str | None, limit: int
    ) -> list[Price]:
        return self._scan(_PRICES, filters, before_id, limit)

    # -- shared -------------------------------------------------------------------------
    def _get(self, kind: _Kind[M, F], key: str, *, by_key: bool = False) -> M | None:
        """The record with id ``key``, or the one holding the unique key ``key``."""
        state, lock = self._catalog()
        committed = kind.committed(state)
        if not by_key:
            record = committed.records.get(key)
        else:
            with lock:
                record_id = committed.by_key.get(key)
                record = None if record_id is None else committed.records[record_id]
        return None if record is None else committed.copy(record)

    def _linked(self, kind: _Kind[M, F], remote: str, provider: str | None) -> list[M]:
        state, lock = self._catalog()
        committed = kind.committed(state)
        with lock:
            records = committed.records
            found = [records[i] for i in committed.links.find(remote, provider)]
        return [committed.copy(record) for record in found]

    def _list(self, kind: _Kind[M, F], filters: F, limit: int, offset: int) -> tuple[list[M], int]:
        state, lock = self._catalog()
        committed = kind.committed(state)
        with lock:
            records = committed.records
            matches = [
                records[i] for i in newest(committed.ids, None) if kind.matches(records[i], filters)
            ]
        page = matches[offset : offset + limit]
        return [committed.copy(record) for record in page], len(matches)

    def _scan(self, kind: _Kind[M, F], filters: F, before_id: str | None, limit: int) -> list[M]:
        state, lock = self._catalog()
        committed = kind.committed(state)
        with lock:
            records = committed.records
            kept = (
                records[i]
                for i in newest(committed.ids, before_id)
                if kind.matches(records[i], filters)
            )
            found = list(islice(kept, max(0, limit)))
        return [committed.copy(record) for record in found]
