"""The catalog (plans and prices) in MemoryStorage: the committed state and its indexes, the
writes a transaction stages, and the mix-ins that give the transaction, the reader and the
storage their catalog methods.

Plans are found by id, key and provider id in O(1); prices by id, active lookup key and
provider id. Lists walk the ids newest first and filter: a catalog is small (dozens to a few
thousand records), so no per-filter index is kept.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Any, TypeVar

from qzpay.catalog.models import Plan, Price
from qzpay.catalog.registry import PLAN, PRICE
from qzpay.errors import ConflictError
from qzpay.storage.base import CreateKey, PlanFilter, PriceFilter

__all__ = ["PLAN", "PRICE"]

M = TypeVar("M", Plan, Price)
Link = tuple[str, str]  # (provider, provider id)


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


class CatalogWrites:
    """What one transaction wrote to the catalog (private copies), landed at commit."""

    __slots__ = ("plan_keys", "plans", "price_keys", "prices")

    def __init__(self) -> None:
        self.plans: dict[str, Plan] = {}
        self.prices: dict[str, Price] = {}
        self.plan_keys: dict[str, tuple[str, str]] = {}  # idempotency key -> (id, fingerprint)
        self.price_keys: dict[str, tuple[str, str]] = {}


class Links:
    """Provider ids of one record kind: (provider, id) -> record, and id -> provider -> record
    (customers, plans, prices and subscriptions each keep one)."""

    __slots__ = ("links", "owners")

    def __init__(self) -> None:
        self.links: dict[Link, str] = {}
        self.owners: dict[str, dict[str, str]] = {}

    def change(self, record_id: str, before: dict[str, str], after: dict[str, str]) -> None:
        """The record's links went from ``before`` to ``after`` (a link another record of the
        same transaction took over stays that record's)."""
        if before == after:
            return
        for provider, remote in before.items():
            if after.get(provider) == remote or self.links.get((provider, remote)) != record_id:
                continue
            del self.links[provider, remote]
            owners = self.owners[remote]
            del owners[provider]
            if not owners:
                del self.owners[remote]
        for provider, remote in after.items():
            if before.get(provider) != remote:
                self.links[provider, remote] = record_id
                self.owners.setdefault(remote, {})[provider] = record_id

    def find(self, remote: str, provider: str | None) -> list[str]:
        owners = self.owners.get(remote, {})
        return [rid for name, rid in owners.items() if provider is None or name == provider]


class CatalogState:
    """The committed catalog; changed only by ``apply``, under the store's commit lock."""

    def __init__(self) -> None:
        self.plans: dict[str, Plan] = {}
        self.prices: dict[str, Price] = {}
        self.plan_ids: list[str] = []  # sorted: creation order
        self.price_ids: list[str] = []
        self.by_key: dict[str, str] = {}
        self.by_lookup_key: dict[str, str] = {}  # among active prices
        self.plan_links = Links()
        self.price_links = Links()
        self.plan_keys: dict[str, tuple[str, str]] = {}
        self.price_keys: dict[str, tuple[str, str]] = {}

    def apply(self, writes: CatalogWrites) -> None:
        for plan_id, plan in writes.plans.items():
            old_plan = self.plans.get(plan_id)
            self.plans[plan_id] = plan
            if old_plan is None:
                _add(self.plan_ids, plan_id)
            self.by_key[plan.key] = plan_id
            before = {} if old_plan is None else old_plan.provider_plan_ids
            self.plan_links.change(plan_id, before, plan.provider_plan_ids)
        for price_id, price in writes.prices.items():
            old = self.prices.get(price_id)
            self.prices[price_id] = price
            if old is None:
                _add(self.price_ids, price_id)
            elif (
                old.active
                and old.lookup_key is not None
                and self.by_lookup_key.get(old.lookup_key) == price_id
            ):
                del self.by_lookup_key[old.lookup_key]
            if price.active and price.lookup_key is not None:
                self.by_lookup_key[price.lookup_key] = price_id
            before = {} if old is None else old.provider_price_ids
            self.price_links.change(price_id, before, price.provider_price_ids)
        self.plan_keys.update(writes.plan_keys)
        self.price_keys.update(writes.price_keys)


def _add(ids: list[str], record_id: str) -> None:
    if not ids or ids[-1] < record_id:
        ids.append(record_id)
    else:
        insort(ids, record_id)


def newest(ids: list[str], before_id: str | None) -> Iterator[str]:
    end = len(ids) if before_id is None else bisect_left(ids, before_id)
    return (ids[at] for at in range(end - 1, -1, -1))


def plan_matches(plan: Plan, filters: PlanFilter) -> bool:
    return filters.active is None or plan.active == filters.active


def price_matches(price: Price, filters: PriceFilter) -> bool:
    return (
        (filters.plan_id is None or price.plan_id == filters.plan_id)
        and (filters.active is None or price.active == filters.active)
        and (filters.currency is None or price.currency == filters.currency)
    )


def _taken(what: str, provider: str, remote: str, owner: str) -> ConflictError:
    return ConflictError(
        f"{provider} {what} {remote!r} is already linked to {what} {owner}",
        code="provider_id_taken",
    )


class CatalogTransaction:
    """Catalog writes of MemoryTransaction: staged in ``catalog`` (a CatalogWrites, made on
    the first write) over the committed ``_state.catalog``."""

    catalog: CatalogWrites | None

    def _committed(self) -> CatalogState:
        raise NotImplementedError  # pragma: no cover - the transaction's

    def _staged(self) -> CatalogWrites:
        if self.catalog is None:
            self.catalog = CatalogWrites()
        return self.catalog

    # -- plans ------------------------------------------------------------------------------
    def _plan(self, plan_id: str) -> Plan | None:
        staged = None if self.catalog is None else self.catalog.plans.get(plan_id)
        return self._committed().plans.get(plan_id) if staged is None else staged

    async def get_plan(self, plan_id: str) -> Plan | None:
        plan = self._plan(plan_id)
        return None if plan is None else copy_plan(plan)

    async def find_idempotent_plan(self, idempotency_key: str) -> tuple[Plan, str] | None:
        found = self._idempotent(idempotency_key, prices=False)
        if found is None:
            return None
        plan = self._plan(found[0])
        assert plan is not None
        return copy_plan(plan), found[1]

    def _idempotent(self, key: str, *, prices: bool) -> tuple[str, str] | None:
        staged = self.catalog
        if staged is not None:
            found = (staged.price_keys if prices else staged.plan_keys).get(key)
            if found is not None:
                return found
        committed = self._committed()
        return (committed.price_keys if prices else committed.plan_keys).get(key)

    def _check_key(self, key: CreateKey | None, *, prices: bool) -> None:
        if key is not None and self._idempotent(key.idempotency_key, prices=prices) is not None:
            raise ConflictError("idempotency key already used", code="idempotency_key_reused")

    def _stage_key(self, key: CreateKey | None, record_id: str, *, prices: bool) -> None:
        if key is not None:
            staged = self._staged()
            keys = staged.price_keys if prices else staged.plan_keys
            keys[key.idempotency_key] = (record_id, key.request_fingerprint or "")

    def _catalog_link_owner(self, link: Link, *, prices: bool) -> str | None:
        provider, remote = link
        staged: dict[str, Any] = {}
        if self.catalog is not None:
            staged = self.catalog.prices if prices else self.catalog.plans
        for record_id, record in staged.items():
            links = record.provider_price_ids if prices else record.provider_plan_ids
            if links.get(provider) == remote:
                return str(record_id)
        committed = self._committed()
        owner = (committed.price_links if prices else committed.plan_links).links.get(link)
        return None if owner in staged else owner

    def _catalog_check_links(
        self, record_id: str, old: dict[str, str], new: dict[str, str], *, prices: bool
    ) -> None:
        for provider, remote in new.items():
            if old.get(provider) == remote:
                continue
            owner = self._catalog_link_owner((provider, remote), prices=prices)
            if owner is not None and owner != record_id:
                raise _taken("price" if prices else "plan", provider, remote, owner)

    async def insert_plan(self, plan: Plan, key: CreateKey | None = None) -> None:
        self._check_key(key, prices=False)
        holder = self._committed().by_key.get(plan.key)
        if holder is None and self.catalog is not None:
            holder = next((p.id for p in self.catalog.plans.values() if p.key == plan.key), None)
        if holder is not None and holder != plan.id:
            raise ConflictError(
                f"plan key {plan.key!r} is taken by plan {holder}", code="plan_key_taken"
            )
        self._catalog_check_links(plan.id, {}, plan.provider_plan_ids, prices=False)
        self._stage_key(key, plan.id, prices=False)
        self._staged().plans[plan.id] = copy_plan(plan)

    async def update_plan(self, before: Plan, after: Plan) -> None:
        self._catalog_check_links(
            after.id, before.provider_plan_ids, after.provider_plan_ids, prices=False
        )
        self._staged().plans[after.id] = copy_plan(after)

    # -- prices -----------------------------------------------------------------------------
    def _price(self, price_id: str) -> Price | None:
        staged = None if self.catalog is None else self.catalog.prices.get(price_id)
        return self._committed().prices.get(price_id) if staged is None else staged

    async def get_price(self, price_id: str) -> Price | None:
        price = self._price(price_id)
        return None if price is None else copy_price(price)

    async def find_idempotent_price(self, idempotency_key: str) -> tuple[Price, str] | None:
        found = self._idempotent(idempotency_key, prices=True)
        if found is None:
            return None
        price = self._price(found[0])
        assert price is not None
        return copy_price(price), found[1]

    def _check_lookup_key(self, price: Price) -> None:
        key = price.lookup_key
        if not price.active or key is None:
            return
        staged = {} if self.catalog is None else self.catalog.prices
        holder = next(
            (
                p.id
                for p in staged.values()
                if p.active and p.lookup_key == key and p.id != price.id
            ),
            None,
        )
        if holder is None:
            committed = self._committed().by_lookup_key.get(key)
            if committed is not None and committed not in staged and committed != price.id:
                holder = committed
        if holder is not None:
            raise ConflictError(
                f"lookup key {key!r} is held by the active price {holder}", code="lookup_key_taken"
            )

    async def insert_price(self, price: Price, key: CreateKey | None = None) -> None:
        self._check_key(key, prices=True)
        self._check_lookup_key(price)
        self._catalog_check_links(price.id, {}, price.provider_price_ids, prices=True)
        self._stage_key(key, price.id, prices=True)
        self._staged().prices[price.id] = copy_price(price)

    async def find_active_price(self, lookup_key: str) -> Price | None:
        staged = {} if self.catalog is None else self.catalog.prices
        for price in staged.values():
            if price.active and price.lookup_key == lookup_key:
                return copy_price(price)
        holder = self._committed().by_lookup_key.get(lookup_key)
        if holder is None or holder in staged:
            return None
        return copy_price(self._committed().prices[holder])

    async def active_prices(self, plan_id: str) -> list[Price]:
        committed = self._committed()
        staged = {} if self.catalog is None else self.catalog.prices
        ids = sorted({*staged, *committed.prices}, reverse=True)
        found = [staged.get(i) or committed.prices[i] for i in ids]
        return [copy_price(p) for p in found if p.plan_id == plan_id and p.active]

    async def update_price(self, before: Price, after: Price) -> None:
        self._check_lookup_key(after)
        self._catalog_check_links(
            after.id, before.provider_price_ids, after.provider_price_ids, prices=True
        )
        self._staged().prices[after.id] = copy_price(after)
