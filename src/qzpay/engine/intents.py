"""Idempotent creates: the request fingerprint, replaying a finished create, resuming an
unfinished one (its intent), and the one retry a race on the same key needs.

A create with an idempotency key returns, when retried, the record the first call made (no
second record, no second event); the same key with other arguments is a ConflictError
(``idempotency_key_reused``), and so is a retry while the first call still holds the intent's
lease (``operation_in_progress``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from qzpay.engine.resource import R, Resource
from qzpay.engine.tasks import TaskBook
from qzpay.engine.unit_of_work import Units
from qzpay.errors import ConflictError
from qzpay.storage.base import SyncTask, Transaction

T = TypeVar("T")


def fingerprint(**fields: object) -> str:
    """A digest of a create request's normalized arguments, to spot a reused idempotency key."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _reused() -> ConflictError:
    return ConflictError(
        "this idempotency key was already used with different arguments",
        code="idempotency_key_reused",
    )


async def replay(
    resource: Resource[R], tx: Transaction, key: str, fingerprint: str | None
) -> R | None:
    """The record an earlier create with ``key`` made, if any (refused if its arguments
    differed)."""
    earlier = await resource.find_created(tx, key)
    if earlier is None:
        return None
    record, earlier_fingerprint = earlier
    if earlier_fingerprint != fingerprint:
        raise _reused()
    return record


async def resume(
    tasks: TaskBook[R], tx: Transaction, task: SyncTask, fingerprint: str | None
) -> SyncTask:
    """Take over the unfinished create a caller is retrying with the same key."""
    if task.request_fingerprint != fingerprint:
        raise _reused()
    if tasks.leases.live(task.lease_owner, task.lease_until, tasks.key(task)):
        raise ConflictError(
            "a create with this idempotency key is still in progress; retry shortly",
            code="operation_in_progress",
        )
    claimed = replace(task, lease_owner=tasks.leases.owner, lease_until=tasks.leases.until())
    await tx.put_sync_task(claimed)
    return claimed


class Attempt:
    """Passed to one attempt of a keyed create: set ``inserting`` just before writing the key."""

    __slots__ = ("inserting",)

    def __init__(self) -> None:
        self.inserting = False


async def racing(attempt: Callable[[Attempt], Awaitable[T]]) -> T:
    """Run one create transaction; if a concurrent create with the same key committed first
    (the insert, or its commit, raised ``idempotency_key_reused``), run it once more, which
    then replays that create (or refuses other arguments)."""
    for last in (False, True):
        state = Attempt()
        try:
            return await attempt(state)
        except ConflictError as exc:
            if not state.inserting or exc.code != "idempotency_key_reused" or last:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def open_intent(
    units: Units,
    tasks: TaskBook[R],
    resource: Resource[R],
    fresh: SyncTask,
    key: str | None,
    fingerprint: str | None,
) -> R | SyncTask:
    """Store ``fresh``, the intent of a create, before any provider is called; for a retry
    with the same ``key``, the record the first call made instead (replayed), or its
    unfinished intent, taken over. The intent to work on, or the replayed record."""

    async def attempt(state: Attempt) -> R | SyncTask:
        task = fresh
        async with units() as work:
            if key is not None:
                earlier = await replay(resource, work.tx, key, fingerprint)
                if earlier is not None:
                    return earlier
                pending = await work.tx.find_sync_task_by_key(key)
                if pending is not None:
                    task = await resume(tasks, work.tx, pending, fingerprint)
            if task is fresh:
                state.inserting = True
                await work.tx.put_sync_task(task)
        return task

    return await racing(attempt)
