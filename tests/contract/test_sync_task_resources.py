"""Sync tasks of any registered resource (qzpay.records): a task of a resource other than
customers round-trips through every backend with its own model and links field."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from qzpay import records
from qzpay.customers.models import Customer
from qzpay.storage import Storage, migrations, open_storage
from qzpay.storage.base import SyncTask, TaskClaim
from tests.contract.test_sync_task_queries import _task

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class Widget(BaseModel):
    """A tiny record of a resource only these tests know."""

    model_config = ConfigDict(frozen=True)

    id: str
    label: str
    sizes: list[int]
    provider_widget_ids: dict[str, str]
    updated_at: datetime


WIDGETS = records.register("widget", Widget, links_field="provider_widget_ids")


def _widget_task(n: int, links: dict[str, str], **changes: object) -> SyncTask:
    widget = Widget(
        id=f"wid_{n:04d}",
        label=f"wïdget {n}",
        sizes=[n, 2],
        provider_widget_ids=links,
        updated_at=EPOCH,
    )
    task = SyncTask(
        resource="widget",
        record_id=widget.id,
        operation="create",
        record=widget,
        committed=False,
        idempotency_key=f"widget-key-{n}",
        request_fingerprint="fp",
        lease_owner=None,
        lease_until=EPOCH,
        attempts=0,
        last_error=None,
        created_at=EPOCH + timedelta(seconds=n),
    )
    return replace(task, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    opened = open_storage(storage_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_task_of_another_resource_round_trips(storage: Storage) -> None:
    task = _widget_task(1, {"stripe": "wid_s1"})
    async with storage.transaction() as tx:
        await tx.put_sync_task(task)
    async with storage.transaction() as tx:
        stored = await tx.get_sync_task(task.record_id)
        assert stored == task
        assert await tx.find_sync_task_by_key("widget-key-1") == task
    assert stored is not None
    assert isinstance(stored.record, Widget)
    assert stored.links == {"stripe": "wid_s1"}
    assert await storage.list_sync_tasks(limit=10) == [task]
    assert await storage.count_sync_tasks() == 1
    async with storage.transaction() as tx:
        await tx.delete_sync_task(task.record_id)
    assert await storage.count_sync_tasks() == 0


async def test_links_are_looked_up_per_resource(storage: Storage) -> None:
    widget = _widget_task(1, {"stripe": "shared_1"})
    customer = _task(2, {"stripe": "shared_1"})
    async with storage.transaction() as tx:
        await tx.put_sync_task(widget)
        await tx.put_sync_task(customer)
    assert await storage.find_sync_task_by_link("stripe", "shared_1", resource="widget") == widget
    assert await storage.find_sync_task_by_link("stripe", "shared_1") == customer
    assert await storage.find_sync_task_by_link("stripe", "shared_1", resource="customer") == (
        customer
    )
    relinked = replace(
        widget, record=widget.record.model_copy(update={"provider_widget_ids": {}}), attempts=1
    )
    async with storage.transaction() as tx:
        await tx.put_sync_task(relinked)
    assert await storage.find_sync_task_by_link("stripe", "shared_1", resource="widget") is None


async def test_claims_can_be_limited_to_one_resource(storage: Storage) -> None:
    widget, customer = _widget_task(1, {}), _task(2, {})
    async with storage.transaction() as tx:
        await tx.put_sync_task(widget)
        await tx.put_sync_task(customer)
    later = EPOCH + timedelta(days=1)
    until = later + timedelta(hours=1)
    async with storage.transaction() as tx:
        claimed = await tx.claim_sync_tasks(
            TaskClaim("me", later, until, stale_owners=frozenset(), limit=10, resource="customer")
        )
    assert [t.record_id for t in claimed] == [customer.record_id]
    assert isinstance(claimed[0].record, Customer)
    async with storage.transaction() as tx:
        claimed = await tx.claim_sync_tasks(
            TaskClaim("me", later, until, stale_owners=frozenset(), limit=10)
        )
    assert [t.record_id for t in claimed] == [widget.record_id]  # the customer's is leased
    assert claimed[0].lease_owner == "me"


async def test_an_unregistered_resource_is_refused(storage: Storage) -> None:
    task = replace(_widget_task(1, {}), resource="gadget")
    with pytest.raises(ValueError, match="gadget"):
        async with storage.transaction() as tx:
            await tx.put_sync_task(task)
    assert await storage.count_sync_tasks() == 0


def test_a_resource_name_is_registered_once() -> None:
    assert records.register("widget", Widget, links_field="provider_widget_ids") is WIDGETS
    with pytest.raises(ValueError, match="registered already"):
        records.register("widget", Customer, links_field="provider_customer_ids")
    with pytest.raises(ValueError, match="no resource named"):
        records.record_type("gadget")


async def test_sqlite_tasks_stored_before_stay_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite migration 0005: tasks stored before it are customers' and keep their links."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    before = [script for script in migrations.load("sqlite") if script[0] < 5]
    monkeypatch.setattr(migrations, "load", lambda dialect: before)
    storage = open_storage(url)
    try:
        assert await storage.upgrade() == 4
    finally:
        await storage.close()
    monkeypatch.undo()

    customer = _task(1, {"mercadopago": "123-abc"}).record
    assert isinstance(customer, Customer)
    with sqlite3.connect(tmp_path / "old.db") as connection:
        connection.execute(
            "INSERT INTO sync_tasks (customer_id, operation, customer, committed, "
            "idempotency_key, request_fingerprint, lease_owner, lease_until, attempts, "
            "last_error, created_at) VALUES (?, 'create', ?, 0, 'k', 'fp', NULL, 0, 0, NULL, 0)",
            (customer.id, customer.model_dump_json()),
        )
    connection.close()

    storage = open_storage(url)
    try:
        assert await storage.upgrade() == migrations.load("sqlite")[-1][0]
        task = await storage.find_sync_task_by_link("mercadopago", "123-abc")
        assert task is not None
        assert (task.resource, task.record_id, task.record) == ("customer", customer.id, customer)
        assert await storage.find_sync_task_by_link("mercadopago", "123") is None
    finally:
        await storage.close()
