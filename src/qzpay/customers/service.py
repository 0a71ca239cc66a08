"""CustomerService: every business rule for customers.

Each write validates first (collecting every problem), then changes the record and appends its
event in one storage transaction, then runs the in-process handlers after the commit. That one
path is the only way events come to exist, so no operation can skip or half-write them.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Never

from qzpay._time import utcnow
from qzpay._unset import UNSET, Unset
from qzpay.customers import validation as v
from qzpay.customers.models import Address, Customer
from qzpay.errors import ConflictError, NotFoundError
from qzpay.events import Event, EventBus
from qzpay.ids import customer_ids, event_ids
from qzpay.page import Page
from qzpay.storage.base import CustomerFilter, Storage, Transaction

DEFAULT_PAGE_SIZE = 100


def _fingerprint(**fields: object) -> str:
    """A digest of a create request's normalized arguments, to spot a reused idempotency key."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class CustomerService:
    def __init__(self, storage: Storage, bus: EventBus) -> None:
        self._storage = storage
        self._bus = bus

    # -- writes --------------------------------------------------------------------------
    async def create(
        self,
        *,
        email: str,
        name: str | None = None,
        phone: str | None = None,
        address: Address | Mapping[str, str | None] | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        **unknown: Never,
    ) -> Customer:
        """Create a customer.

        With ``idempotency_key``, a retry returns the customer the first call created (no second
        customer, no second event); the same key with different arguments is a ConflictError.
        """
        problems = v.Problems()
        problems.unknown_arguments(unknown)
        email_ = v.check_email(email, problems)
        name_ = v.check_name(name, problems)
        phone_ = v.check_phone(phone, problems)
        address_ = v.check_address(address, problems)
        metadata_ = v.check_new_metadata({} if metadata is None else metadata, problems)
        v.check_metadata_size(metadata_, problems)
        key = v.check_idempotency_key(idempotency_key, problems)
        problems.raise_if_any()
        assert email_ is not None

        now = utcnow()
        customer = Customer.model_construct(
            id=customer_ids.new(),
            email=email_,
            name=name_,
            phone=phone_,
            address=address_,
            metadata=metadata_,
            provider_customer_ids={},
            created_at=now,
            updated_at=now,
            deleted_at=None,
        )
        fingerprint = None
        if key is not None:
            fingerprint = _fingerprint(
                email=email_,
                name=name_,
                phone=phone_,
                address=None if address_ is None else address_.model_dump(),
                metadata=metadata_,
            )
        for attempt in (1, 2):
            inserting = False
            try:
                async with self._storage.transaction() as tx:
                    if key is not None:
                        earlier = await tx.find_idempotent_create(key)
                        if earlier is not None:
                            if earlier.request_fingerprint != fingerprint:
                                raise ConflictError(
                                    "this idempotency key was already used with different "
                                    "arguments",
                                    code="idempotency_key_reused",
                                )
                            return earlier.customer
                    inserting = True
                    await tx.insert_customer(
                        customer, idempotency_key=key, request_fingerprint=fingerprint
                    )
                    event = await self._record(tx, "customer.created", customer, now)
                break
            except ConflictError as exc:
                # A concurrent create with the same key committed first: look again, and
                # return its customer if the arguments match.
                if not inserting or exc.code != "idempotency_key_reused" or attempt == 2:
                    raise
        await self._bus.dispatch(event)
        return customer

    async def update(
        self,
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
            size = v.Problems()
            v.check_metadata_size(merged, size)
            size.raise_if_any()
            return {**changes, "metadata": merged}

        return await self._modify(customer_id, change)

    async def delete(self, customer_id: str) -> None:
        """Soft delete: the record stays, with ``deleted_at`` set. Deleting twice is a no-op."""
        v.check_id(customer_id)
        async with self._storage.transaction() as tx:
            before = await self._load(tx, customer_id)
            if before.deleted_at is not None:
                return
            now = max(utcnow(), before.updated_at)
            after = before.model_copy(update={"deleted_at": now, "updated_at": now})
            await tx.update_customer(before, after)
            event = await self._record(tx, "customer.deleted", after, now)
        await self._bus.dispatch(event)

    async def link(self, customer_id: str, *, provider: str, provider_customer_id: str) -> Customer:
        """Record that ``provider`` knows this customer as ``provider_customer_id``.

        For importing customers that already exist at a provider. A provider id linked to
        another customer, or a second id for the same provider, is a ConflictError.
        """
        v.check_id(customer_id)
        problems = v.Problems()
        provider_ = v.check_provider(provider, problems)
        if not isinstance(provider_customer_id, str) or not 0 < len(provider_customer_id) <= 255:
            problems.add(
                "provider_customer_id", "invalid_id", "must be a non-empty string of at most 255"
            )
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

        return await self._modify(customer_id, change)

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

        return await self._modify(customer_id, change)

    async def _modify(self, customer_id: str, change: Any) -> Customer:
        """Apply ``change(before) -> fields`` to a live customer, with its event, atomically."""
        async with self._storage.transaction() as tx:
            before = await self._load(tx, customer_id)
            if before.deleted_at is not None:
                raise ConflictError(
                    f"customer {customer_id} is deleted and cannot be changed",
                    code="customer_deleted",
                )
            fields = await change(before)
            after = before.model_copy(update=fields)
            previous = before.changed_fields(after)
            if not previous:
                return before
            now = max(utcnow(), before.updated_at)
            after = after.model_copy(update={"updated_at": now})
            await tx.update_customer(before, after)
            event = await self._record(tx, "customer.updated", after, now, previous)
        await self._bus.dispatch(event)
        return after

    @staticmethod
    async def _load(tx: Transaction, customer_id: str) -> Customer:
        customer = await tx.get_customer(customer_id)
        if customer is None:
            raise NotFoundError(f"no customer {customer_id!r}")
        return customer

    @staticmethod
    async def _record(
        tx: Transaction,
        event_type: str,
        customer: Customer,
        now: Any,
        previous: dict[str, Any] | None = None,
    ) -> Event:
        event = Event.model_construct(
            id=event_ids.new(), type=event_type, data=customer, previous=previous, created_at=now
        )
        await tx.append_event(event)
        return event

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

    async def list(
        self,
        *,
        limit: int = 10,
        offset: int = 0,
        email: str | None = None,
        metadata: Mapping[str, str] | None = None,
        include_deleted: bool = False,
        **unknown: Never,
    ) -> Page[Customer]:
        """Newest first. ``email`` matches case-insensitively; all ``metadata`` pairs must match."""
        filters = list_filters(limit, offset, email, metadata, include_deleted, unknown)
        data, total = await self._storage.list_customers(filters, limit=limit, offset=offset)
        return make_page(data, total, limit, offset)

    def iterate(
        self,
        *,
        email: str | None = None,
        metadata: Mapping[str, str] | None = None,
        include_deleted: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
        **unknown: Never,
    ) -> AsyncIterator[Customer]:
        """Every match, newest first, fetched a page at a time by keyset (cheap at any depth).

        Arguments are checked now, not at the first ``async for`` step.
        """
        filters = scan_filters(email, metadata, include_deleted, page_size, unknown)
        return self._iterate(filters, page_size)

    async def _iterate(self, filters: CustomerFilter, page_size: int) -> AsyncIterator[Customer]:
        before: str | None = None
        while True:
            batch = await self.scan_page(filters, before, page_size)
            for customer in batch:
                yield customer
            if len(batch) < page_size:
                return
            before = batch[-1].id

    async def scan_page(
        self, filters: CustomerFilter, before_id: str | None, limit: int
    ) -> builtins.list[Customer]:
        return await self._storage.scan_customers(filters, before_id=before_id, limit=limit)


# Read rules shared by CustomerService and SyncBilling's blocking reads.


def check_external_lookup(provider_customer_id: object, provider: object) -> None:
    v.check_id(provider_customer_id, "provider_customer_id")
    if provider is not None:
        problems = v.Problems()
        v.check_provider(provider, problems)
        problems.raise_if_any()


def single_owner(found: list[Customer], provider_customer_id: str) -> Customer | None:
    if len(found) > 1:
        raise ConflictError(
            f"{provider_customer_id!r} is linked at several providers; pass provider=",
            code="ambiguous_provider_id",
        )
    return found[0] if found else None


def list_filters(
    limit: object,
    offset: object,
    email: object,
    metadata: object,
    include_deleted: object,
    unknown: Mapping[str, object],
) -> CustomerFilter:
    problems = v.Problems()
    problems.unknown_arguments(unknown)
    v.check_page(limit, offset, problems)
    filters = _filters(email, metadata, include_deleted, problems)
    problems.raise_if_any()
    return filters


def make_page(data: list[Customer], total: int, limit: int, offset: int) -> Page[Customer]:
    return Page[Customer].model_construct(
        data=data, total=total, limit=limit, offset=offset, has_more=offset + len(data) < total
    )


def scan_filters(
    email: object,
    metadata: object,
    include_deleted: object,
    page_size: object,
    unknown: Mapping[str, object],
) -> CustomerFilter:
    problems = v.Problems()
    problems.unknown_arguments(unknown)
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 1000:
        problems.add("page_size", "out_of_range", "must be an integer from 1 to 1000")
    filters = _filters(email, metadata, include_deleted, problems)
    problems.raise_if_any()
    return filters


def _filters(
    email: object, metadata: object, include_deleted: object, problems: v.Problems
) -> CustomerFilter:
    if email is not None and not isinstance(email, str):
        problems.add("email", "invalid_type", "must be a string")
    if not isinstance(include_deleted, bool):
        problems.add("include_deleted", "invalid_type", "must be True or False")
    return CustomerFilter(
        email=email if isinstance(email, str) else None,
        metadata={} if metadata is None else v.check_new_metadata(metadata, problems),
        include_deleted=include_deleted is True,
    )
