"""``sync_pending``: finish or undo provider work left pending by failures, crashes or "log"
mode. Safe to run from several processes at once: each task is worked on only by the holder of
its lease (claimed here, released on failure)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic

from qzpay._time import utcnow
from qzpay.engine.core import Engine
from qzpay.engine.resource import R, Remote
from qzpay.engine.tasks import TaskBook
from qzpay.engine.unit_of_work import Units
from qzpay.errors import ConflictError, ProviderSyncError
from qzpay.limits import DEFAULT_SYNC_BATCH, MAX_SYNC_BATCH
from qzpay.storage.base import SyncTask, TaskClaim

logger = logging.getLogger("qzpay.sync")


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one ``sync_pending`` pass did."""

    completed: int
    failed: int
    remaining: int


def permanent(failure: ProviderSyncError) -> bool:
    """A failure no retry can cure: the provider holds a conflicting record."""
    return isinstance(failure, ConflictError)


async def undo_intent(engine: Engine[R], remote: Remote[R], task: SyncTask) -> bool:
    """Undo, at every provider, an unfinished create that can never finish; False if that
    failed (the intent then stays for sync_pending)."""
    async with engine.unit() as work:
        current = await work.tx.get_sync_task(engine.tasks.key(task))
    try:
        await remote.remove(engine.tasks.record(current or task))
    except ProviderSyncError as failure:
        logger.warning("could not undo the create of %s: %s", engine.tasks.key(task), failure)
        return False
    return True


async def run_claimed(
    units: Units,
    tasks: TaskBook[R],
    resource: str,
    limit: int,
    settle: Callable[[SyncTask], Awaitable[None]],
) -> SyncReport:
    """One ``sync_pending`` pass of ``resource``: claim up to ``limit`` of its tasks (their
    lease ended, or their owner is gone), ``settle`` each under its lease, and give back the
    lease of each that fails again (ProviderSyncError) for a later pass."""
    storage = units.storage
    pending = await storage.list_sync_tasks(limit=MAX_SYNC_BATCH)
    async with units() as work:
        claimed = await work.tx.claim_sync_tasks(
            TaskClaim(
                owner=tasks.leases.owner,
                now=utcnow(),
                lease_until=tasks.leases.until(),
                stale_owners=tasks.stale_owners(pending),
                limit=limit,
                resource=resource,
            )
        )
    completed = failed = 0
    for task in claimed:
        with tasks.leases.working_on(tasks.key(task)):
            try:
                await settle(task)
                completed += 1
            except ProviderSyncError as failure:
                failed += 1
                logger.warning("sync of %s failed again: %s", tasks.key(task), failure)
                async with units() as work:
                    await tasks.release(work.tx, task, failure)
    remaining = await storage.count_sync_tasks()
    return SyncReport(completed=completed, failed=failed, remaining=remaining)


class Pending(Generic[R]):
    """The sync_pending runner of one resource.

    An unfinished create is finished (created or adopted at the providers, then committed)
    when its caller gave an idempotency key or when ``finish_unkeyed`` ("log" mode, where the
    caller was told it succeeded), and undone otherwise (the caller was told it failed).
    """

    def __init__(self, engine: Engine[R], remote: Remote[R], *, finish_unkeyed: bool) -> None:
        self._engine = engine
        self._remote = remote
        self._finish_unkeyed = finish_unkeyed

    async def run(self, limit: int = DEFAULT_SYNC_BATCH) -> SyncReport:
        engine = self._engine
        return await run_claimed(
            engine.unit, engine.tasks, engine.resource.name, limit, self.settle
        )

    async def settle(self, task: SyncTask) -> None:
        """Do the work of one claimed task (raising ProviderSyncError if it fails again)."""
        engine, remote = self._engine, self._remote
        if not task.committed:
            await self._settle_intent(task)
            return
        local = await engine.resource.get_committed(engine.storage, engine.tasks.key(task))
        if local is None:  # pragma: no cover - committed tasks belong to stored records
            await engine.drop_task(task)
            return
        if task.operation == "delete" or local.deleted_at is not None:
            await remote.delete(local)
            if local.deleted_at is None:
                await engine.delete_locally(local.id)
            await engine.finish(task, None)
        elif task.operation == "create":
            await engine.finish(task, await remote.finish_create(local))
        else:
            await engine.finish(task, await remote.push(local))

    async def _settle_intent(self, task: SyncTask) -> None:
        engine, remote = self._engine, self._remote
        record = engine.tasks.record(task)
        if task.idempotency_key is None and not self._finish_unkeyed:
            await remote.remove(record)
            await engine.drop_task(task)
            return
        try:
            links = await remote.finish_create(record)
        except ProviderSyncError as failure:
            if failure.ambiguous or not permanent(failure):
                raise
            if not await undo_intent(engine, remote, task):
                raise
            logger.warning("create of %s undone: %s", record.id, failure)
            await engine.drop_task(task)
            return
        await engine.commit_intent(task, links)
