"""Leases, the task book and idempotent-create races, on their own."""

from __future__ import annotations

import socket

import pytest

from qzpay.customers.models import Customer
from qzpay.engine.core import Engine
from qzpay.engine.intents import Attempt, fingerprint, racing
from qzpay.engine.leases import Leases
from qzpay.engine.tasks import merge_operations
from qzpay.errors import ConflictError
from tests.engine.conftest import new_customer


def test_stale_owners() -> None:
    leases = Leases()
    dead = f"{socket.gethostname()}:999999:deadbeef"  # no such pid
    elsewhere = "another-host:1:cafe"
    with leases.working_on("cus_busy"):
        stale = leases.stale_owners(
            [(leases.owner, "cus_busy"), (dead, "cus_a"), (elsewhere, "cus_b"), (None, "cus_c")]
        )
        assert stale == frozenset({dead})
    assert leases.stale_owners([(leases.owner, "cus_busy")]) == frozenset({leases.owner})


def test_a_create_absorbs_pushes_and_a_delete_wins() -> None:
    assert merge_operations(None, "push") == "push"
    assert merge_operations("create", "push") == "create"
    assert merge_operations("push", "push") == "push"
    assert merge_operations("create", "delete") == "delete"


def test_fingerprint_ignores_argument_order() -> None:
    assert fingerprint(a=1, b={"x": "é"}) == fingerprint(b={"x": "é"}, a=1)
    assert fingerprint(a=1) != fingerprint(a=2)


async def test_a_race_on_a_key_is_retried_once_and_only_after_inserting() -> None:
    attempts: list[bool] = []

    async def lose(state: Attempt) -> str:
        state.inserting = len(attempts) == 0
        attempts.append(state.inserting)
        raise ConflictError("taken", code="idempotency_key_reused")

    with pytest.raises(ConflictError):
        await racing(lose)
    assert attempts == [True, False]  # the retry replayed (here: refused) instead

    async def refused(state: Attempt) -> str:
        attempts.append(state.inserting)
        raise ConflictError("other arguments", code="idempotency_key_reused")

    attempts.clear()
    with pytest.raises(ConflictError):
        await racing(refused)
    assert attempts == [False]  # not inserting: no retry


async def test_the_task_book_keeps_newer_work(engine: Engine[Customer]) -> None:
    record = await engine.insert_new(new_customer(), None, None, None)
    tasks = engine.tasks
    async with engine.unit() as work:
        first = await tasks.queue(work.tx, record, "push")
    newer = record.model_copy(update={"name": "Newer", "updated_at": record.updated_at})
    newer = newer.model_copy(update={"updated_at": newer.updated_at.replace(year=2999)})
    async with engine.unit() as work:
        await tasks.queue(work.tx, newer, "delete")
    async with engine.unit() as work:
        await tasks.drop_unless_newer(work.tx, first)  # a newer change is queued: kept
    [kept] = await engine.storage.list_sync_tasks(limit=10)
    assert (kept.operation, tasks.record(kept).name) == ("delete", "Newer")
    async with engine.unit() as work:
        await tasks.release(work.tx, kept, RuntimeError("down"))
    [released] = await engine.storage.list_sync_tasks(limit=10)
    assert (released.lease_owner, released.attempts, released.last_error) == (None, 1, "down")
