"""Plans and prices as the engine's resources (qzpay.engine): how each is read and written in
a storage transaction, and the name of the event a change makes.

Catalog records are archived (``active=False``), never deleted: archiving is an ordinary
change through the engine's update path, whose event is ``<name>.archived`` when ``active``
goes from True to False (:meth:`CatalogResource.update_event`). The engine's delete path is
never used for them.

A price is inserted only under a live plan: :meth:`PriceResource.insert` reads the plan for
change in the same transaction (locking it where the backend can, so archiving a plan and
adding a price to it are serialized): an unknown plan is NotFoundError, an archived one
ConflictError ``plan_archived``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from qzpay._time import utcnow
from qzpay.catalog.models import Plan, Price
from qzpay.catalog.registry import PLAN, PRICE
from qzpay.engine.resource import Resource
from qzpay.engine.unit_of_work import UnitOfWork
from qzpay.errors import ConflictError, NotFoundError
from qzpay.storage.base import Storage, Transaction
from qzpay.storage.params import create_key

C = TypeVar("C", Plan, Price)


class CatalogResource(Resource[C]):
    def __init__(self) -> None:
        super().__init__()
        self.archived = f"{self.name}.archived"

    def update_event(self, before: C, after: C) -> str:
        return self.archived if before.active and not after.active else self.updated

    async def change(self, work: UnitOfWork, before: C, fields: Mapping[str, Any]) -> C:
        """Write ``fields`` over ``before`` (read for change in ``work``) with its event: the
        local write path of a change that needs no provider (or several in one transaction)."""
        now = max(utcnow(), before.updated_at)
        after = before.model_copy(update={**fields, "updated_at": now})
        await self.update(work.tx, before, after)
        await work.emit(self.update_event(before, after), after, before.changed_fields(after))
        return after


class PlanResource(CatalogResource[Plan]):
    name = PLAN.name
    links_field = PLAN.links_field
    model = Plan

    async def get(self, tx: Transaction, record_id: str) -> Plan | None:
        return await tx.get_plan(record_id)

    async def get_committed(self, storage: Storage, record_id: str) -> Plan | None:
        return await storage.get_plan(record_id)

    async def insert(
        self, tx: Transaction, record: Plan, *, idempotency_key: str | None, fingerprint: str | None
    ) -> None:
        await tx.insert_plan(record, create_key(idempotency_key, fingerprint))

    async def update(self, tx: Transaction, before: Plan, after: Plan) -> None:
        await tx.update_plan(before, after)

    async def find_created(self, tx: Transaction, idempotency_key: str) -> tuple[Plan, str] | None:
        return await tx.find_idempotent_plan(idempotency_key)


class PriceResource(CatalogResource[Price]):
    name = PRICE.name
    links_field = PRICE.links_field
    model = Price

    async def get(self, tx: Transaction, record_id: str) -> Price | None:
        return await tx.get_price(record_id)

    async def get_committed(self, storage: Storage, record_id: str) -> Price | None:
        return await storage.get_price(record_id)

    async def insert(
        self,
        tx: Transaction,
        record: Price,
        *,
        idempotency_key: str | None,
        fingerprint: str | None,
    ) -> None:
        await live_plan(tx, record.plan_id)
        await tx.insert_price(record, create_key(idempotency_key, fingerprint))

    async def update(self, tx: Transaction, before: Price, after: Price) -> None:
        await tx.update_price(before, after)

    async def find_created(self, tx: Transaction, idempotency_key: str) -> tuple[Price, str] | None:
        return await tx.find_idempotent_price(idempotency_key)


async def live_plan(tx: Transaction, plan_id: str) -> Plan:
    """The plan ``plan_id`` read for change; NotFoundError if unknown, ConflictError
    ``plan_archived`` if archived."""
    plan = await tx.get_plan(plan_id)
    if plan is None:
        raise NotFoundError(f"no plan {plan_id!r}")
    if not plan.active:
        raise plan_archived(plan_id)
    return plan


def plan_archived(plan_id: str) -> ConflictError:
    return ConflictError(
        f"plan {plan_id} is archived: archived plans cannot change or get new prices",
        code="plan_archived",
    )


PLANS = PlanResource()
PRICES = PriceResource()
