"""Optimistic writes of plans, prices and subscriptions (issue 16, "the same path for the next
resources"): a change with no other read is an unlocked read and one checked statement (no
BEGIN, no COMMIT); a later read in the same transaction first locks the record read so, in the
locking path's order; a stale read writes nothing and the service recomputes from a fresh read,
so concurrent writers lose no update and each record's events stay in commit order.

Statements are counted with asyncpg's query logger on a pool handed to the storage.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TypeVar

import asyncpg
import pytest

from qzpay import Billing, Customer, Event
from qzpay.catalog.models import Plan, Price
from qzpay.errors import ConflictError
from qzpay.storage.base import WriteConflict
from qzpay.storage.postgres import PostgresStorage
from qzpay.storage.postgres.catalog import CATALOG_LOCK_CLASS
from qzpay.storage.postgres.recent import RecentVersions
from qzpay.storage.postgres.sql import CUSTOMER_LOCK_CLASS
from qzpay.storage.postgres.subscriptions import SUBSCRIPTION_LOCK_CLASS
from qzpay.subscriptions.models import Subscription
from tests.factories import change_event, create_customer
from tests.providers.catalog_factories import stored_plan
from tests.subscriptions.factories import make_catalog

pytestmark = pytest.mark.postgres

T = TypeVar("T")
_TABLES = ("plans", "prices", "subscriptions", "customers", "events", "sync_tasks")


class Statements:
    """What the server received that reads or writes billing tables, queues on a lock, or
    opens or ends a transaction (pool housekeeping is left out)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def log(self, record: asyncpg.connection.LoggedQuery) -> None:
        query = record.query.strip()
        queues = "pg_advisory_xact_lock" in query
        if queues or query.startswith(("BEGIN", "COMMIT")) or any(t in query for t in _TABLES):
            self.sent.append(query)

    async def during(self, call: Awaitable[T]) -> tuple[T, list[str]]:
        """What ``call`` returned, and what the server received while it ran."""
        start = len(self.sent)
        result = await call
        return result, self.sent[start:]


@asynccontextmanager
async def _billing(pg_url: str, statements: Statements | None = None) -> AsyncIterator[Billing]:
    async def init(connection: asyncpg.Connection) -> None:
        if statements is not None:
            connection.add_query_logger(statements.log)

    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=4, init=init)
    try:
        async with Billing(storage=PostgresStorage(pool)) as billing:
            yield billing
    finally:
        await pool.close()


Counted = tuple[Billing, Statements]


@pytest.fixture
async def counted(pg_url: str) -> AsyncIterator[Counted]:
    """A Billing on PostgreSQL whose statements are counted."""
    statements = Statements()
    async with _billing(pg_url, statements) as billing:
        yield billing, statements


def _read_then_checked(sent: list[str]) -> None:
    """``sent`` is an unlocked read with the row's version, then one checked statement (which
    commits on its own: no BEGIN, no COMMIT)."""
    assert len(sent) == 2, sent
    read, write = sent
    assert read.startswith("SELECT")
    assert "xmin" in read
    assert "FOR UPDATE" not in read
    assert write.startswith("WITH queued")


def _checked_alone(sent: list[str]) -> None:
    """``sent`` is the checked statement alone: the version was remembered, so no read."""
    assert len(sent) == 1, sent
    assert sent[0].startswith("WITH queued")


def _lock_class(statement: str) -> int | None:
    """The lock class a statement queues on first, if it queues."""
    marker = "pg_advisory_xact_lock("
    if marker not in statement:
        return None
    return int(statement.split(marker, 1)[1].split(",", 1)[0])


async def _free_subscription(billing: Billing) -> tuple[Customer, Subscription]:
    """A customer and its subscription to a free price (see make_catalog)."""
    catalog = await make_catalog(billing)
    customer = await create_customer(billing)
    return customer, await billing.subscriptions.create(customer.id, catalog.free.id)


_LOCK_CLASSES = {
    "plan": CATALOG_LOCK_CLASS,
    "price": CATALOG_LOCK_CLASS,
    "subscription": SUBSCRIPTION_LOCK_CLASS,
}


async def _two_changes(
    kind: str, mine: Billing, theirs: Billing
) -> tuple[Awaitable[object], Awaitable[object]]:
    """A record of ``kind`` that ``theirs`` made, and two changes of it through ``mine``
    (neither alters access)."""
    if kind == "subscription":
        _, sub = await _free_subscription(theirs)
        return mine.subscriptions.cancel(sub.id), mine.subscriptions.uncancel(sub.id)
    plan = await theirs.plans.create(key=f"two-{secrets.token_hex(3)}", name="P")
    if kind == "plan":
        return mine.plans.update(plan.id, name="A"), mine.plans.update(plan.id, name="B")
    price = await theirs.prices.create(plan.id, currency="USD", unit_amount=500, interval="month")
    return mine.prices.update(price.id, metadata={"t": "g"}), mine.prices.archive(price.id)


def _plan_changed(before: Plan, **fields: object) -> Plan:
    stamp = before.updated_at + timedelta(microseconds=1)
    return before.model_copy(update={**fields, "updated_at": stamp})


async def _events(storage: PostgresStorage) -> list[Event]:
    events: list[Event] = []
    while page := await storage.list_events(after=events[-1].id if events else None, limit=50):
        events += page
    return events


class TestRoundTrips:
    """``counted`` changes records another storage (``billing``) created, so it has not seen
    them: the first change reads, the next is the checked statement alone."""

    @pytest.mark.parametrize("kind", ["plan", "price", "subscription"])
    async def test_the_first_change_reads_and_the_next_is_the_checked_statement_alone(
        self, kind: str, counted: Counted, billing: Billing
    ) -> None:
        mine, statements = counted
        first, second = await _two_changes(kind, mine, billing)
        _, sent = await statements.during(first)
        _, remembered = await statements.during(second)
        # For a subscription, the read that tells whether a provider bills it is the read
        # for change.
        _read_then_checked(sent)
        assert _lock_class(sent[1]) == _LOCK_CLASSES[kind]
        _checked_alone(remembered)  # the version the first change's statement returned

    async def test_records_this_storage_created_change_in_one_statement(
        self, counted: Counted
    ) -> None:
        mine, statements = counted
        plan = await mine.plans.create(key="mine", name="Mine")
        price = await mine.prices.create(plan.id, currency="USD", unit_amount=0, interval="month")
        customer = await create_customer(mine)
        sub = await mine.subscriptions.create(customer.id, price.id)
        for change in (
            mine.plans.update(plan.id, name="Renamed"),
            mine.prices.update(price.id, metadata={"t": "g"}),
            mine.subscriptions.cancel(sub.id),
        ):
            _, sent = await statements.during(change)
            _checked_alone(sent)

    async def test_a_change_of_access_locks_the_subscription_before_the_customer(
        self, counted: Counted, billing: Billing
    ) -> None:
        mine, statements = counted
        customer, sub = await _free_subscription(billing)
        ended, sent = await statements.during(
            mine.subscriptions.cancel(sub.id, at_period_end=False)
        )
        assert await mine.entitlements.list(customer.id) == []
        assert ended.status == "canceled"
        locks = [lock for lock in map(_lock_class, sent) if lock is not None]
        # The locking path's order: the subscription, then its customer.
        assert locks[:2] == [SUBSCRIPTION_LOCK_CLASS, CUSTOMER_LOCK_CLASS], sent
        assert "xmin" in sent[0]  # the unlocked read
        assert "FOR UPDATE" not in sent[0]


class TestStaleReads:
    async def test_a_plan_changed_after_the_read_is_refused_and_nothing_is_written(
        self, pg_url: str, admin: asyncpg.Connection
    ) -> None:
        async with _billing(pg_url) as billing:
            plan = await billing.plans.create(key="stale", name="Before")
            storage = billing.storage
            assert isinstance(storage, PostgresStorage)
            events = await admin.fetchval("SELECT count(*) FROM events")

            async def stale_write() -> None:
                async with storage.optimistic_transaction() as tx:
                    before = await tx.get_plan(plan.id)
                    assert before is not None
                    await billing.plans.update(plan.id, name="Theirs")  # another writer
                    after = _plan_changed(before, name="Mine", provider_plan_ids={"stripe": "p"})
                    await tx.update_plan(before, after)
                    await tx.append_event(change_event(after, before, "plan.updated"))

            with pytest.raises(WriteConflict) as raised:
                await stale_write()
            assert "plan" in str(raised.value)
            stored = await billing.plans.get(plan.id)
        assert stored is not None
        assert stored.name == "Theirs"
        assert stored.provider_plan_ids == {}
        assert await admin.fetchval("SELECT count(*) FROM plan_links") == 0
        assert await admin.fetchval("SELECT count(*) FROM events") == events + 1  # theirs only

    async def test_a_record_changed_before_a_second_read_is_refused_when_it_is_locked(
        self, pg_url: str
    ) -> None:
        async with _billing(pg_url) as billing:
            customer, sub = await _free_subscription(billing)
            storage = billing.storage
            assert isinstance(storage, PostgresStorage)

            async def read_twice() -> None:
                async with storage.optimistic_transaction() as tx:
                    assert await tx.get_subscription(sub.id) is not None
                    await billing.subscriptions.pause(sub.id)  # another writer
                    await tx.get_customer(customer.id)  # locks the subscription first

            with pytest.raises(WriteConflict):
                await read_twice()
            stored = await billing.subscriptions.get(sub.id)
        assert stored is not None
        assert stored.status == "paused"

    async def test_a_taken_provider_plan_id_is_raised_by_the_checked_commit(
        self, pg_url: str, admin: asyncpg.Connection
    ) -> None:
        async with _billing(pg_url) as billing:
            one = await billing.plans.create(key="one", name="One")
            two = await billing.plans.create(key="two", name="Two")
            storage = billing.storage
            assert isinstance(storage, PostgresStorage)
            async with storage.transaction() as tx:
                before = await tx.get_plan(one.id)
                assert before is not None
                await tx.update_plan(before, _plan_changed(before, provider_plan_ids={"s": "x"}))
            events = await admin.fetchval("SELECT count(*) FROM events")

            async def link_taken() -> None:
                async with storage.optimistic_transaction() as tx:
                    before = await tx.get_plan(two.id)
                    assert before is not None
                    after = _plan_changed(before, name="Two!", provider_plan_ids={"s": "x"})
                    await tx.update_plan(before, after)
                    await tx.append_event(change_event(after, before, "plan.updated"))

            with pytest.raises(ConflictError) as raised:
                await link_taken()
            assert raised.value.code == "provider_id_taken"
            assert await billing.plans.get(two.id) == two
        assert await admin.fetchval("SELECT count(*) FROM events") == events


class TestRememberedRecords:
    async def test_a_stale_remembered_plan_is_refused_and_retried_from_the_answer(
        self, pg_url: str
    ) -> None:
        statements = Statements()
        async with _billing(pg_url, statements) as mine, _billing(pg_url) as theirs:
            plan = await mine.plans.create(key="shared", name="Shared")
            await mine.plans.update(plan.id, metadata={"mine": "1"})  # remembered here
            await theirs.plans.update(plan.id, metadata={"theirs": "1"})  # now stale here
            final, sent = await statements.during(mine.plans.update(plan.id, name="Renamed"))
        assert final.name == "Renamed"
        assert final.metadata == {"mine": "1", "theirs": "1"}  # their change is kept
        # Refused, then the retry starts from the row the refusal answered with: no read.
        assert [query.startswith("WITH queued") for query in sent] == [True, True], sent

    async def test_a_no_op_on_a_stale_copy_is_confirmed_and_recomputed(self, pg_url: str) -> None:
        async with _billing(pg_url) as mine, _billing(pg_url) as theirs:
            _, sub = await _free_subscription(mine)
            await mine.subscriptions.cancel(sub.id)  # remembered: cancelled at period end
            await theirs.subscriptions.uncancel(sub.id)
            # The copy here says "already cancelled": a no-op, unless it is confirmed first.
            again = await mine.subscriptions.cancel(sub.id)
            assert again.cancel_at_period_end
            stored = await theirs.subscriptions.get(sub.id)
        assert stored is not None
        assert stored.cancel_at_period_end

    async def test_a_change_of_a_stale_copy_gets_the_fresh_rows_error(self, pg_url: str) -> None:
        async with _billing(pg_url) as mine, _billing(pg_url) as theirs:
            _, sub = await _free_subscription(mine)
            await mine.subscriptions.pause(sub.id)  # remembered here as paused, live
            await theirs.subscriptions.cancel(sub.id, at_period_end=False)  # ended there
            with pytest.raises(ConflictError) as raised:
                await mine.subscriptions.resume(sub.id)  # the copy would allow it
            assert raised.value.code == "subscription_ended"
            stored = await theirs.subscriptions.get(sub.id)
        assert stored is not None
        assert stored.status == "canceled"

    async def test_a_record_changed_in_the_transaction_that_created_it_is_not_remembered(
        self, counted: Counted
    ) -> None:
        """Both row versions carry the creating transaction's xmin, so remembering the
        inserted copy would let a checked write pass over the change (a lost update)."""
        mine, _ = counted
        storage = mine.storage
        assert isinstance(storage, PostgresStorage)
        plan = stored_plan(name="Inserted", metadata={"a": "1"})
        async with storage.transaction() as tx:
            await tx.insert_plan(plan)
            before = await tx.get_plan(plan.id)
            assert before is not None
            await tx.update_plan(before, _plan_changed(before, name="Changed"))
        updated = await mine.plans.update(plan.id, metadata={"k": "v"})
        assert updated.name == "Changed"
        stored = await mine.plans.get(plan.id)
        assert stored is not None
        assert (stored.name, stored.metadata) == ("Changed", {"a": "1", "k": "v"})

    def test_remembered_records_are_private_copies_and_bounded(self) -> None:
        plan = stored_plan(entitlements=["api"], metadata={"a": "1"})
        recent = RecentVersions(4)
        recent.remember(plan, 7)
        plan.metadata["a"] = "changed by the caller"
        recalled = recent.recall_record(plan.id, Plan)
        assert recalled is not None
        copy, version = recalled
        assert (copy.metadata, version) == ({"a": "1"}, 7)
        copy.entitlements.append("sso")
        second = recent.recall_record(plan.id, Plan)
        assert second is not None
        assert second[0].entitlements == ["api"]
        assert recent.recall_record(plan.id, Price) is None  # the wrong kind is no hit
        big = plan.model_copy(update={"entitlements": ["x" * 100] * 50})
        recent.remember(big, 8)
        assert recent.recall_record(plan.id, Plan) is None  # too big: not kept, old one gone


class TestConcurrentWriters:
    async def test_no_plan_update_is_lost_and_its_events_are_in_commit_order(
        self, pg_url: str
    ) -> None:
        async with _billing(pg_url) as one, _billing(pg_url) as two:
            plan = await one.plans.create(key="busy", name="Busy")
            writers = 16
            await asyncio.gather(
                *(
                    (one, two)[i % 2].plans.update(plan.id, metadata={f"k{i}": str(i)})
                    for i in range(writers)
                )
            )
            final = await one.plans.get(plan.id)
            assert final is not None
            storage = one.storage
            assert isinstance(storage, PostgresStorage)
            updates = [e for e in await _events(storage) if e.type == "plan.updated"]
        assert final.metadata == {f"k{i}": str(i) for i in range(writers)}
        assert len(updates) == writers
        for earlier, later in itertools.pairwise(updates):
            assert later.previous is not None
            assert later.previous["metadata"] == earlier.data.metadata

    async def test_concurrent_subscription_changes_lose_nothing(self, pg_url: str) -> None:
        async with _billing(pg_url) as one, _billing(pg_url) as two:
            catalog = await make_catalog(one)
            customers = [await create_customer(one) for _ in range(6)]
            subs = [await one.subscriptions.create(c.id, catalog.free.id) for c in customers]
            # Per subscription: cancel at period end (no access change: the checked statement)
            # against a move to another plan (an access change: the locked second read).
            await asyncio.gather(
                *(one.subscriptions.cancel(sub.id) for sub in subs),
                *(two.subscriptions.change_price(sub.id, catalog.team_free.id) for sub in subs),
            )
            for sub, customer in zip(subs, customers, strict=True):
                final = await one.subscriptions.get(sub.id)
                assert final is not None
                assert final.cancel_at_period_end
                assert final.price_id == catalog.team_free.id
                assert await one.entitlements.list(customer.id) == ["api", "sso"]

    async def test_two_due_runs_at_once_roll_each_period_once(self, pg_url: str) -> None:
        async with _billing(pg_url) as one, _billing(pg_url) as two:
            catalog = await make_catalog(one)
            subs = [
                await one.subscriptions.create((await create_customer(one)).id, catalog.free.id)
                for _ in range(8)
            ]
            later = subs[0].current_period_end + timedelta(hours=1)
            reports = await asyncio.gather(
                one.subscriptions.run_due(later), two.subscriptions.run_due(later)
            )
            assert sum(report.renewed for report in reports) == len(subs)
            for sub in subs:
                rolled = await one.subscriptions.get(sub.id)
                assert rolled is not None
                assert rolled.current_period_start == sub.current_period_end


def test_the_lock_classes_differ() -> None:
    assert len({CATALOG_LOCK_CLASS, CUSTOMER_LOCK_CLASS, SUBSCRIPTION_LOCK_CLASS}) == 3
