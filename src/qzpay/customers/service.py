"""CustomerService: every business rule for customers.

Each write validates first (collecting every problem), then changes the record and appends its
event in one storage transaction, then runs the in-process handlers after the commit. That one
path is the only way events come to exist, so no operation can skip or half-write them.

With payment providers configured, the provider is called outside any database transaction
(a network call must not hold the write lock), in the order that keeps both sides agreeing:

* ``provider_sync_errors="raise"``: a create first records an intent (invisible to reads),
  then creates at the providers, then commits the customer, its links and its event while
  dropping the intent. Updates and deletes go to the providers first, then commit locally.
  A provider failure raises ProviderSyncError and leaves the local state as it was.
* ``provider_sync_errors="log"``: the local change commits first together with a sync task;
  the providers are called after; a failure is logged and the task stays for ``sync_pending``.

Whatever a failure may have left half-done at the providers (an ambiguous failure, a delete
applied at some providers only, a change that could not be reverted) is recorded as a sync
task, so ``sync_pending`` can finish or undo it. Changes that arrive from one provider (webhooks)
are committed locally and, with several providers, pushed to the others the same way.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Never, TypeAlias

from qzpay._time import utcnow
from qzpay._unset import UNSET, Unset
from qzpay.customers import validation as v
from qzpay.customers.models import Address, Customer
from qzpay.customers.reconcile import ReconcileReport, reconcile
from qzpay.customers.sync import AdoptionGuard, ProviderSet
from qzpay.errors import ConflictError, NotFoundError, ProviderSyncError
from qzpay.events import Event, EventBus
from qzpay.ids import customer_ids, event_ids
from qzpay.limits import MAX_METADATA_KEYS
from qzpay.page import Page
from qzpay.providers.base import PaymentProvider, ProviderCustomer
from qzpay.storage.base import CustomerFilter, Storage, SyncOperation, SyncTask, Transaction

DEFAULT_PAGE_SIZE = 100
LEASE = timedelta(seconds=120)
SyncErrors: TypeAlias = Literal["raise", "log"]
Change: TypeAlias = Callable[[Customer], Awaitable[dict[str, Any]]]
logger = logging.getLogger("qzpay.sync")


def _fingerprint(**fields: object) -> str:
    """A digest of a create request's normalized arguments, to spot a reused idempotency key."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _permanent(failure: ProviderSyncError) -> bool:
    """A failure no retry can cure: the provider holds a conflicting customer."""
    return isinstance(failure, ConflictError)


def _merge_operations(old: SyncOperation | None, new: SyncOperation) -> SyncOperation:
    """A customer has one pending task: a create absorbs later pushes, a delete wins."""
    if new == "delete" or old is None:
        return new
    return old


class _AdoptionLedger:
    """The AdoptionGuard CustomerService gives its ProviderSet: links and intents are stored."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def owner(self, provider: str, provider_customer_id: str) -> str | None:
        linked = await self._storage.find_customers_by_provider_id(
            provider_customer_id, provider=provider
        )
        if linked:
            return linked[0].id
        # An unfinished create of another customer may be adopting it right now.
        task = await self._storage.find_sync_task_by_link(provider, provider_customer_id)
        return None if task is None else task.customer_id

    async def adopting(self, customer: Customer, provider: str, provider_customer_id: str) -> None:
        async with self._storage.transaction() as tx:
            task = await tx.get_sync_task(customer.id)
            if task is None or task.committed:
                return  # a committed customer is linked when its task finishes
            links = {**task.customer.provider_customer_ids, provider: provider_customer_id}
            noted = task.customer.model_copy(update={"provider_customer_ids": links})
            await tx.put_sync_task(replace(task, customer=noted))


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one ``sync_pending`` pass did."""

    completed: int
    failed: int
    remaining: int


class CustomerService:
    def __init__(
        self,
        storage: Storage,
        bus: EventBus,
        providers: ProviderSet | None = None,
        sync_errors: SyncErrors = "raise",
    ) -> None:
        self._storage = storage
        self._bus = bus
        self._providers = providers
        self._sync_errors = sync_errors
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._in_flight: set[str] = set()
        self._adoptions: AdoptionGuard = _AdoptionLedger(storage)
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
        if self._providers is not None and self._sync_errors == "raise":
            return await self._create_at_providers_first(customer, key, fingerprint)
        return await self._create_locally(customer, key, fingerprint)

    async def _create_locally(
        self, customer: Customer, key: str | None, fingerprint: str | None
    ) -> Customer:
        """Commit the customer and its event; with providers ("log" mode) sync afterwards."""
        task = self._new_task(customer, "create", committed=True, key=None, fingerprint=None)
        for attempt in (1, 2):
            inserting = False
            try:
                async with self._storage.transaction() as tx:
                    if key is not None:
                        replay = await self._replay(tx, key, fingerprint)
                        if replay is not None:
                            return replay
                    inserting = True
                    await tx.insert_customer(
                        customer, idempotency_key=key, request_fingerprint=fingerprint
                    )
                    event = await self._record(
                        tx, "customer.created", customer, customer.created_at
                    )
                    if self._providers is not None:
                        await tx.put_sync_task(task)
                break
            except ConflictError as exc:
                # A concurrent create with the same key committed first: look again, and
                # return its customer if the arguments match.
                if not inserting or exc.code != "idempotency_key_reused" or attempt == 2:
                    raise
        await self._bus.dispatch(event)
        if self._providers is None:
            return customer
        # Committed already: the create is only ever finished, so nothing is undone on failure
        # (undoing and re-creating would reuse the create's idempotency key).
        work = self._providers.create_everywhere(customer, guard=self._adoptions, compensate=False)
        return await self._settle_logged(task, work)

    async def _create_at_providers_first(
        self, customer: Customer, key: str | None, fingerprint: str | None
    ) -> Customer:
        assert self._providers is not None
        fresh = self._new_task(
            customer, "create", committed=False, key=key, fingerprint=fingerprint
        )
        task = fresh
        for attempt in (1, 2):
            inserting = False
            try:
                async with self._storage.transaction() as tx:
                    if key is not None:
                        replay = await self._replay(tx, key, fingerprint)
                        if replay is not None:
                            return replay
                        pending = await tx.find_sync_task_by_key(key)
                        if pending is not None:
                            task = await self._resume(tx, pending, fingerprint)
                    if task is fresh:
                        inserting = True
                        await tx.put_sync_task(task)
                break
            except ConflictError as exc:
                if not inserting or exc.code != "idempotency_key_reused" or attempt == 2:
                    raise
        target = task.customer
        self._in_flight.add(target.id)
        try:
            if task is fresh:
                links = await self._providers.create_everywhere(target, guard=self._adoptions)
            else:
                links = await self._providers.find_or_create_everywhere(
                    target, guard=self._adoptions
                )
        except ProviderSyncError as failure:
            # A fresh create undid itself after a clean failure; a resumed one that can never
            # finish (a conflict) is undone here. Anything else is left to sync_pending.
            undone = not failure.ambiguous and (
                task is fresh or (_permanent(failure) and await self._undo_intent(task))
            )
            async with self._storage.transaction() as tx:
                if undone:
                    await tx.delete_sync_task(target.id)  # nothing remains at any provider
                else:
                    await self._release(tx, task, failure)
            raise
        finally:
            self._in_flight.discard(target.id)
        return await self._commit_intent(task, links)

    async def _commit_intent(self, task: SyncTask, links: dict[str, str]) -> Customer:
        """The create an intent stood for, now done at the providers: commit the customer, its
        links and its event, and drop the intent, in one transaction."""
        created = task.customer.model_copy(update={"provider_customer_ids": links})
        async with self._storage.transaction() as tx:
            await tx.insert_customer(
                created,
                idempotency_key=task.idempotency_key,
                request_fingerprint=task.request_fingerprint,
            )
            event = await self._record(tx, "customer.created", created, created.created_at)
            await tx.delete_sync_task(task.customer_id)
        await self._bus.dispatch(event)
        return created

    async def _replay(self, tx: Transaction, key: str, fingerprint: str | None) -> Customer | None:
        earlier = await tx.find_idempotent_create(key)
        if earlier is None:
            return None
        if earlier.request_fingerprint != fingerprint:
            raise ConflictError(
                "this idempotency key was already used with different arguments",
                code="idempotency_key_reused",
            )
        return earlier.customer

    async def _resume(self, tx: Transaction, task: SyncTask, fingerprint: str | None) -> SyncTask:
        """Take over the unfinished create a caller is retrying with the same key."""
        if task.request_fingerprint != fingerprint:
            raise ConflictError(
                "this idempotency key was already used with different arguments",
                code="idempotency_key_reused",
            )
        if task.lease_until > utcnow() and task.lease_owner not in self._stale_owners([task]):
            raise ConflictError(
                "a create with this idempotency key is still in progress; retry shortly",
                code="operation_in_progress",
            )
        claimed = replace(task, lease_owner=self._owner, lease_until=utcnow() + LEASE)
        await tx.put_sync_task(claimed)
        return claimed

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
            size = v.Problems()
            v.check_metadata_size(merged, size, limit=self._metadata_limit)
            size.raise_if_any()
            return {**changes, "metadata": merged}

        return await self._modify(customer_id, change, provider_visible=True)

    async def delete(self, customer_id: str) -> None:
        """Soft delete: the record stays, with ``deleted_at`` set. Deleting twice is a no-op.

        With providers, the provider customers are deleted too. A provider deletion cannot be
        undone, so a delete that failed part-way is finished forward by ``sync_pending``.
        """
        v.check_id(customer_id)
        if self._providers is not None and self._sync_errors == "raise":
            before = await self._storage.get_customer(customer_id)
            if before is None:
                raise NotFoundError(f"no customer {customer_id!r}")
            if before.deleted_at is not None:
                return
            try:
                await self._providers.delete_everywhere(before)
            except ProviderSyncError as failure:
                if failure.ambiguous:
                    async with self._storage.transaction() as tx:
                        task = self._new_task(before, "delete", committed=True)
                        await tx.put_sync_task(self._released(task, failure))
                raise
        queued: SyncTask | None = None
        async with self._storage.transaction() as tx:
            before = await self._load(tx, customer_id)
            if before.deleted_at is not None:
                return
            now = max(utcnow(), before.updated_at)
            after = before.model_copy(update={"deleted_at": now, "updated_at": now})
            await tx.update_customer(before, after)
            event = await self._record(tx, "customer.deleted", after, now)
            if self._providers is not None:
                if self._sync_errors == "log":
                    queued = await self._queue(tx, after, "delete")
                else:
                    await tx.delete_sync_task(customer_id)
        await self._bus.dispatch(event)
        if queued is not None and self._providers is not None:
            await self._settle_logged(queued, self._providers.delete_everywhere(after))

    async def link(self, customer_id: str, *, provider: str, provider_customer_id: str) -> Customer:
        """Record that ``provider`` knows this customer as ``provider_customer_id``.

        For importing customers that already exist at a provider; nothing is sent to it. A
        provider id linked to another customer, or a second id for the same provider, is a
        ConflictError.
        """
        v.check_id(customer_id)
        problems = v.Problems()
        provider_ = v.check_provider(provider, problems)
        if not isinstance(provider_customer_id, str) or not 0 < len(provider_customer_id) <= 255:
            problems.add(
                "provider_customer_id", "invalid_id", "must be a non-empty string of at most 255"
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

        return await self._modify(customer_id, change, provider_visible=False)

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

        return await self._modify(customer_id, change, provider_visible=False)

    async def _modify(
        self, customer_id: str, change: Change, *, provider_visible: bool
    ) -> Customer:
        """Apply ``change(before) -> fields`` to a live customer, with its event, atomically."""
        push_first = provider_visible and self._providers is not None
        push_first = push_first and self._sync_errors == "raise"
        for _ in range(5):
            pushed: Customer | None = None
            if push_first:
                assert self._providers is not None
                before = await self._storage.get_customer(customer_id)
                after = await self._apply(before, customer_id, change)
                if after is None:
                    assert before is not None
                    return before
                assert before is not None
                try:
                    await self._providers.update_everywhere(before, after)
                except ProviderSyncError as failure:
                    if failure.ambiguous:  # a provider may hold the new values: re-align them
                        await self._queue_after_failure(customer_id, failure)
                    raise
                pushed = before
            task = None
            async with self._storage.transaction() as tx:
                before = await self._load(tx, customer_id)
                if pushed is not None and before.updated_at != pushed.updated_at:
                    continue  # changed meanwhile: recompute and push again from the new state
                after = await self._apply(before, customer_id, change)
                if after is None:
                    return before
                now = max(utcnow(), before.updated_at)
                after = after.model_copy(update={"updated_at": now})
                await tx.update_customer(before, after)
                previous = before.changed_fields(after)
                event = await self._record(tx, "customer.updated", after, now, previous)
                if provider_visible and self._providers is not None and not push_first:
                    task = await self._queue(tx, after, "push")
            await self._bus.dispatch(event)
            if task is not None and self._providers is not None:
                work = self._providers.push_everywhere(after, guard=self._adoptions)
                return await self._settle_logged(task, work)
            return after
        raise ConflictError(
            f"customer {customer_id} kept changing while it was being updated; retry",
            code="concurrent_update",
        )

    @staticmethod
    async def _apply(before: Customer | None, customer_id: str, change: Change) -> Customer | None:
        """The changed record, or None when the change changes nothing."""
        if before is None:
            raise NotFoundError(f"no customer {customer_id!r}")
        if before.deleted_at is not None:
            raise ConflictError(
                f"customer {customer_id} is deleted and cannot be changed",
                code="customer_deleted",
            )
        after = before.model_copy(update=await change(before))
        return after if before.changed_fields(after) else None

    # -- provider sync bookkeeping -------------------------------------------------------
    def _new_task(
        self,
        customer: Customer,
        operation: SyncOperation,
        *,
        committed: bool,
        key: str | None = None,
        fingerprint: str | None = None,
    ) -> SyncTask:
        now = utcnow()
        return SyncTask(
            customer_id=customer.id,
            operation=operation,
            customer=customer,
            committed=committed,
            idempotency_key=key,
            request_fingerprint=fingerprint,
            lease_owner=self._owner,
            lease_until=now + LEASE,
            attempts=0,
            last_error=None,
            created_at=now,
        )

    async def _queue(
        self,
        tx: Transaction,
        customer: Customer,
        operation: SyncOperation,
        *,
        failed: BaseException | None = None,
    ) -> SyncTask:
        """Record provider work for a committed change, merged with any already pending;
        with ``failed``, as work that was just tried and failed (its lease given up)."""
        pending = await tx.get_sync_task(customer.id)
        merged = _merge_operations(None if pending is None else pending.operation, operation)
        task = self._new_task(customer, merged, committed=True)
        if pending is not None:
            task = replace(task, created_at=pending.created_at, attempts=pending.attempts)
        if failed is not None:
            task = self._released(task, failed)
        await tx.put_sync_task(task)  # once: a backend may batch the writes of a transaction
        return task

    def _released(self, task: SyncTask, failure: BaseException) -> SyncTask:
        """The task with its lease given up at once, so a retry or sync_pending can go on."""
        return replace(
            task,
            lease_owner=None,
            lease_until=utcnow(),
            attempts=task.attempts + 1,
            last_error=str(failure)[:1000],
        )

    async def _release(self, tx: Transaction, task: SyncTask, failure: BaseException) -> None:
        """Give up the lease of a task whose work failed, keeping what was stored meanwhile
        (adoption notes, a newer queued change)."""
        current = await tx.get_sync_task(task.customer_id)
        await tx.put_sync_task(self._released(current or task, failure))

    async def _queue_after_failure(self, customer_id: str, failure: ProviderSyncError) -> None:
        """Leave a push task for a live customer whose provider copies may now differ from it."""
        async with self._storage.transaction() as tx:
            current = await tx.get_customer(customer_id)
            if current is None or current.deleted_at is not None:
                return
            await self._queue(tx, current, "push", failed=failure)

    async def _undo_intent(self, task: SyncTask) -> bool:
        """Undo, at every provider, an unfinished create that can never finish; False if that
        failed (the intent then stays for sync_pending)."""
        assert self._providers is not None
        async with self._storage.transaction() as tx:
            current = await tx.get_sync_task(task.customer_id)
        try:
            await self._providers.remove_everywhere((current or task).customer)
        except ProviderSyncError as failure:
            logger.warning("could not undo the create of %s: %s", task.customer_id, failure)
            return False
        return True

    async def _settle_logged(self, task: SyncTask, work: Awaitable[Any]) -> Customer:
        """ "log" mode: run the provider work; on success finish the task, else keep it."""
        try:
            result = await work
        except ProviderSyncError as failure:
            logger.warning(
                "provider sync of %s failed (%s); it stays pending for sync_pending",
                task.customer_id,
                failure,
            )
            async with self._storage.transaction() as tx:
                current = await tx.get_sync_task(task.customer_id)
                if current is not None and current.lease_owner == self._owner:
                    await tx.put_sync_task(self._released(current, failure))
            latest = await self._storage.get_customer(task.customer_id)
            assert latest is not None
            return latest
        links = result if isinstance(result, dict) else None
        return await self._finish(task, links)

    async def _finish(self, task: SyncTask, links: dict[str, str] | None) -> Customer:
        """Commit what the providers now have (links) and drop the task if nothing newer
        was queued meanwhile."""
        async with self._storage.transaction() as tx:
            before = await self._load(tx, task.customer_id)
            current = await tx.get_sync_task(task.customer_id)
            if current is not None and current.customer.updated_at <= task.customer.updated_at:
                await tx.delete_sync_task(task.customer_id)
            if links is None or links == before.provider_customer_ids:
                return before
            now = max(utcnow(), before.updated_at)
            after = before.model_copy(
                update={
                    "provider_customer_ids": {**before.provider_customer_ids, **links},
                    "updated_at": now,
                }
            )
            await tx.update_customer(before, after)
            event = await self._record(
                tx, "customer.updated", after, now, before.changed_fields(after)
            )
        await self._bus.dispatch(event)
        return after

    def _stale_owners(self, tasks: builtins.list[SyncTask]) -> frozenset[str]:
        """Owners whose leases need not be waited for: this process when idle, and processes
        on this host that no longer run."""
        host = socket.gethostname()
        stale: set[str] = set()
        for task in tasks:
            owner = task.lease_owner
            if owner is None or owner in stale:
                continue
            if owner == self._owner:
                if task.customer_id not in self._in_flight:
                    stale.add(owner)
                continue
            parts = owner.rsplit(":", 2)
            same_host = len(parts) == 3 and parts[0] == host and parts[1].isdigit()
            if same_host and not _pid_alive(int(parts[1])):
                stale.add(owner)
        return frozenset(stale)

    async def sync_pending(self, *, limit: int = 100) -> SyncReport:
        """Finish or undo provider work left pending by failures, crashes or "log" mode.

        An unfinished create is finished (created or adopted at the providers, then committed)
        when its caller gave an idempotency key or in "log" mode, and undone otherwise (the
        caller was told it failed). Safe to run from several processes at once: each task is
        worked on only by the holder of its lease.
        """
        if self._providers is None:
            return SyncReport(completed=0, failed=0, remaining=0)
        pending = await self._storage.list_sync_tasks(limit=1000)
        async with self._storage.transaction() as tx:
            claimed = await tx.claim_sync_tasks(
                owner=self._owner,
                now=utcnow(),
                lease_until=utcnow() + LEASE,
                stale_owners=self._stale_owners(pending),
                limit=limit,
            )
        completed = failed = 0
        for task in claimed:
            self._in_flight.add(task.customer_id)
            try:
                await self._settle(task)
                completed += 1
            except ProviderSyncError as failure:
                failed += 1
                logger.warning("sync of %s failed again: %s", task.customer_id, failure)
                async with self._storage.transaction() as tx:
                    await self._release(tx, task, failure)
            finally:
                self._in_flight.discard(task.customer_id)
        remaining = await self._storage.count_sync_tasks()
        return SyncReport(completed=completed, failed=failed, remaining=remaining)

    async def _settle(self, task: SyncTask) -> None:
        providers = self._providers
        assert providers is not None
        if not task.committed:
            if task.idempotency_key is not None or self._sync_errors == "log":
                try:
                    links = await providers.find_or_create_everywhere(
                        task.customer, guard=self._adoptions
                    )
                except ProviderSyncError as failure:
                    if failure.ambiguous or not _permanent(failure):
                        raise
                    if not await self._undo_intent(task):
                        raise
                    logger.warning("create of %s undone: %s", task.customer_id, failure)
                    async with self._storage.transaction() as tx:
                        await tx.delete_sync_task(task.customer_id)
                    return
                await self._commit_intent(task, links)
            else:
                await providers.remove_everywhere(task.customer)
                async with self._storage.transaction() as tx:
                    await tx.delete_sync_task(task.customer_id)
            return
        local = await self._storage.get_customer(task.customer_id)
        if local is None:  # pragma: no cover - committed tasks belong to stored customers
            async with self._storage.transaction() as tx:
                await tx.delete_sync_task(task.customer_id)
            return
        if task.operation == "delete" or local.deleted_at is not None:
            await providers.delete_everywhere(local)
            if local.deleted_at is None:
                await self._delete_locally(local.id)
            await self._finish(task, None)
        elif task.operation == "create":
            links = await providers.find_or_create_everywhere(local, guard=self._adoptions)
            await self._finish(task, links)
        else:
            await self._finish(task, await providers.push_everywhere(local, guard=self._adoptions))

    async def _delete_locally(self, customer_id: str) -> None:
        async with self._storage.transaction() as tx:
            before = await self._load(tx, customer_id)
            if before.deleted_at is not None:
                return
            now = max(utcnow(), before.updated_at)
            after = before.model_copy(update={"deleted_at": now, "updated_at": now})
            await tx.update_customer(before, after)
            event = await self._record(tx, "customer.deleted", after, now)
        await self._bus.dispatch(event)

    async def reconcile(
        self, provider: str, *, fix: bool = False, on_progress: Callable[[int], None] | None = None
    ) -> ReconcileReport:
        """Compare qzpay's customers with ``provider``'s; with ``fix``, repair what is safe
        (see qzpay.customers.reconcile). ``on_progress(n)`` is called per local customer."""
        source = None
        if self._providers is not None:
            source = next((p for p in self._providers.providers if p.name == provider), None)
        if source is None:
            v.fail("provider", "unknown_provider", f"no provider named {provider!r} is configured")
        assert self._providers is not None
        providers = self._providers

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
        others = self._providers is not None and len(self._providers.providers) > 1
        task: SyncTask | None = None
        async with self._storage.transaction() as tx:
            if webhook_event_id is not None and not await tx.record_webhook_event(
                provider.name, webhook_event_id, utcnow()
            ):
                return None
            before = await self._load(tx, customer_id)
            if before.deleted_at is not None:
                return before
            if await tx.get_sync_task(customer_id) is not None:
                # Local changes are on their way to the providers; local is the source of truth.
                return before
            now = max(utcnow(), before.updated_at)
            if remote is None:
                after = before.model_copy(update={"deleted_at": now, "updated_at": now})
                await tx.update_customer(before, after)
                event = await self._record(tx, "customer.deleted", after, now)
            else:
                after = provider.merge_remote(before, remote)
                previous = before.changed_fields(after)
                if not previous:
                    return before
                after = after.model_copy(update={"updated_at": now})
                await tx.update_customer(before, after)
                event = await self._record(tx, "customer.updated", after, now, previous)
            if others:
                task = await self._queue(tx, after, "delete" if remote is None else "push")
        await self._bus.dispatch(event)
        if task is not None and self._providers is not None:
            work: Awaitable[Any]
            if remote is None:
                work = self._providers.delete_everywhere(after)
            else:
                work = self._providers.push_everywhere(after, guard=self._adoptions)
            await self._settle_logged(task, work)
        return after

    async def record_webhook(self, provider: str, event_id: str) -> bool:
        """Remember a delivery that changes no customer; False if it was seen before."""
        async with self._storage.transaction() as tx:
            return await tx.record_webhook_event(provider, event_id, utcnow())

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
        now: datetime,
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
        /,
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
    elif isinstance(email, str):
        v.check_text(email, problems, "email")
    if not isinstance(include_deleted, bool):
        problems.add("include_deleted", "invalid_type", "must be True or False")
    return CustomerFilter(
        email=email if isinstance(email, str) else None,
        metadata={} if metadata is None else v.check_new_metadata(metadata, problems),
        include_deleted=include_deleted is True,
    )
