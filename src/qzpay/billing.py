"""Billing and SyncBilling: the entry points that wire storage, services and events together."""

from __future__ import annotations

import asyncio
import builtins
import threading
import weakref
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, Self, TypeVar

from qzpay.blocking import (
    BlockingTwin,
    KeysetWalk,
    PageRead,
    blocking,
    iterating,
    reading,
    same_signature,
)
from qzpay.catalog.plans import PlanService
from qzpay.catalog.prices import PriceService
from qzpay.catalog.service import CatalogService
from qzpay.catalog.wiring import Wiring
from qzpay.customers.models import Customer
from qzpay.customers.service import (
    CustomerService,
    SyncErrors,
    check_external_lookup,
    single_owner,
)
from qzpay.customers.sync import ProviderSet
from qzpay.customers.validation import check_id
from qzpay.event_log import EventLog
from qzpay.events import EventBus, Subscriptions
from qzpay.limits import MAX_METADATA_KEYS
from qzpay.page import Page
from qzpay.providers.base import PaymentProvider
from qzpay.storage import Storage, open_storage
from qzpay.storage.base import BlockingReader, CustomerFilter, SupportsBlockingReads
from qzpay.subscriptions.entitlements import EntitlementService, LimitService
from qzpay.subscriptions.service import SubscriptionService
from qzpay.webhooks import WebhookService

DEFAULT_STORAGE = "sqlite:///qzpay.db"
T = TypeVar("T")


class Billing(Subscriptions):
    """The asynchronous API. ``storage`` is a URL (``memory://``, ``sqlite:///billing.db``,
    ``postgresql://...``) or a Storage object; it connects on first use. With ``migrate``
    (the default) a URL's schema is created or upgraded then; pass ``migrate=False`` where
    ``qzpay db upgrade`` manages the schema, and an outdated schema raises StorageError."""

    def __init__(
        self,
        storage: str | Storage = DEFAULT_STORAGE,
        *,
        provider: PaymentProvider | Sequence[PaymentProvider] | None = None,
        provider_sync_errors: SyncErrors = "raise",
        migrate: bool = True,
    ) -> None:
        if provider_sync_errors not in ("raise", "log"):
            raise ValueError('provider_sync_errors must be "raise" or "log"')
        self.storage: Storage = open_storage(storage, migrate=migrate)
        self._bus = EventBus()
        providers = None
        if isinstance(provider, Sequence):
            providers = ProviderSet(list(provider))
        elif provider is not None:
            providers = ProviderSet([provider])
        self._providers = providers
        self.customers = CustomerService(self.storage, self._bus, providers, provider_sync_errors)
        # Plans and prices reach the providers that hold them (qzpay.catalog.remote); one
        # metadata slot is kept for qzpay's id at the providers, as for customers.
        wiring = Wiring(
            self.storage,
            self._bus,
            providers=[] if providers is None else providers.providers,
            sync_errors=provider_sync_errors,
            metadata_limit=MAX_METADATA_KEYS - (1 if providers else 0),
        )
        self.prices = PriceService(wiring)
        self.plans = PlanService(wiring, prices=self.prices)
        self.catalog = CatalogService(wiring, self.plans, self.prices)
        self.subscriptions = SubscriptionService(wiring)
        self.entitlements = EntitlementService(self.storage)
        self.limits = LimitService(self.storage)
        self.events = EventLog(self.storage)
        self.webhooks = WebhookService(
            self.customers, providers, self.plans, self.prices, self.subscriptions
        )

    def _events(self) -> EventBus:
        return self._bus

    async def open(self) -> None:
        """Connect and migrate now rather than on first use."""
        await self.storage.open()

    async def close(self) -> None:
        """Close the storage and the providers (Billing owns what it was given)."""
        try:
            if self._providers is not None:
                await self._providers.close()
        finally:
            await self.storage.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


class SyncBilling(Subscriptions):
    """The same API with blocking methods, for Django, Flask, scripts and the CLI.

    Safe to call from several threads. Writes run on one private event-loop thread, which is
    also where event handlers run; reads run on the calling thread when the backend can serve
    them there (memory, SQLite), which keeps a blocking read as fast as an awaited one. A
    handler must not write through the same SyncBilling (it would wait on itself); that raises
    RuntimeError instead of hanging; ``on`` registers handlers to run on that thread.
    """

    def __init__(
        self,
        storage: str | Storage = DEFAULT_STORAGE,
        *,
        provider: PaymentProvider | Sequence[PaymentProvider] | None = None,
        provider_sync_errors: SyncErrors = "raise",
        migrate: bool = True,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="qzpay-sync-billing", daemon=True
        )
        self._thread.start()
        self._finalizer = weakref.finalize(self, _stop_loop, self._loop, self._thread)
        self._billing = Billing(
            storage, provider=provider, provider_sync_errors=provider_sync_errors, migrate=migrate
        )
        self.storage = self._billing.storage
        self._opened = False
        # Checked once: isinstance against a runtime protocol costs microseconds per call.
        self._reads = self.storage if isinstance(self.storage, SupportsBlockingReads) else None
        self.customers = SyncCustomers(self, self._billing.customers)
        self.plans = SyncPlans(self._run, self._billing.plans)
        self.prices = SyncPrices(self._run, self._billing.prices)
        self.catalog = SyncCatalog(self._run, self._billing.catalog)
        self.subscriptions = SyncSubscriptions(self._run, self._billing.subscriptions)
        self.entitlements = SyncEntitlements(self._run, self._billing.entitlements)
        self.limits = SyncLimits(self._run, self._billing.limits)
        self.events = SyncEventLog(self._run, self._billing.events)
        self.webhooks = SyncWebhooks(self._run, self._billing.webhooks)

    def _blocking_reader(self) -> BlockingReader | None:
        """The storage's reader for this thread, or None to read through the loop thread."""
        if self._reads is None:
            return None
        if not self._opened:
            self._run(self._billing.open())
            self._opened = True
        elif not self._finalizer.alive:
            raise RuntimeError("SyncBilling is closed")
        return self._reads.blocking_reader()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncBilling was called from one of its own event handlers")
        if not self._finalizer.alive:
            coro.close()
            raise RuntimeError("SyncBilling is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _events(self) -> EventBus:
        return self._billing._bus

    def open(self) -> None:
        self._run(self._billing.open())
        self._opened = True

    def close(self) -> None:
        if self._finalizer.alive:
            try:
                self._run(self._billing.close())
            finally:
                self._opened = False
                self._finalizer()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SyncCustomers(BlockingTwin[CustomerService]):
    """Blocking twin of CustomerService; see its methods for the rules. Reads go through the
    storage's blocking reader when it has one (no hop to the loop thread)."""

    def __init__(self, owner: SyncBilling, service: CustomerService) -> None:
        super().__init__(owner._run, service)
        self._reader = owner._blocking_reader

    create = blocking(CustomerService.create)
    update = blocking(CustomerService.update)
    delete = blocking(CustomerService.delete)
    link = blocking(CustomerService.link)
    unlink = blocking(CustomerService.unlink)
    sync_pending = blocking(CustomerService.sync_pending)
    reconcile = blocking(CustomerService.reconcile)

    @same_signature(CustomerService.get)
    def get(self, customer_id: str) -> Customer | None:
        reader = self._reader()
        if reader is None:
            return self._run(self._service.get(customer_id))
        return reader.get_customer(check_id(customer_id))

    @same_signature(CustomerService.get_by_external_id)
    def get_by_external_id(
        self, provider_customer_id: str, *, provider: str | None = None
    ) -> Customer | None:
        reader = self._reader()
        if reader is None:
            return self._run(
                self._service.get_by_external_id(provider_customer_id, provider=provider)
            )
        check_external_lookup(provider_customer_id, provider)
        found = reader.find_customers_by_provider_id(provider_customer_id, provider=provider)
        return single_owner(found, provider_customer_id)

    @reading(CustomerService.list)
    def list(self, query: PageRead[Customer, CustomerFilter]) -> Page[Customer]:
        """As CustomerService.list (the same filters), blocking: one Page, newest first."""
        reader = self._reader()
        if reader is None:
            return self._run(query)
        return query.blocking(reader.list_customers)

    @reading(CustomerService.iterate)
    def iterate(self, walk: KeysetWalk[Customer, CustomerFilter]) -> Iterator[Customer]:
        """As CustomerService.iterate, blocking: every match, newest first, by keyset pages."""

        def page(before: str | None) -> builtins.list[Customer]:
            reader = self._reader()
            if reader is None:
                return self._run(walk.page(before))
            return reader.scan_customers(walk.filters, before_id=before, limit=walk.page_size)

        return walk.blocking(page)


class SyncPlans(BlockingTwin[PlanService]):
    """Blocking twin of PlanService (reads too go through the loop thread)."""

    create = blocking(PlanService.create)
    update = blocking(PlanService.update)
    archive = blocking(PlanService.archive)
    sync_pending = blocking(PlanService.sync_pending)
    get = blocking(PlanService.get)
    get_by_key = blocking(PlanService.get_by_key)
    get_by_external_id = blocking(PlanService.get_by_external_id)
    list = blocking(PlanService.list)
    iterate = iterating(PlanService.iterate)


class SyncPrices(BlockingTwin[PriceService]):
    """Blocking twin of PriceService (reads too go through the loop thread)."""

    create = blocking(PriceService.create)
    update = blocking(PriceService.update)
    archive = blocking(PriceService.archive)
    sync_pending = blocking(PriceService.sync_pending)
    get = blocking(PriceService.get)
    get_by_lookup_key = blocking(PriceService.get_by_lookup_key)
    get_by_external_id = blocking(PriceService.get_by_external_id)
    list = blocking(PriceService.list)
    iterate = iterating(PriceService.iterate)


class SyncCatalog(BlockingTwin[CatalogService]):
    diff = blocking(CatalogService.diff)
    apply = blocking(CatalogService.apply)
    sync_pending = blocking(CatalogService.sync_pending)
    reconcile = blocking(CatalogService.reconcile)


class SyncSubscriptions(BlockingTwin[SubscriptionService]):
    """Blocking twin of SubscriptionService (reads too go through the loop thread)."""

    create = blocking(SubscriptionService.create)
    cancel = blocking(SubscriptionService.cancel)
    uncancel = blocking(SubscriptionService.uncancel)
    change_price = blocking(SubscriptionService.change_price)
    pause = blocking(SubscriptionService.pause)
    resume = blocking(SubscriptionService.resume)
    run_due = blocking(SubscriptionService.run_due)
    sync_pending = blocking(SubscriptionService.sync_pending)
    reconcile = blocking(SubscriptionService.reconcile)
    get = blocking(SubscriptionService.get)
    get_by_external_id = blocking(SubscriptionService.get_by_external_id)
    list = blocking(SubscriptionService.list)
    iterate = iterating(SubscriptionService.iterate)


class SyncEntitlements(BlockingTwin[EntitlementService]):
    check = blocking(EntitlementService.check)
    list = blocking(EntitlementService.list)


class SyncLimits(BlockingTwin[LimitService]):
    get = blocking(LimitService.get)


class SyncWebhooks(BlockingTwin[WebhookService]):
    handle = blocking(WebhookService.handle)


class SyncEventLog(BlockingTwin[EventLog]):
    list = blocking(EventLog.list)
    get = blocking(EventLog.get)


__all__ = ["Billing", "SyncBilling"]
