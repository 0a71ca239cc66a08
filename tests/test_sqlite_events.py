"""SQLite specifics of reading the event log backward: newest first from the rowid, and of one
type through the events_by_type index (no scan of the log, no sort)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qzpay.events import new_event
from qzpay.ids import event_ids
from qzpay.storage import SQLiteStorage
from qzpay.storage.sqlite.reader import backward_query
from tests.contract.test_subscription_storage import T0, customer
from tests.test_sqlite_subscriptions import plan_of

EVENTS = 3000
# Most of the log is updates; creations are rarer and deletions rarer still.
TYPES = ("customer.updated",) * 17 + ("customer.created",) * 2 + ("customer.deleted",)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    opened = SQLiteStorage(tmp_path / "events.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def filled(storage: SQLiteStorage) -> list[tuple[str, str]]:
    """A log of ``EVENTS`` events of three types; (id, type) of each, oldest first."""
    made: list[tuple[str, str]] = []
    record = customer()
    async with storage.transaction() as tx:
        for n in range(EVENTS):
            event_type = TYPES[n % len(TYPES)]
            event = new_event(event_type, record, id=event_ids.new(), previous=None, created_at=T0)
            await tx.append_event(event)
            made.append((event.id, event_type))
    return made


class TestQueryPlans:
    @pytest.mark.parametrize("analyze", [False, True])
    @pytest.mark.parametrize("event_type", ["customer.updated", "customer.deleted"])
    async def test_a_type_is_read_backward_from_its_index(
        self, storage: SQLiteStorage, filled: list[tuple[str, str]], analyze: bool, event_type: str
    ) -> None:
        newest, params = backward_query(before=None, limit=100, event_type=event_type)
        assert plan_of(storage.path, newest, tuple(params), analyze=analyze) == [
            "SEARCH events USING INDEX events_by_type (type=?)"
        ]
        below, params = backward_query(before=filled[1500][0], limit=100, event_type=event_type)
        assert plan_of(storage.path, below, tuple(params), analyze=analyze) == [
            "SEARCH events USING INDEX events_by_type (type=? AND seq<?)",
            "SCALAR SUBQUERY 1",
            "SEARCH events USING COVERING INDEX sqlite_autoindex_events_1 (id=?)",
        ]

    @pytest.mark.parametrize("analyze", [False, True])
    async def test_the_whole_log_is_read_backward_by_rowid(
        self, storage: SQLiteStorage, filled: list[tuple[str, str]], analyze: bool
    ) -> None:
        newest, params = backward_query(before=None, limit=100)
        assert plan_of(storage.path, newest, tuple(params), analyze=analyze) == ["SCAN events"]
        below, params = backward_query(before=filled[1500][0], limit=100)
        assert plan_of(storage.path, below, tuple(params), analyze=analyze) == [
            "SEARCH events USING INTEGER PRIMARY KEY (rowid<?)",
            "SCALAR SUBQUERY 1",
            "SEARCH events USING COVERING INDEX sqlite_autoindex_events_1 (id=?)",
        ]

    async def test_the_reads_answer_what_the_plans_promise(
        self, storage: SQLiteStorage, filled: list[tuple[str, str]]
    ) -> None:
        for event_type in (None, "customer.deleted"):
            expected = [i for i, t in reversed(filled) if event_type in (None, t)]
            seen: list[str] = []
            before: str | None = None
            while page := await storage.list_events_backward(
                before=before, limit=500, event_type=event_type
            ):
                seen += [e.id for e in page]
                before = page[-1].id
            assert seen == expected
