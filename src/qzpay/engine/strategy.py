"""The three ways a write meets the providers, chosen once per service (:func:`choose`).

* :class:`NoProviders`: local writes only.
* :class:`ProviderFirst` (``provider_sync_errors="raise"``): a create first records an intent
  (invisible to reads), then creates at the providers, then commits the record, its links and
  its event while dropping the intent. Updates and deletes go to the providers first, then
  commit locally. A provider failure raises ProviderSyncError and leaves the local state as it
  was; whatever it may have left half-done at the providers is recorded as a task.
* :class:`LocalFirst` (``provider_sync_errors="log"``): the local change commits first together
  with a task; the providers are called after; a failure is logged and the task stays for
  ``sync_pending``.

Changes that arrive from one provider (webhooks) are committed locally and, with several
providers, pushed to the others as in "log" mode, whichever strategy is in use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, Literal, TypeAlias

from qzpay._time import utcnow
from qzpay.engine.core import Engine, copy_with
from qzpay.engine.intents import open_intent
from qzpay.engine.pending import Pending, SyncReport, permanent, undo_intent
from qzpay.engine.resource import Change, R, Remote
from qzpay.errors import ConflictError, ProviderSyncError
from qzpay.limits import DEFAULT_SYNC_BATCH
from qzpay.storage.base import SyncTask

SyncErrors: TypeAlias = Literal["raise", "log"]
MAX_PUSH_ROUNDS = 5
"""How often ProviderFirst re-sends an update when the record keeps changing meanwhile."""

Merge: TypeAlias = Callable[[R], R]


class Strategy(ABC, Generic[R]):
    """Create, change, delete and take remote changes for one resource."""

    def __init__(self, engine: Engine[R]) -> None:
        self.engine = engine

    @abstractmethod
    async def create(self, record: R, key: str | None, fingerprint: str | None) -> R:
        """Create ``record`` (a new id); with ``key``, a retry returns the first call's."""

    async def modify(self, record_id: str, change: Change[R], *, remote_visible: bool) -> R:
        """Apply ``change(before) -> fields`` to a live record, with its event, atomically.
        ``remote_visible``: the change concerns the providers' copies (not just links)."""
        done = await self.engine.change_locally(record_id, change)
        assert done is not None
        return done[0]

    async def delete(self, record_id: str) -> None:
        """Soft delete; deleting twice is a no-op."""
        await self.engine.delete_locally(record_id)

    async def apply_remote(
        self, record_id: str, merge: Merge[R] | None, *, source: str, delivery: str | None
    ) -> R | None:
        """Take one provider's copy as the truth (``merge(before) -> after``; None: deleted
        there), locally, with the usual events. With ``delivery`` (a webhook event id) the
        delivery is recorded in the same transaction and a duplicate changes nothing (None).
        A record with a task pending keeps its local values (they are on their way out)."""
        engine, resource = self.engine, self.engine.resource
        others = self._others()
        task: SyncTask | None = None
        async with engine.unit() as work:
            tx = work.tx
            if delivery is not None and not await tx.record_webhook_event(
                source, delivery, utcnow()
            ):
                return None
            before = await engine.load(tx, record_id)
            if before.deleted_at is not None or await tx.get_sync_task(record_id) is not None:
                return before
            now = max(utcnow(), before.updated_at)
            if merge is None:
                after = copy_with(before, {"deleted_at": now, "updated_at": now})
                await resource.update(tx, before, after)
                await work.emit(resource.deleted, after)
            else:
                after = merge(before)
                previous = before.changed_fields(after)
                if not previous:
                    return before
                after = copy_with(after, {"updated_at": now})
                await resource.update(tx, before, after)
                await work.emit(resource.update_event(before, after), after, previous)
            if others is not None:
                task = await engine.tasks.queue(tx, after, "delete" if merge is None else "push")
        if task is not None and others is not None:
            pushing = others.delete(after) if merge is None else others.push(after)
            await engine.settle_logged(task, pushing)
        return after

    def _others(self) -> Remote[R] | None:
        """The providers a change from one of them is pushed on to (None: no others)."""
        return None

    async def sync_pending(self, limit: int = DEFAULT_SYNC_BATCH) -> SyncReport:
        return SyncReport(completed=0, failed=0, remaining=0)


class NoProviders(Strategy[R]):
    async def create(self, record: R, key: str | None, fingerprint: str | None) -> R:
        return await self.engine.insert_new(record, key, fingerprint, None)


class _WithProviders(Strategy[R]):
    def __init__(self, engine: Engine[R], remote: Remote[R], *, finish_unkeyed: bool) -> None:
        super().__init__(engine)
        self.remote = remote
        self._pending = Pending(engine, remote, finish_unkeyed=finish_unkeyed)

    def _others(self) -> Remote[R] | None:
        return self.remote if self.remote.several else None

    async def sync_pending(self, limit: int = DEFAULT_SYNC_BATCH) -> SyncReport:
        return await self._pending.run(limit)


class LocalFirst(_WithProviders[R]):
    def __init__(self, engine: Engine[R], remote: Remote[R]) -> None:
        super().__init__(engine, remote, finish_unkeyed=True)

    async def create(self, record: R, key: str | None, fingerprint: str | None) -> R:
        task = self.engine.tasks.new(record, "create", committed=True)
        created = await self.engine.insert_new(record, key, fingerprint, task)
        if created is not record:
            return created  # replayed
        # Committed already: the create is only ever finished, so nothing is undone on failure
        # (undoing and re-creating would reuse the create's idempotency key).
        return await self.engine.settle_logged(task, self.remote.create(record, compensate=False))

    async def modify(self, record_id: str, change: Change[R], *, remote_visible: bool) -> R:
        done = await self.engine.change_locally(record_id, change, queue=remote_visible)
        assert done is not None
        after, task = done
        if task is None:
            return after
        return await self.engine.settle_logged(task, self.remote.push(after))

    async def delete(self, record_id: str) -> None:
        done = await self.engine.delete_locally(record_id, queue=True)
        if done is not None:
            after, task = done
            assert task is not None
            await self.engine.settle_logged(task, self.remote.delete(after))


class ProviderFirst(_WithProviders[R]):
    def __init__(self, engine: Engine[R], remote: Remote[R]) -> None:
        super().__init__(engine, remote, finish_unkeyed=False)

    async def create(self, record: R, key: str | None, fingerprint: str | None) -> R:
        engine, tasks = self.engine, self.engine.tasks
        fresh = tasks.new(record, "create", committed=False, key=key, fingerprint=fingerprint)
        task = await open_intent(engine.unit, tasks, engine.resource, fresh, key, fingerprint)
        if not isinstance(task, SyncTask):
            return task  # replayed
        target = tasks.record(task)
        with tasks.leases.working_on(target.id):
            try:
                if task is fresh:
                    links = await self.remote.create(target)
                else:
                    links = await self.remote.finish_create(target)
            except ProviderSyncError as failure:
                # A fresh create undid itself after a clean failure; a resumed one that can
                # never finish (a conflict) is undone here. Anything else is left to
                # sync_pending.
                undone = not failure.ambiguous and (
                    task is fresh
                    or (permanent(failure) and await undo_intent(engine, self.remote, task))
                )
                if undone:
                    await engine.drop_task(task)  # nothing remains at any provider
                else:
                    await engine.release(task, failure)
                raise
        return await engine.commit_intent(task, links)

    async def modify(self, record_id: str, change: Change[R], *, remote_visible: bool) -> R:
        if not remote_visible:
            return await super().modify(record_id, change, remote_visible=False)
        engine = self.engine
        for _ in range(MAX_PUSH_ROUNDS):
            before = await engine.resource.get_committed(engine.storage, record_id)
            after = await engine.changed(before, record_id, change)
            assert before is not None
            if after is None:
                return before
            try:
                await self.remote.update(before, after)
            except ProviderSyncError as failure:
                if failure.ambiguous:  # a provider may hold the new values: re-align them
                    await engine.queue_after_failure(record_id, failure)
                raise
            done = await engine.change_locally(record_id, change, pushed=before)
            if done is not None:
                return done[0]
            # Changed meanwhile: recompute and push again from the new state.
        name = engine.resource.name
        raise ConflictError(
            f"{name} {record_id} kept changing while it was being updated; retry",
            code="concurrent_update",
        )

    async def delete(self, record_id: str) -> None:
        engine = self.engine
        before = await engine.resource.get_committed(engine.storage, record_id)
        if before is None:
            raise engine.not_found(record_id)
        if before.deleted_at is not None:
            return
        try:
            await self.remote.delete(before)
        except ProviderSyncError as failure:
            if failure.ambiguous:
                await engine.record_failure(
                    engine.tasks.new(before, "delete", committed=True), failure
                )
            raise
        await engine.delete_locally(record_id, drop=True)


def choose(engine: Engine[R], remote: Remote[R] | None, sync_errors: SyncErrors) -> Strategy[R]:
    """The strategy for a service: made once, so no write branches on the mode."""
    if remote is None:
        return NoProviders(engine)
    if sync_errors == "raise":
        return ProviderFirst(engine, remote)
    return LocalFirst(engine, remote)
