"""Many clients at once on one database: no lost updates, one winner per provider id, and an
event log whose order is the commit order, read by a consumer that never skips an event.

Each ``Billing`` here has its own pool, as separate application processes would.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator

import pytest

from qzpay import Billing, Customer, Event
from qzpay.errors import ConflictError
from qzpay.storage import Transaction
from tests.postgres.hooks import HookedStorage

pytestmark = pytest.mark.postgres


@pytest.fixture
async def clients(pg_url: str) -> AsyncIterator[tuple[Billing, Billing]]:
    async with Billing(storage=pg_url) as one, Billing(storage=pg_url) as two:
        yield one, two


async def _all_events(billing: Billing) -> list[Event]:
    events: list[Event] = []
    while page := await billing.events.list(after=events[-1].id if events else None, limit=100):
        events += page
    return events


def _assert_chained(events: list[Event], field: str) -> None:
    """Each update saw the state the previous event left: the log is in commit order."""
    for earlier, later in itertools.pairwise(events):
        assert later.previous is not None
        assert later.previous[field] == getattr(earlier.data, field)


class TestConcurrentUpdates:
    async def test_updates_of_different_metadata_keys_all_survive(
        self, clients: tuple[Billing, Billing]
    ) -> None:
        customer = await clients[0].customers.create(email="keys@example.com", metadata={"b": "0"})
        await asyncio.gather(
            *(
                clients[i % 2].customers.update(customer.id, metadata={f"k{i}": str(i)})
                for i in range(24)
            )
        )
        final = await clients[0].customers.get(customer.id)
        assert final is not None
        assert final.metadata == {"b": "0", **{f"k{i}": str(i) for i in range(24)}}
        for i in range(24):
            page = await clients[1].customers.list(metadata={f"k{i}": str(i)})
            assert [c.id for c in page.data] == [customer.id]
        events = await _all_events(clients[0])
        assert len(events) == 25
        assert events[-1].data == final
        _assert_chained(events, "metadata")

    async def test_updates_of_one_field_end_in_one_written_value(
        self, clients: tuple[Billing, Billing]
    ) -> None:
        customer = await clients[0].customers.create(email="name@example.com", name="start")
        names = [f"name-{i}" for i in range(20)]
        await asyncio.gather(
            *(clients[i % 2].customers.update(customer.id, name=n) for i, n in enumerate(names))
        )
        final = await clients[1].customers.get(customer.id)
        assert final is not None
        assert final.name in names
        events = await _all_events(clients[1])
        assert len(events) == 21
        assert events[-1].data == final  # the last event in the log is the last commit
        assert sorted(e.data.name or "" for e in events[1:]) == sorted(names)
        _assert_chained(events, "name")


class TestRaces:
    async def test_one_provider_id_linked_from_two_clients_has_one_winner(
        self, clients: tuple[Billing, Billing]
    ) -> None:
        one, two = clients
        for round_ in range(10):
            first = await one.customers.create(email=f"first{round_}@example.com")
            second = await two.customers.create(email=f"second{round_}@example.com")
            provider_id = f"cus_race_{round_}"
            results = await asyncio.gather(
                one.customers.link(first.id, provider="stripe", provider_customer_id=provider_id),
                two.customers.link(second.id, provider="stripe", provider_customer_id=provider_id),
                return_exceptions=True,
            )
            winners = [r for r in results if isinstance(r, Customer)]
            losers = [r for r in results if isinstance(r, ConflictError)]
            assert len(winners) == 1, results
            assert len(losers) == 1, results
            assert losers[0].code == "provider_id_taken"
            owner = await two.customers.get_by_external_id(provider_id, provider="stripe")
            assert owner == winners[0]
            loser_id = second.id if winners[0].id == first.id else first.id
            loser = await one.customers.get(loser_id)
            assert loser is not None
            assert loser.provider_customer_ids == {}

    async def test_one_idempotency_key_from_two_clients_creates_once(
        self, clients: tuple[Billing, Billing]
    ) -> None:
        for round_ in range(5):
            created = await asyncio.gather(
                *(
                    client.customers.create(email="same@example.com", idempotency_key=f"k{round_}")
                    for client in clients
                )
            )
            assert created[0] == created[1]
        assert (await clients[0].customers.list(email="same@example.com")).total == 5
        assert len(await _all_events(clients[1])) == 5


class TestEventLogConsumer:
    async def test_a_consumer_paging_with_after_never_skips_an_event(self, pg_url: str) -> None:
        # Updates stall between writing their event and committing (the read makes the
        # transaction send its writes), so events take their sequence numbers in one order
        # and commit in another.
        rng = random.Random(20)

        async def stall(tx: Transaction) -> None:
            await tx.find_idempotent_create("no-such-key")
            await asyncio.sleep(rng.uniform(0, 0.02))

        slow_storage = HookedStorage(pg_url, after_append=stall)
        async with (
            Billing(storage=slow_storage) as slow,
            Billing(storage=pg_url) as fast,
            Billing(storage=pg_url) as reader,
        ):
            customers = [await fast.customers.create(email=f"c{i}@example.com") for i in range(8)]
            expected = [e.id for e in await _all_events(reader)]
            for writer in (slow, fast):
                writer.on("*", lambda event: expected.append(event.id))
            seen: list[str] = []
            writing = True

            async def consume() -> None:
                after: str | None = None
                loop = asyncio.get_running_loop()
                deadline = None
                while writing or len(seen) < len(expected):
                    if not writing:
                        # A skipped event would never come: stop waiting after a while.
                        deadline = deadline or loop.time() + 5
                        if loop.time() > deadline:
                            return
                    page = await reader.events.list(after=after, limit=5)
                    seen.extend(e.id for e in page)
                    if page:
                        after = page[-1].id
                    else:
                        await asyncio.sleep(0.001)

            async def write(w: int) -> None:
                for j in range(15):
                    if j % 4 == 0:
                        await fast.customers.create(email=f"w{w}-{j}@example.com")
                    else:
                        target = customers[(w + j) % len(customers)]
                        await slow.customers.update(target.id, metadata={"by": f"{w}-{j}"})

            consumer = asyncio.create_task(consume())
            await asyncio.gather(*(write(w) for w in range(8)))
            writing = False
            await consumer
            assert len(seen) == len(set(seen))
            assert set(expected) - set(seen) == set(), "the consumer skipped these"
            assert sorted(seen) == sorted(expected)
            assert seen == [e.id for e in await _all_events(reader)]
