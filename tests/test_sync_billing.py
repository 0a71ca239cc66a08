"""SyncBilling: the blocking surface, from plain code and from several threads."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qzpay import Event, SyncBilling
from qzpay.errors import ConflictError, NotFoundError, ValidationError
from tests.conftest import reset_postgres


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def sync_billing(tmp_path: Path, request: pytest.FixtureRequest):
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sync.db'}"
    else:
        url = "memory://"
    with SyncBilling(storage=url) as billing:
        yield billing
    if request.param == "postgres":
        asyncio.run(reset_postgres(url))


class TestSurface:
    def test_full_walk(self, sync_billing: SyncBilling) -> None:
        events: list[str] = []
        sync_billing.on("customer.*", lambda e: events.append(e.type))
        customer = sync_billing.customers.create(
            email="user@example.com", name="John Doe", metadata={"userId": "usr_123"}
        )
        assert sync_billing.customers.get(customer.id) == customer
        sync_billing.customers.link(customer.id, provider="stripe", provider_customer_id="cus_1")
        assert sync_billing.customers.get_by_external_id("cus_1", provider="stripe") is not None
        page = sync_billing.customers.list(limit=10, offset=0, email="USER@example.com")
        assert [c.id for c in page] == [customer.id]
        updated = sync_billing.customers.update(customer.id, metadata={"plan": "pro"})
        assert updated.metadata == {"userId": "usr_123", "plan": "pro"}
        assert [c.id for c in sync_billing.customers.iterate(page_size=1)] == [customer.id]
        sync_billing.customers.unlink(customer.id, provider="stripe")
        sync_billing.customers.delete(customer.id)
        assert events == ["customer.created"] + ["customer.updated"] * 3 + ["customer.deleted"]
        assert [e.type for e in sync_billing.events.list()] == events
        first = sync_billing.events.list()[0]
        assert sync_billing.events.get(first.id) == first

    def test_errors_are_the_same_types(self, sync_billing: SyncBilling) -> None:
        with pytest.raises(ValidationError):
            sync_billing.customers.create(email="nope")
        with pytest.raises(NotFoundError):
            sync_billing.customers.delete("cus_nope")
        customer = sync_billing.customers.create(email="a@example.com", idempotency_key="k")
        with pytest.raises(ConflictError):
            sync_billing.customers.create(email="b@example.com", idempotency_key="k")
        assert sync_billing.customers.create(email="a@example.com", idempotency_key="k") == customer

    def test_async_handlers_run_to_completion(self, sync_billing: SyncBilling) -> None:
        done: list[str] = []

        async def handler(event: Event) -> None:
            await asyncio.sleep(0.01)
            done.append(event.data.email)

        sync_billing.on("customer.created", handler)
        sync_billing.customers.create(email="x@example.com")
        assert done == ["x@example.com"]

    def test_handler_calling_back_in_raises_instead_of_hanging(
        self, sync_billing: SyncBilling
    ) -> None:
        errors: list[BaseException] = []

        def reentrant(event: Event) -> None:
            try:
                sync_billing.customers.update(event.data.id, name="from handler")
            except RuntimeError as exc:
                errors.append(exc)

        sync_billing.on("customer.created", reentrant)
        customer = sync_billing.customers.create(email="y@example.com")
        assert len(errors) == 1
        assert sync_billing.customers.get(customer.id) == customer

    def test_closed_instance_refuses_calls(self, tmp_path: Path) -> None:
        billing = SyncBilling(storage="memory://")
        billing.close()
        billing.close()  # twice is fine
        with pytest.raises(RuntimeError):
            billing.customers.get("cus_x")


class TestThreads:
    def test_many_threads_no_lost_updates(self, sync_billing: SyncBilling) -> None:
        customer = sync_billing.customers.create(email="shared@example.com")

        def work(n: int) -> str:
            created = sync_billing.customers.create(email=f"t{n}@example.com")
            sync_billing.customers.update(customer.id, metadata={f"k{n}": str(n)})
            assert sync_billing.customers.get(created.id) == created
            return created.id

        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = list(pool.map(work, range(40)))
        assert len(set(ids)) == 40
        final = sync_billing.customers.get(customer.id)
        assert final is not None
        assert final.metadata == {f"k{n}": str(n) for n in range(40)}
        assert sync_billing.customers.list(limit=100).total == 41

    def test_reads_on_other_threads_see_committed_writes(self, sync_billing: SyncBilling) -> None:
        customer = sync_billing.customers.create(email="seen@example.com")

        def read(_: int) -> tuple[str | None, int]:
            fetched = sync_billing.customers.get(customer.id)
            page = sync_billing.customers.list(email="seen@example.com")
            return (fetched.email if fetched else None), page.total

        with ThreadPoolExecutor(max_workers=4) as pool:
            assert set(pool.map(read, range(20))) == {("seen@example.com", 1)}
        sync_billing.customers.update(customer.id, email="moved@example.com")
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert set(pool.map(read, range(8))) == {(("moved@example.com"), 0)}

    def test_usable_without_an_event_loop_in_the_caller(self) -> None:
        result: list[str] = []

        def in_thread() -> None:
            with SyncBilling(storage="memory://") as billing:
                result.append(billing.customers.create(email="z@example.com").email)

        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
        assert result == ["z@example.com"]
