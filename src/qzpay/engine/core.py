"""The local half of every flow: record changes committed with their events and tasks.

:class:`Engine` holds what the strategies share (the resource description, units of work, the
task book and the leases) and the steps they are built from. Nothing here calls a provider.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from typing import Any, Generic, cast

from pydantic import BaseModel

from qzpay._time import utcnow
from qzpay.engine.intents import Attempt, racing, replay
from qzpay.engine.leases import Leases
from qzpay.engine.resource import Change, R, Resource
from qzpay.engine.tasks import TaskBook
from qzpay.engine.unit_of_work import UnitOfWork, Units, retrying
from qzpay.errors import ConflictError, NotFoundError, ProviderSyncError
from qzpay.events import EventBus
from qzpay.storage.base import Storage, SyncTask, Transaction

logger = logging.getLogger("qzpay.sync")

_new = object.__new__
_set = object.__setattr__


def copy_with(record: R, changes: Mapping[str, Any]) -> R:
    """``record.model_copy(update=changes)``, at about half its cost, for a pydantic model
    without extra or private attributes (every record so far): the same shallow copy of its
    fields, ``changes`` applied unvalidated and added to its fields set. Any other record
    copies itself."""
    if (
        not isinstance(record, BaseModel)
        or record.__pydantic_extra__ is not None
        or record.__pydantic_private__ is not None
        or record.model_config.get("extra") == "allow"
    ):
        return record.model_copy(update=changes)
    fields = record.__dict__.copy()
    fields.update(changes)
    fields_set = record.__pydantic_fields_set__.copy()
    fields_set.update(changes)
    copied = _new(type(record))
    _set(copied, "__dict__", fields)
    _set(copied, "__pydantic_extra__", None)
    _set(copied, "__pydantic_fields_set__", fields_set)
    _set(copied, "__pydantic_private__", None)
    return cast(R, copied)


class Engine(Generic[R]):
    def __init__(
        self,
        resource: Resource[R],
        storage: Storage,
        bus: EventBus,
        leases: Leases | None = None,
    ) -> None:
        self.resource = resource
        self.storage = storage
        self.unit = Units(storage, bus)
        self.tasks = TaskBook(resource, leases or Leases())

    # -- reading for change -------------------------------------------------------------------
    def not_found(self, record_id: str) -> NotFoundError:
        return NotFoundError(f"no {self.resource.name} {record_id!r}")

    async def load(self, tx: Transaction, record_id: str) -> R:
        record = await self.resource.get(tx, record_id)
        if record is None:
            raise self.not_found(record_id)
        return record

    async def changed(self, before: R | None, record_id: str, change: Change[R]) -> R | None:
        """The changed record, or None when the change changes nothing."""
        live = self._live(before, record_id)
        after = copy_with(live, await change(live))
        return after if live.changed_fields(after) else None

    def _live(self, before: R | None, record_id: str) -> R:
        """``before``, if it exists and is not deleted (NotFoundError, ConflictError)."""
        if before is None:
            raise self.not_found(record_id)
        if before.deleted_at is not None:
            name = self.resource.name
            raise ConflictError(
                f"{name} {record_id} is deleted and cannot be changed", code=f"{name}_deleted"
            )
        return before

    # -- local writes -------------------------------------------------------------------------
    async def insert_new(
        self, record: R, key: str | None, fingerprint: str | None, task: SyncTask | None
    ) -> R:
        """Commit a new record and its event (and ``task``); with ``key``, a retry returns the
        record the first call made."""

        async def attempt(state: Attempt) -> R | None:
            async with self.unit() as work:
                if key is not None:
                    earlier = await replay(self.resource, work.tx, key, fingerprint)
                    if earlier is not None:
                        return earlier
                state.inserting = True
                await self.resource.insert(
                    work.tx, record, idempotency_key=key, fingerprint=fingerprint
                )
                await work.emit(self.resource.created, record)
                if task is not None:
                    await work.tx.put_sync_task(task)
            return None

        earlier = await racing(attempt)
        return record if earlier is None else earlier

    async def change_locally(
        self,
        record_id: str,
        change: Change[R],
        *,
        pushed: R | None = None,
        queue: bool = False,
    ) -> tuple[R, SyncTask | None] | None:
        """Apply ``change`` to a live record with its event (and, with ``queue``, a push task),
        atomically: the stored record, and the task. None if the record is no longer the
        version ``pushed`` (already sent to the providers)."""

        async def block(work: UnitOfWork) -> tuple[R, SyncTask | None] | None:
            before = await self.resource.get(work.tx, record_id)  # ``load``, one frame fewer
            if before is None:
                raise self.not_found(record_id)
            if pushed is not None and before.updated_at != pushed.updated_at:
                return None
            changes = await change(self._live(before, record_id))
            # One copy, stamped at once: changed_fields ignores the timestamps (bookkeeping),
            # so this is ``changed`` followed by the stamp, with its fields compared once.
            now = max(utcnow(), before.updated_at)
            after = copy_with(before, {**changes, "updated_at": now})
            previous = before.changed_fields(after)
            if not previous:
                return before, None
            await self.resource.update(work.tx, before, after)
            await work.emit(self.resource.update_event(before, after), after, previous)
            task = await self.tasks.queue(work.tx, after, "push") if queue else None
            return after, task

        return await retrying(self.unit, block)

    async def delete_locally(
        self, record_id: str, *, queue: bool = False, drop: bool = False
    ) -> tuple[R, SyncTask | None] | None:
        """Soft-delete a record with its event, queueing a delete task (``queue``) or dropping
        the record's task (``drop``); None if it was deleted already."""

        async def block(work: UnitOfWork) -> tuple[R, SyncTask | None] | None:
            before = await self.resource.get(work.tx, record_id)  # ``load``, one frame fewer
            if before is None:
                raise self.not_found(record_id)
            if before.deleted_at is not None:
                return None
            now = max(utcnow(), before.updated_at)
            after = copy_with(before, {"deleted_at": now, "updated_at": now})
            await self.resource.update(work.tx, before, after)
            await work.emit(self.resource.deleted, after)
            task = None
            if queue:
                task = await self.tasks.queue(work.tx, after, "delete")
            elif drop:
                await self.tasks.drop(work.tx, record_id)
            return after, task

        return await retrying(self.unit, block)

    async def commit_intent(self, task: SyncTask, links: Mapping[str, str]) -> R:
        """The create an intent stood for, now done at the providers: commit the record, its
        links and its event, and drop the intent, in one transaction."""
        created = self.resource.with_links(self.tasks.record(task), links)
        async with self.unit() as work:
            await self.resource.insert(
                work.tx,
                created,
                idempotency_key=task.idempotency_key,
                fingerprint=task.request_fingerprint,
            )
            await work.emit(self.resource.created, created)
            await self.tasks.drop(work.tx, created.id)
        return created

    async def finish(self, task: SyncTask, links: Mapping[str, str] | None) -> R:
        """Commit what the providers now have (links) and drop the task if nothing newer
        was queued meanwhile."""
        resource = self.resource
        async with self.unit() as work:
            before = await self.load(work.tx, self.tasks.key(task))
            await self.tasks.drop_unless_newer(work.tx, task)
            if links is None or links == resource.links(before):
                return before
            now = max(utcnow(), before.updated_at)
            linked = resource.with_links(before, {**resource.links(before), **links})
            after = copy_with(linked, {"updated_at": now})
            await resource.update(work.tx, before, after)
            await work.emit(
                resource.update_event(before, after), after, before.changed_fields(after)
            )
        return after

    async def settle_logged(self, task: SyncTask, work: Awaitable[Mapping[str, str] | None]) -> R:
        """Run the provider work of a committed change; on success finish the task, else log
        and keep it (released) for sync_pending. The stored record."""
        try:
            links = await work
        except ProviderSyncError as failure:
            record_id = self.tasks.key(task)
            logger.warning(
                "provider sync of %s failed (%s); it stays pending for sync_pending",
                record_id,
                failure,
            )
            async with self.unit() as unit:
                await self.tasks.give_up(unit.tx, task, failure)
            latest = await self.resource.get_committed(self.storage, record_id)
            assert latest is not None
            return latest
        return await self.finish(task, links)

    async def queue_after_failure(self, record_id: str, failure: ProviderSyncError) -> None:
        """Leave a push task for a live record whose provider copies may now differ from it."""
        async with self.unit() as work:
            current = await self.resource.get(work.tx, record_id)
            if current is None or current.deleted_at is not None:
                return
            await self.tasks.queue(work.tx, current, "push", failed=failure)

    async def record_failure(self, task: SyncTask, failure: BaseException) -> None:
        """Store a task for work that failed part-way, its lease given up."""
        async with self.unit() as work:
            await work.tx.put_sync_task(self.tasks.released(task, failure))

    async def release(self, task: SyncTask, failure: BaseException) -> None:
        async with self.unit() as work:
            await self.tasks.release(work.tx, task, failure)

    async def drop_task(self, task: SyncTask) -> None:
        async with self.unit() as work:
            await self.tasks.drop(work.tx, self.tasks.key(task))
