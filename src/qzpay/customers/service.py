"""CustomerService: the customer rules, on the resource-agnostic engine (qzpay.engine).

Here: validation and the change each write makes. How customers are stored and reach their
providers is declared in qzpay.customers.resource; the engine does the rest: each write commits
the record and its event in one unit of work (handlers run after the commit) and meets the
providers as ``provider_sync_errors`` asks (qzpay.engine.strategy), leaving as a sync task
whatever ``sync_pending`` may have to finish or undo.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Never

from qzpay._time import utcnow
from qzpay._unset import UNSET, Unset
from qzpay.blocking import KeysetWalk, PageRead
from qzpay.customers import validation as v
from qzpay.customers.models import Address, Customer
from qzpay.customers.reads import (
    check_external_lookup,
    list_filters,
    scan_filters,
    single_owner,
)
from qzpay.customers.reconcile import ReconcileReport, reconcile
from qzpay.customers.resource import CUSTOMERS, AdoptionLedger
from qzpay.customers.sync import ProviderSet
from qzpay.engine.core import Engine
from qzpay.engine.intents import fingerprint
from qzpay.engine.pending import SyncReport
from qzpay.engine.strategy import SyncErrors, choose
from qzpay.errors import ConflictError
from qzpay.events import EventBus
from qzpay.ids import customer_ids
from qzpay.limits import (
    DEFAULT_LIST_LIMIT,
    DEFAULT_PAGE_SIZE,
    DEFAULT_SYNC_BATCH,
    MAX_ID_LENGTH,
    MAX_METADATA_KEYS,
)
from qzpay.providers.base import PaymentProvider, ProviderCustomer
from qzpay.storage.base import CustomerFilter, Storage

__all__ = [  # the read rules are re-exported: billing, the API and tests import them from here
    "DEFAULT_PAGE_SIZE",
    "CustomerService",
    "SyncErrors",
    "SyncReport",
    "check_external_lookup",
    "list_filters",
    "scan_filters",
    "single_owner",
]


_new = object.__new__
_set = object.__setattr__
_CUSTOMER_FIELDS = tuple(Customer.model_fields)


def _new_customer(fields: dict[str, Any]) -> Customer:
    """``Customer.model_construct(**fields)`` given every field, in declaration order (the
    model has no extra or private attributes), at about a third of its cost."""
    assert tuple(fields) == _CUSTOMER_FIELDS
    customer = _new(Customer)
    _set(customer, "__dict__", fields)
    _set(customer, "__pydantic_extra__", None)
    _set(customer, "__pydantic_fields_set__", set(fields))
    _set(customer, "__pydantic_private__", None)
    return customer


class CustomerService:
    def __init__(
        self,
        storage: Storage,
        bus: EventBus,
        providers: ProviderSet | None = None,
        sync_errors: SyncErrors = "raise",
    ) -> None:
        self._storage = storage
        self._providers = providers
        self._engine = Engine(CUSTOMERS, storage, bus)
        self._adoptions = AdoptionLedger(self._engine)
        remote = None if providers is None else providers.customers(self._adoptions)
        self._strategy = choose(self._engine, remote, sync_errors)
        self._metadata_limit = MAX_METADATA_KEYS - (1 if providers else 0)

    # -- writes --------------------------------------------------------------------------
    async def create(
        self,
        /,
        *,
        email: str,
        name: str | None = None,
        phone: str | None = None,
        address: Address | Mapping[str, str | None] | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        **unknown: Never,
    ) -> Customer:
        """Create a customer (and, with providers configured, create it at each of them).

        With ``idempotency_key``, a retry returns the customer the first call created (no second
        customer, no second event); the same key with different arguments is a ConflictError.
        A retry after a failed provider call reuses the first call's customer id.
        """
        problems = v.Problems()
        problems.unknown_arguments(unknown)
        email_ = v.check_email(email, problems)
        name_ = v.check_name(name, problems)
        phone_ = v.check_phone(phone, problems)
        address_ = v.check_address(address, problems)
        metadata_ = v.check_new_metadata({} if metadata is None else metadata, problems)
        v.check_metadata_size(metadata_, problems, limit=self._metadata_limit)
        key = v.check_idempotency_key(idempotency_key, problems)
        problems.raise_if_any()
        assert email_ is not None

        now = utcnow()
        customer = _new_customer(
            {
                "id": customer_ids.new(),
                "email": email_,
                "name": name_,
                "phone": phone_,
                "address": address_,
                "metadata": metadata_,
                "provider_customer_ids": {},
                "created_at": now,
                "updated_at": now,
                "deleted_at": None,
            }
        )
        digest = None
        if key is not None:
            digest = fingerprint(
                email=email_,
                name=name_,
                phone=phone_,
                address=None if address_ is None else address_.model_dump(),
                metadata=metadata_,
            )
        return await self._strategy.create(customer, key, digest)

    async def update(
        self,
        /,
        customer_id: str,
        *,
        email: str | Unset = UNSET,
        name: str | Unset | None = UNSET,
        phone: str | Unset | None = UNSET,
        address: Address | Mapping[str, str | None] | Unset | None = UNSET,
        metadata: Mapping[str, str | None] | Unset = UNSET,
        **unknown: Never,
    ) -> Customer:
        """Change the given fields; ``None`` clears name, phone or address.

        ``metadata`` is merged into the stored metadata: a key set to ``None`` is removed, keys
        not named are kept. An update that changes nothing writes nothing and emits no event.
        """
        v.check_id(customer_id)
        problems = v.Problems()
        problems.unknown_arguments(unknown)
        changes: dict[str, Any] = {}
        if email is not UNSET:
            changes["email"] = v.check_email(email, problems)
        if name is not UNSET:
            changes["name"] = v.check_name(name, problems)
        if phone is not UNSET:
            changes["phone"] = v.check_phone(phone, problems)
        if address is not UNSET:
            changes["address"] = v.check_address(address, problems)
        patch: dict[str, str | None] = {}
        if metadata is not UNSET:
            patch = v.check_metadata(metadata, problems, allow_none_values=True)
        problems.raise_if_any()

        async def change(before: Customer) -> dict[str, Any]:
            merged = dict(before.metadata)
            for key, value in patch.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            if len(merged) > self._metadata_limit:  # the only way check_metadata_size fails
                size = v.Problems()
                v.check_metadata_size(merged, size, limit=self._metadata_limit)
                size.raise_if_any()
            return {**changes, "metadata": merged}

        return await self._strategy.modify(customer_id, change, remote_visible=True)

    async def delete(self, customer_id: str) -> None:
        """Soft delete: the record stays, with ``deleted_at`` set. Deleting twice is a no-op.

        With providers, the provider customers are deleted too. A provider deletion cannot be
        undone, so a delete that failed part-way is finished forward by ``sync_pending``.
        """
        await self._strategy.delete(v.check_id(customer_id))

    async def link(self, customer_id: str, *, provider: str, provider_customer_id: str) -> Customer:
        """Record that ``provider`` knows this customer as ``provider_customer_id``.

        For importing customers that already exist at a provider; nothing is sent to it. A
        provider id linked to another customer, or a second id for the same provider, is a
        ConflictError.
        """
        v.check_id(customer_id)
        problems = v.Problems()
        provider_ = v.check_provider(provider, problems)
        if not isinstance(provider_customer_id, str) or not (
            0 < len(provider_customer_id) <= MAX_ID_LENGTH
        ):
            problems.add(
                "provider_customer_id",
                "invalid_id",
                f"must be a non-empty string of at most {MAX_ID_LENGTH}",
            )
        else:
            v.check_text(provider_customer_id, problems, "provider_customer_id")
        problems.raise_if_any()
        assert provider_ is not None

        async def change(before: Customer) -> dict[str, Any]:
            current = before.provider_customer_ids.get(provider_)
            if current is not None and current != provider_customer_id:
                raise ConflictError(
                    f"customer {customer_id} is already linked to {provider_} customer "
                    f"{current!r}; unlink it first",
                    code="provider_already_linked",
                )
            links = {**before.provider_customer_ids, provider_: provider_customer_id}
            return {"provider_customer_ids": links}

        return await self._strategy.modify(customer_id, change, remote_visible=False)

    async def unlink(self, customer_id: str, *, provider: str) -> Customer:
        """Forget this customer's id at ``provider``; unlinking twice is a no-op."""
        v.check_id(customer_id)
        problems = v.Problems()
        provider_ = v.check_provider(provider, problems)
        problems.raise_if_any()

        async def change(before: Customer) -> dict[str, Any]:
            links = dict(before.provider_customer_ids)
            links.pop(provider_ or "", None)
            return {"provider_customer_ids": links}

        return await self._strategy.modify(customer_id, change, remote_visible=False)

    async def sync_pending(self, *, limit: int = DEFAULT_SYNC_BATCH) -> SyncReport:
        """Finish or undo provider work left pending by failures, crashes or "log" mode.

        An unfinished create is finished (created or adopted at the providers, then committed)
        when its caller gave an idempotency key or in "log" mode, and undone otherwise (the
        caller was told it failed). Safe to run from several processes at once: each task is
        worked on only by the holder of its lease.
        """
        return await self._strategy.sync_pending(limit)

    async def reconcile(
        self, provider: str, *, fix: bool = False, on_progress: Callable[[int], None] | None = None
    ) -> ReconcileReport:
        """Compare qzpay's customers with ``provider``'s; with ``fix``, repair what is safe
        (see qzpay.customers.reconcile). ``on_progress(n)`` is called per local customer."""
        providers = self._providers
        source = None
        if providers is not None:
            source = next((p for p in providers.providers if p.name == provider), None)
        if source is None or providers is None:
            v.fail("provider", "unknown_provider", f"no provider named {provider!r} is configured")

        async def create(at: PaymentProvider, customer: Customer) -> ProviderCustomer:
            return await providers.create_at(at, customer, guard=self._adoptions)

        return await reconcile(
            self, self._storage, source, fix=fix, on_progress=on_progress, create=create
        )

    # -- changes that come from a provider ----------------------------------------------
    async def apply_remote(
        self,
        customer_id: str,
        remote: ProviderCustomer | None,
        *,
        provider: PaymentProvider,
        webhook_event_id: str | None = None,
    ) -> Customer | None:
        """Take the provider's current copy as the truth for this customer (None: deleted
        there), locally only, with the usual events. With ``webhook_event_id`` the delivery is
        recorded in the same transaction, and a duplicate delivery changes nothing.

        With several providers, the change is then pushed to the others (deleted there too, for
        a deletion) as in "log" mode: a failure is logged and the task stays for sync_pending.

        Returns the stored customer, or None for a duplicate delivery.
        """

        def merge(before: Customer) -> Customer:
            assert remote is not None
            return provider.customers.merge_remote(before, remote)

        return await self._strategy.apply_remote(
            customer_id,
            None if remote is None else merge,
            source=provider.name,
            delivery=webhook_event_id,
        )

    async def record_webhook(self, provider: str, event_id: str) -> bool:
        """Remember a delivery that changes no customer; False if it was seen before."""
        async with self._storage.transaction() as tx:
            return await tx.record_webhook_event(provider, event_id, utcnow())

    # -- reads ---------------------------------------------------------------------------
    async def get(self, customer_id: str) -> Customer | None:
        """The customer, deleted ones included (with ``deleted_at`` set); None if unknown."""
        return await self._storage.get_customer(v.check_id(customer_id))

    async def get_by_external_id(
        self, provider_customer_id: str, *, provider: str | None = None
    ) -> Customer | None:
        """The customer a provider knows by ``provider_customer_id``; None if none is linked."""
        check_external_lookup(provider_customer_id, provider)
        found = await self._storage.find_customers_by_provider_id(
            provider_customer_id, provider=provider
        )
        return single_owner(found, provider_customer_id)

    def list(
        self,
        /,
        *,
        limit: int = DEFAULT_LIST_LIMIT,
        offset: int = 0,
        email: str | None = None,
        metadata: Mapping[str, str] | None = None,
        include_deleted: bool = False,
        **unknown: Never,
    ) -> PageRead[Customer, CustomerFilter]:
        """Newest first. ``email`` matches case-insensitively; all ``metadata`` pairs must match."""
        return PageRead(
            self._storage.list_customers,
            partial(list_filters, limit, offset, email, metadata, include_deleted, unknown),
            limit=limit,
            offset=offset,
        )

    def iterate(
        self,
        /,
        *,
        email: str | None = None,
        metadata: Mapping[str, str] | None = None,
        include_deleted: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
        **unknown: Never,
    ) -> KeysetWalk[Customer, CustomerFilter]:
        """Every match, newest first, fetched a page at a time by keyset (cheap at any depth).

        Arguments are checked now, not at the first ``async for`` step.
        """
        filters = scan_filters(email, metadata, include_deleted, page_size, unknown)
        return KeysetWalk(self.scan_page, filters, page_size)

    async def scan_page(
        self, filters: CustomerFilter, before_id: str | None, limit: int
    ) -> builtins.list[Customer]:
        return await self._storage.scan_customers(filters, before_id=before_id, limit=limit)
