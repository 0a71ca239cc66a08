"""Customers across several providers: the engine's fan-out with the customers' rules.

The rules every resource shares (compensation after a clean failure, nothing undone after an
ambiguous one, look-up before any resend, per-request idempotency keys) live in
:mod:`qzpay.engine.fanout` and :mod:`qzpay.engine.keys`; the customers add their create key
(:func:`create_key`: the values a provider copy is made from) and adoption when a provider's
email is taken (:mod:`qzpay.customers.adoption`). :class:`ProviderSet` is the configured
providers, and their customers' fan-out.
"""

from __future__ import annotations

from collections.abc import Sequence

from qzpay.customers.adoption import AdoptionGuard, EmailAdoption
from qzpay.customers.models import Customer
from qzpay.customers.resource import CUSTOMERS
from qzpay.engine import keys
from qzpay.engine.fanout import Fanout, IncompleteCompensation, PartiallyApplied
from qzpay.engine.keys import MAX_KEY_LENGTH, delete_key, fresh_key, update_key
from qzpay.providers.base import PaymentProvider, ProviderCustomer

__all__ = [
    "MAX_KEY_LENGTH",
    "AdoptionGuard",
    "IncompleteCompensation",
    "PartiallyApplied",
    "ProviderSet",
    "create_key",
    "delete_key",
    "fresh_key",
    "update_key",
]


def create_key(customer: Customer | str) -> str:
    """The Idempotency-Key of creating ``customer`` at a provider (see
    :func:`qzpay.engine.keys.create_key`): its id and the stored version of every value sent,
    so every retry of one create sends the same key and a create made from a changed record
    (edited, or unlinked after its copy was deleted at the provider) gets another.

    Given only an id, the key depends on the id alone.
    """
    if isinstance(customer, str):
        return keys.create_key(customer)
    address = customer.address
    return keys.create_key(
        customer.id,
        customer.updated_at,
        (
            customer.email,
            customer.name,
            customer.phone,
            None if address is None else address.model_dump(),
            customer.metadata,
        ),
    )


class ProviderSet:
    """The configured providers, called in order; :meth:`customers` is their customer fan-out.

    The ``*_everywhere`` and ``create_at`` calls are that fan-out without a ledger to adopt
    through unless a ``guard`` is given.
    """

    def __init__(self, providers: Sequence[PaymentProvider]) -> None:
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"two providers share a name: {names}")
        self.providers = list(providers)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.providers]

    def customers(self, guard: AdoptionGuard | None = None) -> Fanout[Customer, ProviderCustomer]:
        """The customers' fan-out over these providers (their Remote), adopting through
        ``guard``."""
        return Fanout(
            CUSTOMERS,
            self.providers,
            lambda provider: provider.customers,
            create_key=create_key,
            conflicts=EmailAdoption(self.providers, guard),
        )

    async def create_everywhere(
        self, customer: Customer, *, guard: AdoptionGuard | None = None, compensate: bool = True
    ) -> dict[str, str]:
        return await self._fanout(guard).create(customer, compensate=compensate)

    async def find_or_create_everywhere(
        self, customer: Customer, *, guard: AdoptionGuard | None = None
    ) -> dict[str, str]:
        return await self._fanout(guard).finish_create(customer)

    async def create_at(
        self, provider: PaymentProvider, customer: Customer, *, guard: AdoptionGuard | None = None
    ) -> ProviderCustomer:
        return await self._fanout(guard).create_at(provider.name, customer)

    def _fanout(self, guard: AdoptionGuard | None) -> Fanout[Customer, ProviderCustomer]:
        return self.customers(guard)

    async def close(self) -> None:
        for provider in self.providers:
            await provider.close()
