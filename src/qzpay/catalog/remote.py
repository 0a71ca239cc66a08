"""Plans and prices at the providers: the engine's fan-out (qzpay.engine.fanout) with the
catalog's rules.

* Plans go to every provider that has plans (:func:`~qzpay.providers.base.plans_of`: Stripe's
  Products; MercadoPago has none): :func:`plan_remote` is a plain :class:`Fanout`.
* Prices go to every provider that has prices, and there only when the provider keeps an object
  for that price (:meth:`PriceAdapter.holds`: MercadoPago keeps none for a free price):
  :class:`PriceRemote` builds, per price, the fan-out over the providers that hold it. A price
  adapter needs the price's plan (Stripe: its Product); :class:`WithPlan` loads it from
  storage, with its provider links, on every call.
* A price whose plan has no object yet at a provider that has plans (a plan made before the
  provider was configured, or whose create is still pending in "log" mode) is refused cleanly
  with :class:`PlanNotAtProvider` (nothing is sent): create the plan there first
  (``billing.plans.sync_pending()``, or ``billing.catalog.reconcile(provider, fix=True)``).
  Pending price work is retried by ``sync_pending`` and succeeds once the plan is there.

Create keys are deterministic (:func:`qzpay.engine.keys.create_key`: id, stored version, the
values sent), so every retry of one create sends the same Idempotency-Key; after an ambiguous
failure the fan-out looks the object up by its qzpay id (Stripe: ``metadata.qzpay_plan_id`` /
``qzpay_price_id``; MercadoPago: ``external_reference``) before anything is resent.
"""

from __future__ import annotations

from collections.abc import Sequence

from qzpay.catalog.models import Plan, Price
from qzpay.catalog.resource import PLANS, PRICES
from qzpay.engine import keys
from qzpay.engine.fanout import Fanout
from qzpay.engine.resource import Links
from qzpay.errors import ConflictError, ProviderSyncError
from qzpay.providers.base import (
    PaymentProvider,
    PlanAdapter,
    PriceAdapter,
    PriceUpdate,
    ProviderPlan,
    ProviderPrice,
    plans_of,
    prices_of,
)
from qzpay.storage.base import Storage


class PlanNotAtProvider(ConflictError, ProviderSyncError):
    """A price cannot reach a provider because its plan has no object there yet (nothing was
    sent). A ``ConflictError`` for callers, a non-ambiguous ``ProviderSyncError`` for the sync
    machinery; ``billing.plans.sync_pending()`` (or reconcile with ``fix``) creates the plan
    there, after which the price can be created (or its pending task finishes)."""

    code = "plan_not_at_provider"

    def __init__(self, plan_id: str, *, provider: str, operation: str) -> None:
        super().__init__(
            f"{provider} {operation}: plan {plan_id} has no {provider} object yet; create the "
            "plan there first (billing.plans.sync_pending() or catalog reconcile with fix)",
            provider=provider,
            operation=operation,
            ambiguous=False,
        )
        self.plan_id = plan_id


def plan_create_key(plan: Plan) -> str:
    """The Idempotency-Key of creating ``plan`` at a provider (the values a copy is made of)."""
    return keys.create_key(
        plan.id, plan.updated_at, (plan.name, plan.description, plan.active, plan.metadata)
    )


def price_create_key(price: Price) -> str:
    """The Idempotency-Key of creating ``price`` at a provider."""
    return keys.create_key(
        price.id,
        price.updated_at,
        (
            price.plan_id,
            price.currency,
            price.unit_amount,
            price.interval,
            price.interval_count,
            price.trial_days,
            price.lookup_key,
            price.active,
            price.metadata,
        ),
    )


def _plans(provider: PaymentProvider) -> PlanAdapter:
    adapter = plans_of(provider)
    assert adapter is not None
    return adapter


def plan_providers(providers: Sequence[PaymentProvider]) -> list[PaymentProvider]:
    return [p for p in providers if plans_of(p) is not None]


def price_providers(providers: Sequence[PaymentProvider]) -> list[PaymentProvider]:
    return [p for p in providers if prices_of(p) is not None]


def plan_remote(providers: Sequence[PaymentProvider]) -> Fanout[Plan, ProviderPlan] | None:
    """The plans' fan-out over the providers that have plans; None if none has."""
    holding = plan_providers(providers)
    if not holding:
        return None
    return Fanout(PLANS, holding, _plans, create_key=plan_create_key)


class WithPlan:
    """One provider's price adapter as the fan-out calls it: the price's plan (with its
    provider links) loaded from storage and passed as ``plan=`` on every call."""

    def __init__(self, provider: PaymentProvider, storage: Storage) -> None:
        adapter = prices_of(provider)
        assert adapter is not None
        self._adapter: PriceAdapter = adapter
        self._name = provider.name
        self._has_plans = plans_of(provider) is not None
        self._storage = storage

    async def _plan(self, price: Price, operation: str, *, linked: bool = True) -> Plan:
        plan = await self._storage.get_plan(price.plan_id)
        if plan is None:  # pragma: no cover - a price's plan is never deleted
            raise ProviderSyncError(
                f"plan {price.plan_id} of price {price.id} is unknown",
                provider=self._name,
                operation=operation,
            )
        if linked and self._has_plans and self._name not in plan.provider_plan_ids:
            raise PlanNotAtProvider(plan.id, provider=self._name, operation=operation)
        return plan

    async def create(self, price: Price, /, *, idempotency_key: str) -> ProviderPrice:
        plan = await self._plan(price, "create_price")
        made = await self._adapter.create(price, plan=plan, idempotency_key=idempotency_key)
        if made is None:  # pragma: no cover - only providers that hold the price are called
            raise ProviderSyncError(
                f"{self._name} keeps no object for price {price.id}",
                provider=self._name,
                operation="create_price",
            )
        return made

    async def update(
        self, provider_id: str, before: Price, after: Price, /, *, idempotency_key: str
    ) -> ProviderPrice:
        plan = await self._plan(after, "update_price", linked=False)
        return await self._adapter.update(
            provider_id, PriceUpdate(before, after, plan), idempotency_key=idempotency_key
        )

    async def delete(self, provider_id: str, /, *, idempotency_key: str) -> None:
        await self._adapter.delete(provider_id, idempotency_key=idempotency_key)

    async def retrieve(self, provider_id: str, /) -> ProviderPrice | None:
        return await self._adapter.retrieve(provider_id)

    async def find(self, price: Price, /) -> ProviderPrice | None:
        plan = await self._plan(price, "find_price", linked=False)
        return await self._adapter.find(price, plan=plan)

    def merge_remote(self, local: Price, remote: ProviderPrice, /) -> Price:
        return self._adapter.merge_remote(local, remote)


class PriceRemote:
    """The prices' Remote: per price, the fan-out over the providers that hold it (see the
    module docstring)."""

    def __init__(self, providers: Sequence[PaymentProvider], storage: Storage) -> None:
        self._providers = price_providers(providers)
        self._storage = storage

    @property
    def names(self) -> list[str]:
        return [p.name for p in self._providers]

    @property
    def several(self) -> bool:
        return len(self._providers) > 1

    def fanout(self, price: Price) -> Fanout[Price, ProviderPrice]:
        holding = []
        for provider in self._providers:
            adapter = prices_of(provider)
            if adapter is not None and adapter.holds(price):
                holding.append(provider)
        storage = self._storage
        return Fanout(
            PRICES,
            holding,
            lambda provider: WithPlan(provider, storage),
            create_key=price_create_key,
        )

    async def create(self, record: Price, *, compensate: bool = True) -> Links:
        return await self.fanout(record).create(record, compensate=compensate)

    async def finish_create(self, record: Price) -> Links:
        return await self.fanout(record).finish_create(record)

    async def update(self, before: Price, after: Price) -> None:
        await self.fanout(after).update(before, after)

    async def push(self, record: Price) -> Links:
        return await self.fanout(record).push(record)

    async def delete(self, record: Price) -> None:
        await self.fanout(record).delete(record)

    async def remove(self, record: Price) -> None:
        await self.fanout(record).remove(record)


def price_remote(providers: Sequence[PaymentProvider], storage: Storage) -> PriceRemote | None:
    """The prices' Remote over the providers that have prices; None if none has."""
    return PriceRemote(providers, storage) if price_providers(providers) else None
