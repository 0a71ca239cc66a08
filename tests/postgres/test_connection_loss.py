"""Connection loss: sessions killed between calls, a server that is down, replies lost.

Reads are retried on a fresh connection; a write only where it cannot have committed (before
BEGIN went through) or where sending it again is harmless. A lost COMMIT is reported, never
retried, and nothing half-written remains in any case.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from qzpay import Billing
from qzpay.errors import StorageError
from qzpay.storage import Transaction
from qzpay.storage.postgres import PostgresStorage
from tests.postgres.conftest import terminate_other_backends
from tests.postgres.hooks import HookedStorage
from tests.postgres.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
async def proxy(pg_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(pg_url)
    instance = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()


def through(proxy: TcpProxy, url: str) -> str:
    """``url`` with the proxy in place of the server."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    return parts._replace(netloc=netloc).geturl()


@pytest.fixture
async def proxied(pg_url: str, proxy: TcpProxy) -> AsyncIterator[Billing]:
    async with Billing(storage=through(proxy, pg_url)) as billing:
        yield billing


async def _count(admin: asyncpg.Connection, sql: str, *args: object) -> int:
    return int(await admin.fetchval(sql, *args))


class TestSessionsKilledBetweenCalls:
    async def test_every_call_after_pg_terminate_backend_succeeds(
        self, billing: Billing, admin: asyncpg.Connection
    ) -> None:
        first = await billing.customers.create(email="first@example.com", metadata={"a": "1"})
        assert await terminate_other_backends(admin) >= 1
        assert await billing.customers.get(first.id) == first
        await terminate_other_backends(admin)
        second = await billing.customers.create(email="second@example.com")
        await terminate_other_backends(admin)
        await billing.customers.create(email="keyed@example.com", idempotency_key="key-1")
        await terminate_other_backends(admin)
        updated = await billing.customers.update(first.id, metadata={"b": "2"})
        await terminate_other_backends(admin)
        await billing.customers.link(second.id, provider="stripe", provider_customer_id="cus_x")
        await terminate_other_backends(admin)
        found = await billing.customers.get_by_external_id("cus_x")
        assert found is not None
        assert found.id == second.id
        await terminate_other_backends(admin)
        assert (await billing.customers.list(metadata={"b": "2"})).data == [updated]
        await terminate_other_backends(admin)
        events = await billing.events.list()
        assert [e.type for e in events] == [
            "customer.created",
            "customer.created",
            "customer.created",
            "customer.updated",
            "customer.updated",
        ]
        assert await _count(admin, "SELECT count(*) FROM customers") == 3

    async def test_connections_cut_unnoticed_are_replaced(
        self, proxied: Billing, proxy: TcpProxy, admin: asyncpg.Connection
    ) -> None:
        # cut() returns before the client has seen anything: the next call sends its first
        # message into a dead connection, the case a retry has to handle.
        customer = await proxied.customers.create(email="cut@example.com")
        proxy.cut()
        assert await proxied.customers.get(customer.id) == customer
        proxy.cut()
        await proxied.customers.create(email="cut2@example.com")
        proxy.cut()
        await proxied.customers.create(email="cut3@example.com", idempotency_key="k-cut")
        proxy.cut()
        await proxied.customers.update(customer.id, name="After the cut")
        proxy.cut()
        assert len(await proxied.events.list()) == 4
        assert await _count(admin, "SELECT count(*) FROM customers") == 3


class TestServerDown:
    async def test_calls_fail_fast_with_storage_error_then_recover(
        self, proxied: Billing, proxy: TcpProxy, admin: asyncpg.Connection
    ) -> None:
        customer = await proxied.customers.create(email="before@example.com")
        async with proxy.down():
            started = time.monotonic()
            for call in (
                proxied.customers.get(customer.id),
                proxied.customers.create(email="during@example.com"),
                proxied.customers.update(customer.id, name="During"),
                proxied.events.list(),
            ):
                with pytest.raises(StorageError) as caught:
                    await call
                assert caught.value.code == "storage_unavailable"
            assert time.monotonic() - started < 5
        assert await proxied.customers.get(customer.id) == customer
        assert await _count(admin, "SELECT count(*) FROM customers") == 1
        assert await _count(admin, "SELECT count(*) FROM events") == 1
        await proxied.customers.update(customer.id, name="After")

    async def test_nothing_listening_is_a_storage_error(self) -> None:
        storage = PostgresStorage("postgresql://postgres@127.0.0.1:1/qzpay", connect_timeout=2)
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            await storage.get_customer("cus_01J0000000000000000000000")
        assert caught.value.code == "storage_unavailable"
        billing = Billing(storage="postgresql://postgres@127.0.0.1:1/qzpay")
        with pytest.raises(StorageError):
            await billing.open()
        with pytest.raises(StorageError):
            await billing.customers.create(email="nowhere@example.com")
        await billing.close()
        assert time.monotonic() - started < 5


class TestLostReplies:
    async def test_a_one_statement_create_is_sent_again_and_written_once(
        self, proxied: Billing, proxy: TcpProxy, admin: asyncpg.Connection
    ) -> None:
        await proxied.customers.create(email="warm@example.com", metadata={"a": "1"})
        proxy.drop_reply_to(b"lost@example.com")
        created = await proxied.customers.create(email="lost@example.com", metadata={"a": "2"})
        assert proxy.dropped == 1
        assert await proxied.customers.get(created.id) == created
        assert (
            await _count(
                admin, "SELECT count(*) FROM customers WHERE email_key = $1", "lost@example.com"
            )
            == 1
        )
        assert (
            await _count(
                admin, "SELECT count(*) FROM customer_metadata WHERE customer_id = $1", created.id
            )
            == 1
        )
        assert [e.data.id for e in await proxied.events.list()][1:] == [created.id]

    async def test_a_lost_commit_is_reported_not_retried(
        self, proxied: Billing, proxy: TcpProxy, admin: asyncpg.Connection
    ) -> None:
        proxy.drop_reply_to(b"COMMIT")
        with pytest.raises(StorageError) as caught:
            await proxied.customers.create(email="maybe@example.com", idempotency_key="k-maybe")
        assert caught.value.code == "storage_unavailable"
        assert proxy.dropped == 1
        # The COMMIT reached the server; the idempotency key makes the caller's retry safe.
        again = await proxied.customers.create(email="maybe@example.com", idempotency_key="k-maybe")
        assert await _count(admin, "SELECT count(*) FROM customers") == 1
        assert [e.data.id for e in await proxied.events.list()] == [again.id]


class TestLostMidTransaction:
    async def test_an_update_fails_cleanly_and_the_next_call_works(
        self, pg_url: str, proxy: TcpProxy, admin: asyncpg.Connection
    ) -> None:
        async def cut(tx: Transaction) -> None:
            await tx.find_idempotent_create("no-such-key")  # the change is sent, not committed
            proxy.cut()

        storage = HookedStorage(through(proxy, pg_url), after_append=cut, optimistic=False)
        storage.enabled = False
        async with Billing(storage=storage) as billing:
            customer = await billing.customers.create(email="mid@example.com", metadata={"a": "1"})
            storage.enabled = True
            with pytest.raises(StorageError) as caught:
                await billing.customers.update(customer.id, name="Half", metadata={"a": None})
            assert caught.value.code == "storage_unavailable"
            storage.enabled = False
            assert await billing.customers.get(customer.id) == customer
            assert (await billing.customers.list(metadata={"a": "1"})).total == 1
            assert len(await billing.events.list()) == 1
            updated = await billing.customers.update(customer.id, name="Whole")
            assert updated.name == "Whole"

    async def test_an_update_whose_commit_is_one_statement_survives_the_cut(
        self, pg_url: str, proxy: TcpProxy, admin: asyncpg.Connection
    ) -> None:
        """The one-round-trip update: nothing is sent before its commit statement, so a cut
        connection before it costs nothing, and the statement (re-sent once if the cut hits
        it) applies the change and its event together."""

        async def cut(tx: object) -> None:
            proxy.cut()

        storage = HookedStorage(through(proxy, pg_url), after_append=cut)
        storage.enabled = False
        async with Billing(storage=storage) as billing:
            customer = await billing.customers.create(email="mid@example.com", metadata={"a": "1"})
            storage.enabled = True
            updated = await billing.customers.update(
                customer.id, name="Whole", metadata={"a": None}
            )
            storage.enabled = False
            assert updated.name == "Whole"
            assert await billing.customers.get(customer.id) == updated
            assert (await billing.customers.list(metadata={"a": "1"})).total == 0
            assert [e.type for e in await billing.events.list()] == [
                "customer.created",
                "customer.updated",
            ]

    async def test_a_create_whose_commit_is_one_statement_survives_the_cut(
        self, pg_url: str, proxy: TcpProxy, admin: asyncpg.Connection
    ) -> None:
        async def cut(tx: object) -> None:
            proxy.cut()

        storage = HookedStorage(through(proxy, pg_url), after_append=cut)
        async with Billing(storage=storage) as billing:
            created = await billing.customers.create(email="cut@example.com")
            assert await billing.customers.get(created.id) == created
        assert await _count(admin, "SELECT count(*) FROM customers") == 1
        assert await _count(admin, "SELECT count(*) FROM events") == 1
