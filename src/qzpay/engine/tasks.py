"""The task book: provider work recorded durably (a SyncTask) before it is attempted.

A record has at most one pending task. An uncommitted ``create`` task is the intent of a create
not committed locally yet; committed tasks belong to live records whose provider copies lag.
A SyncTask names its resource and carries the record's snapshot; the resource description
builds and reads those fields (``task_fields``, ``snapshot``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Generic

from qzpay._time import utcnow
from qzpay.engine.leases import LEASE, Leases
from qzpay.engine.resource import R, Resource
from qzpay.storage.base import SyncOperation, SyncTask, Transaction


def merge_operations(old: SyncOperation | None, new: SyncOperation) -> SyncOperation:
    """A record has one pending task: a create absorbs later pushes, a delete wins."""
    if new == "delete" or old is None:
        return new
    return old


class TaskBook(Generic[R]):
    def __init__(self, resource: Resource[R], leases: Leases) -> None:
        self._resource = resource
        self.leases = leases

    @staticmethod
    def key(task: SyncTask) -> str:
        """The id of the record ``task`` is about."""
        return task.record_id

    def record(self, task: SyncTask) -> R:
        return self._resource.snapshot(task)

    def new(
        self,
        record: R,
        operation: SyncOperation,
        *,
        committed: bool,
        key: str | None = None,
        fingerprint: str | None = None,
    ) -> SyncTask:
        """A task leased by this process."""
        now = utcnow()
        return SyncTask(
            **self._resource.task_fields(record),
            operation=operation,
            committed=committed,
            idempotency_key=key,
            request_fingerprint=fingerprint,
            lease_owner=self.leases.owner,
            lease_until=now + LEASE,
            attempts=0,
            last_error=None,
            created_at=now,
        )

    def released(self, task: SyncTask, failure: BaseException) -> SyncTask:
        """The task with its lease given up at once, so a retry or sync_pending can go on."""
        return replace(
            task,
            lease_owner=None,
            lease_until=utcnow(),
            attempts=task.attempts + 1,
            last_error=str(failure)[:1000],
        )

    async def release(self, tx: Transaction, task: SyncTask, failure: BaseException) -> None:
        """Give up the lease of a task whose work failed, keeping what was stored meanwhile
        (adoption notes, a newer queued change)."""
        current = await tx.get_sync_task(self.key(task))
        await tx.put_sync_task(self.released(current or task, failure))

    async def give_up(self, tx: Transaction, task: SyncTask, failure: BaseException) -> None:
        """Release the task after its work failed, if this process still holds it."""
        current = await tx.get_sync_task(self.key(task))
        if current is not None and current.lease_owner == self.leases.owner:
            await tx.put_sync_task(self.released(current, failure))

    async def queue(
        self,
        tx: Transaction,
        record: R,
        operation: SyncOperation,
        *,
        failed: BaseException | None = None,
    ) -> SyncTask:
        """Record provider work for a committed change, merged with any already pending;
        with ``failed``, as work that was just tried and failed (its lease given up)."""
        pending = await tx.get_sync_task(record.id)
        merged = merge_operations(None if pending is None else pending.operation, operation)
        task = self.new(record, merged, committed=True)
        if pending is not None:
            task = replace(task, created_at=pending.created_at, attempts=pending.attempts)
        if failed is not None:
            task = self.released(task, failed)
        await tx.put_sync_task(task)  # once: a backend may batch the writes of a transaction
        return task

    async def drop_unless_newer(self, tx: Transaction, task: SyncTask) -> None:
        """Drop the record's task now that ``task``'s work is done, unless a newer change was
        queued meanwhile (it stays, for its own work)."""
        current = await tx.get_sync_task(self.key(task))
        if current is not None and (
            self.record(current).updated_at <= self.record(task).updated_at
        ):
            await tx.delete_sync_task(self.key(task))

    async def drop(self, tx: Transaction, record_id: str) -> None:
        await tx.delete_sync_task(record_id)

    async def note_links(self, tx: Transaction, record_id: str, links: Mapping[str, str]) -> None:
        """Note provider links on an unfinished create's snapshot (an adoption under way, so
        undoing the create releases what it adopted); nothing for a committed record."""
        task = await tx.get_sync_task(record_id)
        if task is None or task.committed:
            return
        snapshot = self.record(task)
        noted = self._resource.with_links(snapshot, {**self._resource.links(snapshot), **links})
        await tx.put_sync_task(replace(task, **self._resource.task_fields(noted)))

    def stale_owners(self, tasks: Iterable[SyncTask]) -> frozenset[str]:
        return self.leases.stale_owners((task.lease_owner, self.key(task)) for task in tasks)
