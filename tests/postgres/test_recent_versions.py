"""Recently seen versions (issue 16): an update or delete of a customer this storage just read or
wrote is one statement, the checked one, with no read before it; a remembered copy that another
writer made stale is refused by the check (or, when nothing checks it, before the commit or the
error) and the change is recomputed from a fresh read, so no result comes from a stale copy.

Statements are counted with asyncpg's query logger on a pool handed to the storage: only those
that name the customers table, so pool housekeeping does not count.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
import pytest

from qzpay import Billing, Customer
from qzpay.errors import ConflictError
from qzpay.limits import MAX_METADATA_KEYS
from qzpay.storage.postgres import PostgresStorage
from qzpay.storage.postgres.recent import (
    RECENT_VERSIONS,
    REMEMBERED_METADATA_CHARS,
    RecentVersions,
)

pytestmark = pytest.mark.postgres


class Statements:
    """The statements naming the customers table, as the server received them."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def log(self, record: asyncpg.connection.LoggedQuery) -> None:
        if "customers" in record.query:
            self.sent.append(record.query)

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        start = len(self.sent)
        seen: list[str] = []
        yield seen
        seen.extend(self.sent[start:])


@asynccontextmanager
async def _billing(
    pg_url: str, statements: Statements | None = None, *, recent_versions: int = RECENT_VERSIONS
) -> AsyncIterator[Billing]:
    async def init(connection: asyncpg.Connection) -> None:
        if statements is not None:
            connection.add_query_logger(statements.log)

    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=4, init=init)
    try:
        async with Billing(
            storage=PostgresStorage(pool, recent_versions=recent_versions)
        ) as billing:
            yield billing
    finally:
        await pool.close()


@pytest.fixture
def statements() -> Statements:
    return Statements()


def _reads(sent: list[str]) -> list[str]:
    return [query for query in sent if query.lstrip().startswith("SELECT")]


class TestOneStatement:
    async def test_an_update_after_a_create_is_the_checked_statement_alone(
        self, pg_url: str, statements: Statements
    ) -> None:
        async with _billing(pg_url, statements) as billing:
            created = await billing.customers.create(email="one@example.com")
            with statements.counting() as sent:
                updated = await billing.customers.update(created.id, name="One")
            assert len(sent) == 1
            assert "xmin" in sent[0]
            assert updated.name == "One"
            assert await billing.customers.get(created.id) == updated

    async def test_a_delete_after_an_update_is_one_statement(
        self, pg_url: str, statements: Statements
    ) -> None:
        async with _billing(pg_url, statements) as billing:
            created = await billing.customers.create(email="two@example.com")
            await billing.customers.update(created.id, metadata={"plan": "team"})
            with statements.counting() as sent:
                await billing.customers.delete(created.id)
            assert len(sent) == 1
            deleted = await billing.customers.get(created.id)
            assert deleted is not None
            assert deleted.deleted_at is not None
            events = [e.type for e in await billing.events.list(limit=10)]
            assert events.count("customer.deleted") == 1

    async def test_a_read_for_a_change_lets_the_next_change_skip_its_read(
        self, pg_url: str, statements: Statements
    ) -> None:
        async with _billing(pg_url) as other:
            created = await other.customers.create(email="three@example.com")
        async with _billing(pg_url, statements) as billing:
            await billing.customers.update(created.id, name="Three")  # read, then checked
            with statements.counting() as sent:
                await billing.customers.update(created.id, name="Three again")
            assert _reads(sent) == []
            assert len(sent) == 1

    @pytest.mark.parametrize("got_first", [False, True], ids=["not_seen", "plain_get"])
    async def test_a_customer_not_created_or_changed_here_is_read_first(
        self, pg_url: str, statements: Statements, got_first: bool
    ) -> None:
        """A plain get is not remembered either (it would cost every get ~5 %)."""
        async with _billing(pg_url) as other:
            created = await other.customers.create(email="four@example.com")
        async with _billing(pg_url, statements) as billing:
            if got_first:
                await billing.customers.get(created.id)
            with statements.counting() as sent:
                await billing.customers.update(created.id, name="Four")
            assert len(_reads(sent)) == 1
            assert len(sent) == 2

    async def test_recent_versions_zero_reads_every_time(
        self, pg_url: str, statements: Statements
    ) -> None:
        async with _billing(pg_url, statements, recent_versions=0) as billing:
            created = await billing.customers.create(email="five@example.com")
            with statements.counting() as sent:
                await billing.customers.update(created.id, name="Five")
            assert len(_reads(sent)) == 1
            assert len(sent) == 2


class TestStaleCopies:
    """Storage ``mine`` remembers the customer; ``theirs`` (another process) changes it."""

    async def test_a_stale_copy_loses_no_update(self, pg_url: str, statements: Statements) -> None:
        async with _billing(pg_url, statements) as mine, _billing(pg_url) as theirs:
            created = await mine.customers.create(email="six@example.com", metadata={"a": "1"})
            await theirs.customers.update(created.id, name="Theirs", metadata={"b": "2"})
            with statements.counting() as sent:
                updated = await mine.customers.update(created.id, metadata={"c": "3"})
            # The check refused the stale copy and answered with the row as it is now; a
            # second check followed, with no read in between.
            assert len(sent) == 2
            assert _reads(sent) == []
            assert updated.name == "Theirs"
            assert updated.metadata == {"a": "1", "b": "2", "c": "3"}
            assert await theirs.customers.get(created.id) == updated
            updates = [e for e in await mine.events.list(limit=10) if e.type.endswith("updated")]
            assert updates[-1].previous == {"metadata": {"a": "1", "b": "2"}}

    async def test_a_writer_that_commits_while_the_check_waits_is_not_missed(
        self, pg_url: str, statements: Statements
    ) -> None:
        """Regression: the refused statement's snapshot predates a writer that committed while
        it waited for the customer's lock, so the row it found is the copy it already held; the
        retry must read rather than try that copy again."""
        async with _billing(pg_url, statements) as mine, _billing(pg_url) as theirs:
            created = await mine.customers.create(email="race@example.com", metadata={"a": "1"})
            storage = theirs.storage
            assert isinstance(storage, PostgresStorage)
            with statements.counting() as sent:
                async with storage.transaction() as tx:  # holds the customer's lock till commit
                    current = await tx.get_customer(created.id)
                    assert current is not None
                    await tx.update_customer(current, _renamed(current, "Theirs"))
                    mine_update = asyncio.create_task(
                        mine.customers.update(created.id, metadata={"b": "2"})
                    )
                    await asyncio.sleep(0.3)  # its checked statement is waiting for the lock
                updated = await mine_update
            assert updated.name == "Theirs"
            assert updated.metadata == {"a": "1", "b": "2"}
            checks = [query for query in sent if query.startswith("WITH")]
            assert len(checks) == 2
            assert len(_reads(sent)) == 1

    async def test_a_no_op_on_a_stale_copy_is_not_taken_for_one(
        self, pg_url: str, statements: Statements
    ) -> None:
        async with _billing(pg_url, statements) as mine, _billing(pg_url) as theirs:
            created = await mine.customers.create(email="seven@example.com", name="Mine")
            await theirs.customers.update(created.id, name="Theirs")
            # Against the remembered copy this is a no-op; against the row it is a change.
            updated = await mine.customers.update(created.id, name="Mine")
            assert updated.name == "Mine"
            stored = await theirs.customers.get(created.id)
            assert stored is not None
            assert stored.name == "Mine"

    async def test_a_no_op_on_a_current_copy_costs_one_version_check(
        self, pg_url: str, statements: Statements
    ) -> None:
        async with _billing(pg_url, statements) as billing:
            created = await billing.customers.create(email="eight@example.com", name="Same")
            with statements.counting() as sent:
                same = await billing.customers.update(created.id, name="Same")
            assert same == created
            assert len(sent) == 1
            assert sent[0].startswith("SELECT xmin")

    async def test_deleting_a_customer_deleted_elsewhere_deletes_once(
        self, pg_url: str, statements: Statements
    ) -> None:
        async with _billing(pg_url, statements) as mine, _billing(pg_url) as theirs:
            created = await mine.customers.create(email="nine@example.com")
            await theirs.customers.delete(created.id)
            first = await theirs.customers.get(created.id)
            await mine.customers.delete(created.id)
            assert await mine.customers.get(created.id) == first
            events = [e.type for e in await mine.events.list(limit=10)]
            assert events.count("customer.deleted") == 1

    async def test_updating_a_customer_deleted_elsewhere_is_refused(
        self, pg_url: str, statements: Statements
    ) -> None:
        async with _billing(pg_url, statements) as mine, _billing(pg_url) as theirs:
            created = await mine.customers.create(email="ten@example.com")
            await theirs.customers.delete(created.id)
            with pytest.raises(ConflictError) as raised:
                await mine.customers.update(created.id, name="Too late")
            assert raised.value.code == "customer_deleted"

    async def test_an_error_computed_from_a_stale_copy_is_retried(
        self, pg_url: str, statements: Statements
    ) -> None:
        """Mine remembers a full metadata map; theirs removes keys; adding a few keys is over the
        limit only against the stale copy, so the error must not reach the caller."""
        full = {f"k{i}": "v" for i in range(MAX_METADATA_KEYS)}
        async with _billing(pg_url, statements) as mine, _billing(pg_url) as theirs:
            created = await mine.customers.create(email="eleven@example.com", metadata=full)
            removed: dict[str, str | None] = {f"k{i}": None for i in range(10)}
            await theirs.customers.update(created.id, metadata=removed)
            updated = await mine.customers.update(created.id, metadata={"new1": "x", "new2": "y"})
            assert len(updated.metadata) == MAX_METADATA_KEYS - 10 + 2
            assert await theirs.customers.get(created.id) == updated

    async def test_an_error_from_a_current_copy_stands(
        self, pg_url: str, statements: Statements
    ) -> None:
        from qzpay.errors import ValidationError

        full = {f"k{i}": "v" for i in range(MAX_METADATA_KEYS)}
        async with _billing(pg_url, statements) as billing:
            created = await billing.customers.create(email="twelve@example.com", metadata=full)
            with pytest.raises(ValidationError):
                await billing.customers.update(created.id, metadata={"one_more": "x"})
            assert await billing.customers.get(created.id) == created


class TestPrivateCopies:
    async def test_changing_a_returned_customer_in_place_changes_nothing_stored(
        self, pg_url: str, admin: asyncpg.Connection
    ) -> None:
        async with _billing(pg_url) as billing:
            created = await billing.customers.create(
                email="thirteen@example.com", metadata={"a": "1"}
            )
            created.metadata["a"] = (
                "tampered"  # a caller's mistake: the model is frozen, its dict not
            )
            created.metadata["b"] = "added"
            updated = await billing.customers.update(created.id, metadata={"c": "3"})
            assert updated.metadata == {"a": "1", "c": "3"}
            side = await admin.fetch(
                "SELECT key, value FROM customer_metadata WHERE customer_id = $1", created.id
            )
            assert dict(side) == updated.metadata  # type: ignore[arg-type]


def _renamed(customer: Customer, name: str) -> Customer:
    from datetime import timedelta

    return customer.model_copy(
        update={"name": name, "updated_at": customer.updated_at + timedelta(microseconds=1)}
    )


def _customer(customer_id: str, **metadata: str) -> Customer:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return Customer(
        id=customer_id,
        email="r@example.com",
        metadata=metadata,
        provider_customer_ids={},
        created_at=now,
        updated_at=now,
    )


class TestRecentVersions:
    def test_the_oldest_go_beyond_capacity(self) -> None:
        recent = RecentVersions(2)
        for number in range(3):
            recent.remember(_customer(f"cus_{number}"), number)
        assert recent.recall("cus_0") is None
        assert [recent.recall(f"cus_{n}") is not None for n in (1, 2)] == [True, True]
        assert len(recent) == 2

    def test_remembering_again_makes_an_entry_newest(self) -> None:
        recent = RecentVersions(2)
        recent.remember(_customer("cus_a"), 1)
        recent.remember(_customer("cus_b"), 2)
        recent.remember(_customer("cus_a"), 3)
        recent.remember(_customer("cus_c"), 4)
        assert recent.recall("cus_b") is None
        recalled = recent.recall("cus_a")
        assert recalled is not None
        assert recalled[1] == 3

    def test_entries_expire(self) -> None:
        recent = RecentVersions(10, seconds=0.0)
        recent.remember(_customer("cus_a"), 1)
        assert recent.recall("cus_a") is None
        assert len(recent) == 0

    def test_zero_capacity_remembers_nothing(self) -> None:
        recent = RecentVersions(0)
        recent.remember(_customer("cus_a"), 1)
        assert recent.recall("cus_a") is None

    def test_a_negative_capacity_is_refused(self) -> None:
        with pytest.raises(ValueError, match="recent_versions"):
            RecentVersions(-1)

    def test_a_customer_with_large_metadata_is_not_kept(self) -> None:
        recent = RecentVersions(4)
        small = _customer("cus_a", a="1")
        recent.remember(small, 1)
        big = {f"k{i}": "v" * 100 for i in range(REMEMBERED_METADATA_CHARS // 100 + 1)}
        recent.remember(_customer("cus_a", **big), 2)
        assert recent.recall("cus_a") is None  # the older, smaller copy went too
        limit = {"k": "v" * (REMEMBERED_METADATA_CHARS - 1)}
        recent.remember(_customer("cus_b", **limit), 3)
        assert recent.recall("cus_b") is not None

    def test_copies_in_and_out_are_private(self) -> None:
        recent = RecentVersions(4)
        given = _customer("cus_a", a="1")
        recent.remember(given, 7)
        given.metadata["a"] = "changed"
        first = recent.recall("cus_a")
        assert first is not None
        assert first[0].metadata == {"a": "1"}
        first[0].metadata["a"] = "changed again"
        second = recent.recall("cus_a")
        assert second is not None
        assert second[0].metadata == {"a": "1"}
