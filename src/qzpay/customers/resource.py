"""How customers plug into the engine (qzpay.engine): their resource description, their
providers as the engine's Remote, and the adoption questions the providers ask.

A provider that allows one customer per email (MercadoPago) may make a create adopt a customer
made outside qzpay (see qzpay.customers.sync); :class:`AdoptionLedger` answers, from storage,
whether a provider customer is already someone's, and notes an adoption on the create's intent
before it is written at the provider.
"""

from __future__ import annotations

from typing import Any

from qzpay.customers.models import Customer
from qzpay.customers.sync import ProviderSet
from qzpay.engine.core import Engine
from qzpay.engine.resource import Links, Resource
from qzpay.storage.base import Storage, SyncTask, Transaction


class CustomerResource(Resource[Customer]):
    """Customers, as the engine stores them and carries them in sync tasks."""

    name = "customer"
    links_field = "provider_customer_ids"

    async def get(self, tx: Transaction, record_id: str) -> Customer | None:
        return await tx.get_customer(record_id)

    async def get_committed(self, storage: Storage, record_id: str) -> Customer | None:
        return await storage.get_customer(record_id)

    async def insert(
        self,
        tx: Transaction,
        record: Customer,
        *,
        idempotency_key: str | None,
        fingerprint: str | None,
    ) -> None:
        await tx.insert_customer(
            record, idempotency_key=idempotency_key, request_fingerprint=fingerprint
        )

    async def update(self, tx: Transaction, before: Customer, after: Customer) -> None:
        await tx.update_customer(before, after)

    async def find_created(
        self, tx: Transaction, idempotency_key: str
    ) -> tuple[Customer, str] | None:
        earlier = await tx.find_idempotent_create(idempotency_key)
        return None if earlier is None else (earlier.customer, earlier.request_fingerprint)

    def task_fields(self, record: Customer) -> dict[str, Any]:
        return {"customer_id": record.id, "customer": record}

    def snapshot(self, task: SyncTask) -> Customer:
        return task.customer


CUSTOMERS = CustomerResource()


class AdoptionLedger:
    """The AdoptionGuard given to the ProviderSet: links and intents are stored."""

    def __init__(self, engine: Engine[Customer]) -> None:
        self._engine = engine

    async def owner(self, provider: str, provider_customer_id: str) -> str | None:
        storage = self._engine.storage
        linked = await storage.find_customers_by_provider_id(
            provider_customer_id, provider=provider
        )
        if linked:
            return linked[0].id
        # An unfinished create of another customer may be adopting it right now.
        task = await storage.find_sync_task_by_link(provider, provider_customer_id)
        return None if task is None else self._engine.tasks.key(task)

    async def adopting(self, customer: Customer, provider: str, provider_customer_id: str) -> None:
        async with self._engine.unit() as work:
            await self._engine.tasks.note_links(
                work.tx, customer.id, {provider: provider_customer_id}
            )


class CustomerRemote:
    """The ProviderSet as the engine's Remote for customers, adopting through the ledger."""

    def __init__(self, providers: ProviderSet, guard: AdoptionLedger) -> None:
        self._providers = providers
        self._guard = guard

    @property
    def several(self) -> bool:
        return len(self._providers.providers) > 1

    async def create(self, record: Customer, *, compensate: bool = True) -> Links:
        return await self._providers.create_everywhere(
            record, guard=self._guard, compensate=compensate
        )

    async def finish_create(self, record: Customer) -> Links:
        return await self._providers.find_or_create_everywhere(record, guard=self._guard)

    async def update(self, before: Customer, after: Customer) -> None:
        await self._providers.update_everywhere(before, after)

    async def push(self, record: Customer) -> Links:
        return await self._providers.push_everywhere(record, guard=self._guard)

    async def delete(self, record: Customer) -> None:
        await self._providers.delete_everywhere(record)

    async def remove(self, record: Customer) -> None:
        await self._providers.remove_everywhere(record)
