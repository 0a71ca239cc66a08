"""How customers plug into the engine (qzpay.engine): their resource description, and the
adoption questions their providers ask (their Remote is the engine's fan-out,
``ProviderSet.customers`` in qzpay.customers.sync).

A provider that allows one customer per email (MercadoPago) may make a create adopt a customer
made outside qzpay (see qzpay.customers.adoption); :class:`AdoptionLedger` answers, from storage,
whether a provider customer is already someone's, and notes an adoption on the create's intent
before it is written at the provider.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from qzpay.customers.models import Customer
from qzpay.engine.core import Engine
from qzpay.engine.resource import Resource
from qzpay.records import CUSTOMER
from qzpay.storage.base import Storage, Transaction
from qzpay.storage.params import create_key


class CustomerResource(Resource[Customer]):
    """Customers, as the engine stores them (a task carries them as ``SyncTask.record``)."""

    name = CUSTOMER.name
    links_field = CUSTOMER.links_field
    model = Customer

    # The storage calls are handed back unawaited: the engine awaits them, and a coroutine
    # around each would only add a frame to every write.
    def get(self, tx: Transaction, record_id: str) -> Coroutine[Any, Any, Customer | None]:
        return tx.get_customer(record_id)

    def get_committed(
        self, storage: Storage, record_id: str
    ) -> Coroutine[Any, Any, Customer | None]:
        return storage.get_customer(record_id)

    def insert(
        self,
        tx: Transaction,
        record: Customer,
        *,
        idempotency_key: str | None,
        fingerprint: str | None,
    ) -> Coroutine[Any, Any, None]:
        return tx.insert_customer(record, create_key(idempotency_key, fingerprint))

    def update(
        self, tx: Transaction, before: Customer, after: Customer
    ) -> Coroutine[Any, Any, None]:
        return tx.update_customer(before, after)

    async def find_created(
        self, tx: Transaction, idempotency_key: str
    ) -> tuple[Customer, str] | None:
        earlier = await tx.find_idempotent_create(idempotency_key)
        return None if earlier is None else (earlier.customer, earlier.request_fingerprint)


CUSTOMERS = CustomerResource()


class AdoptionLedger:
    """The AdoptionGuard of the customers' fan-out: links and intents are stored."""

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
        task = await storage.find_sync_task_by_link(
            provider, provider_customer_id, resource=CUSTOMERS.name
        )
        return None if task is None else self._engine.tasks.key(task)

    async def adopting(self, customer: Customer, provider: str, provider_customer_id: str) -> None:
        async with self._engine.unit() as work:
            await self._engine.tasks.note_links(
                work.tx, customer.id, {provider: provider_customer_id}
            )
