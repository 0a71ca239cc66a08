"""Events: handlers after commit, and the durable log, on every backend."""

from __future__ import annotations

import asyncio
import logging

import pytest

from qzpay import Billing, Event
from qzpay.errors import NotFoundError, ValidationError
from tests.factories import create_customer


class TestHandlers:
    async def test_seed_example_handler(self, billing: Billing) -> None:
        welcomed: list[str] = []

        async def send_welcome_email(address: str) -> None:
            await asyncio.sleep(0)
            welcomed.append(address)

        @billing.on("customer.created")
        async def on_created(event: Event) -> None:
            await send_welcome_email(event.data.email)

        await billing.customers.create(email="user@example.com")
        assert welcomed == ["user@example.com"]  # finished before create returned

    async def test_patterns_and_registration_order(self, billing: Billing) -> None:
        calls: list[str] = []
        billing.on("*", lambda e: calls.append(f"all:{e.type}"))
        billing.on("customer.*", lambda e: calls.append(f"customer:{e.type}"))
        billing.on("customer.updated", lambda e: calls.append(f"updated:{e.type}"))
        customer = await create_customer(billing)
        await billing.customers.update(customer.id, name="New")
        assert calls == [
            "all:customer.created",
            "customer:customer.created",
            "all:customer.updated",
            "customer:customer.updated",
            "updated:customer.updated",
        ]

    async def test_decorator_returns_the_function_and_off_works(self, billing: Billing) -> None:
        calls: list[Event] = []

        def handler(event: Event) -> None:
            calls.append(event)

        decorated = billing.on("customer.created")(handler)
        assert decorated is handler
        await create_customer(billing)
        billing.off("customer.created", handler)
        await create_customer(billing)
        assert len(calls) == 1

    async def test_unsubscribe_function(self, billing: Billing) -> None:
        calls: list[Event] = []
        unsubscribe = billing.on("customer.created", calls.append)
        await create_customer(billing)
        unsubscribe()
        await create_customer(billing)
        assert len(calls) == 1

    async def test_failing_handler_is_logged_and_others_run(
        self, billing: Billing, caplog: pytest.LogCaptureFixture
    ) -> None:
        later: list[Event] = []

        def broken(event: Event) -> None:
            raise RuntimeError("handler bug")

        async def broken_async(event: Event) -> None:
            raise RuntimeError("async handler bug")

        billing.on("customer.created", broken)
        billing.on("customer.created", broken_async)
        billing.on("customer.created", later.append)
        with caplog.at_level(logging.ERROR, logger="qzpay.events"):
            customer = await create_customer(billing)
        assert await billing.customers.get(customer.id) == customer
        assert len(later) == 1
        failures = [r for r in caplog.records if later[0].id in r.getMessage()]
        assert len(failures) == 2

    async def test_previous_holds_old_values_of_changed_fields(self, billing: Billing) -> None:
        customer = await create_customer(
            billing, name="Old", address={"city": "Lima", "country": "PE"}, metadata={"a": "1"}
        )
        events: list[Event] = []
        billing.on("customer.updated", events.append)
        await billing.customers.update(
            customer.id, name="New", address={"city": "Cusco", "country": "PE"}
        )
        (event,) = events
        assert isinstance(event.previous, dict)
        assert event.previous == {
            "name": "Old",
            "address": {
                "line1": None,
                "line2": None,
                "city": "Lima",
                "state": None,
                "postal_code": None,
                "country": "PE",
            },
        }
        assert event.data.name == "New"

    async def test_no_event_for_a_failed_change(self, billing: Billing) -> None:
        calls: list[Event] = []
        billing.on("*", calls.append)
        with pytest.raises(ValidationError):
            await billing.customers.create(email="bad")
        assert calls == []
        assert await billing.events.list() == []

    async def test_unknown_pattern_is_rejected(self, billing: Billing) -> None:
        with pytest.raises(ValidationError):
            billing.on("customer.creatd", lambda e: None)


class TestEventLog:
    async def test_log_matches_what_handlers_saw(self, billing: Billing) -> None:
        seen: list[Event] = []
        billing.on("*", seen.append)
        customer = await create_customer(billing)
        await billing.customers.update(customer.id, metadata={"plan": "pro"})
        await billing.customers.delete(customer.id)
        log = await billing.events.list()
        assert log == seen
        assert [e.type for e in log] == ["customer.created", "customer.updated", "customer.deleted"]
        assert all(e.id.startswith("evt_") for e in log)
        assert await billing.events.get(log[1].id) == log[1]
        assert await billing.events.get("evt_unknown") is None

    async def test_cursor_paging(self, billing: Billing) -> None:
        for _ in range(5):
            await create_customer(billing)
        first = await billing.events.list(limit=2)
        rest = await billing.events.list(after=first[-1].id, limit=10)
        everything = await billing.events.list()
        assert first + rest == everything
        assert len(everything) == 5
        assert await billing.events.list(after=everything[-1].id) == []

    async def test_unknown_cursor(self, billing: Billing) -> None:
        with pytest.raises(NotFoundError):
            await billing.events.list(after="evt_unknown")
