"""The customers' own rule on top of the engine's fan-out: adoption when the email is taken.

A provider that allows one customer per email (MercadoPago) answers a create with
:class:`ProviderEmailTaken`. A customer there that carries no qzpay id (created outside qzpay)
is adopted, that is marked as ours and given our values, only if no local customer is linked
to it; anything else stays a ConflictError. The fan-out (:class:`qzpay.engine.fanout.Fanout`)
writes an adoption after every other provider succeeded; it is noted on the intent first
(:meth:`AdoptionGuard.adopting`), so undoing an unfinished create *releases* an adopted
customer (un-marks it) instead of deleting it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from qzpay.customers.models import Customer
from qzpay.engine.keys import fresh_key
from qzpay.errors import ProviderSyncError
from qzpay.providers.base import (
    CustomerAdapter,
    PaymentProvider,
    ProviderCustomer,
    ProviderEmailTaken,
)

logger = logging.getLogger("qzpay.sync")


class AdoptionGuard(Protocol):
    """What adoption asks of the service (which owns the storage)."""

    async def owner(self, provider: str, provider_customer_id: str) -> str | None:
        """The id of the local customer linked to this provider customer, if any."""
        ...

    async def adopting(self, customer: Customer, provider: str, provider_customer_id: str) -> None:
        """Note durably, before anything is written at the provider, that the unfinished create
        of ``customer`` is adopting this provider customer (so that undoing the create releases
        it rather than deleting it). Nothing to note for a customer committed locally."""
        ...


@dataclass(frozen=True, slots=True)
class _Adoption:
    """A customer created outside qzpay holding our customer's email, cleared for adoption
    (the engine's Claim)."""

    provider: str
    adapter: CustomerAdapter
    existing: ProviderCustomer
    customer: Customer
    guard: AdoptionGuard

    async def take(self) -> ProviderCustomer:
        existing, customer = self.existing, self.customer
        await self.guard.adopting(customer, self.provider, existing.id)
        try:
            adopted = await self.adapter.adopt(
                existing.id, customer, idempotency_key=fresh_key("adopt", existing.id)
            )
        except ProviderSyncError as failure:
            if not failure.ambiguous:
                raise
            found = await self.adapter.find(customer)  # did the marking land?
            if found is None or found.id != existing.id:
                raise
            adopted = found
        logger.info(
            "adopted %s customer %s (created outside qzpay) for %s",
            self.provider,
            existing.id,
            customer.id,
        )
        return adopted


class EmailAdoption:
    """The customers' CreateConflicts: adopt on ProviderEmailTaken, release to undo.

    Without a guard nothing is adopted (the ProviderEmailTaken is raised), but what an earlier
    create adopted is still released when it is undone.
    """

    def __init__(
        self, providers: Sequence[PaymentProvider], guard: AdoptionGuard | None = None
    ) -> None:
        self._adapters = {p.name: p.customers for p in providers}
        self._guard = guard

    async def claim(
        self, provider: str, record: Customer, failure: ProviderSyncError
    ) -> _Adoption | None:
        """Apply the adoption rule to the customer holding the email; raise if it fails."""
        if not isinstance(failure, ProviderEmailTaken):
            return None
        existing, guard = failure.existing, self._guard
        if guard is None or existing is None or existing.qzpay_customer_id is not None:
            raise failure  # unknown, or another qzpay customer's: never taken over
        owner = await guard.owner(provider, existing.id)
        if owner is not None and owner != record.id:
            raise ProviderEmailTaken(
                f"{provider} customer {existing.id} has the email of {record.id} and is "
                f"linked to qzpay customer {owner}; {provider} allows one customer per email",
                provider=provider,
                existing=existing,
                operation=failure.operation,
            ) from failure
        return _Adoption(provider, self._adapters[provider], existing, record, guard)

    async def give_back(self, provider: str, provider_id: str, record: Customer) -> None:
        await self._adapters[provider].release(
            provider_id, record, idempotency_key=fresh_key("release", provider_id)
        )
