"""The unit of work: events are written with the change, and handlers run after the commit
only, in the order the events were recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from qzpay.customers.models import Customer
from qzpay.engine.core import Engine
from qzpay.events import Event, EventBus
from tests.engine.conftest import new_customer


class Boom(Exception):
    pass


async def test_handlers_run_after_the_commit(engine: Engine[Customer], bus: EventBus) -> None:
    seen: list[tuple[str, bool]] = []

    async def handler(event: Event) -> None:
        stored = await engine.storage.get_customer(event.data.id)  # committed data only
        seen.append((event.type, stored is not None))

    bus.on("*", handler)
    customer = new_customer()
    async with engine.unit() as work:
        await insert(engine, work.tx, customer)
        event = await work.emit("customer.created", customer)
        assert seen == []  # nothing runs inside the transaction
    assert seen == [("customer.created", True)]
    assert event.created_at == customer.updated_at
    assert await engine.storage.get_event(event.id) == event


async def test_a_rollback_runs_no_handler_and_writes_no_event(
    engine: Engine[Customer], bus: EventBus
) -> None:
    seen: list[Event] = []
    bus.on("*", seen.append)
    customer = new_customer()

    async def fail_after_writing() -> None:
        async with engine.unit() as work:
            await insert(engine, work.tx, customer)
            await work.emit("customer.created", customer)
            raise Boom

    with pytest.raises(Boom):
        await fail_after_writing()
    assert seen == []
    assert await engine.storage.get_customer(customer.id) is None
    assert await engine.storage.list_events(after=None, limit=10) == []


async def test_events_are_dispatched_in_the_order_recorded(
    engine: Engine[Customer], bus: EventBus
) -> None:
    calls: list[str] = []
    bus.on("*", lambda e: calls.append(f"first:{e.type}"))
    bus.on("customer.*", lambda e: calls.append(f"second:{e.type}"))
    customer = new_customer()
    renamed = customer.model_copy(update={"name": "Renamed"})
    async with engine.unit() as work:
        await insert(engine, work.tx, customer)
        await work.emit("customer.created", customer)
        await engine.resource.update(work.tx, customer, renamed)
        await work.emit("customer.updated", renamed, {"name": None})
    assert calls == [
        "first:customer.created",
        "second:customer.created",
        "first:customer.updated",
        "second:customer.updated",
    ]
    stored = await engine.storage.list_events(after=None, limit=10)
    assert [e.type for e in stored] == ["customer.created", "customer.updated"]


async def test_an_engine_write_dispatches_once(engine: Engine[Customer], bus: EventBus) -> None:
    seen: list[str] = []
    bus.on("*", lambda e: seen.append(e.type))
    customer = await engine.insert_new(new_customer(), None, None, None)
    await engine.delete_locally(customer.id)
    await engine.delete_locally(customer.id)  # already deleted: no event
    assert seen == ["customer.created", "customer.deleted"]


async def insert(engine: Engine[Customer], tx, customer: Customer) -> None:
    await engine.resource.insert(tx, customer, idempotency_key=None, fingerprint=None)


def test_only_the_unit_of_work_dispatches() -> None:
    package = Path(__file__).resolve().parents[2] / "src" / "qzpay"
    dispatching = sorted(
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if ".dispatch(" in path.read_text()
    )
    assert dispatching == ["engine/unit_of_work.py"]
