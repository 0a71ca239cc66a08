"""Customers kept in step with Stripe (localstripe over HTTP, faults from a loopback proxy)."""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from qzpay import Billing, Event
from qzpay.errors import ProviderSyncError, StorageError, ValidationError
from qzpay.providers.stripe import StripeProvider
from qzpay.storage import Storage, open_storage
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.stripe_fixtures import unique_email

CUSTOMERS = "/v1/customers"


async def stripe_twins(stripe: StripeProvider, customer_id: str) -> list[str]:
    """Ids of the live Stripe customers carrying this qzpay id."""
    return [c.id async for c in stripe.customers.list() if c.qzpay_customer_id == customer_id]


@pytest.fixture
async def synced(
    storage_url: str, proxied_stripe_provider: StripeProvider
) -> AsyncIterator[Billing]:
    async with Billing(storage=storage_url, provider=proxied_stripe_provider) as billing:
        yield billing


class TestHappyPath:
    async def test_create_links_and_sends_every_field(
        self, synced: Billing, stripe_provider: StripeProvider
    ) -> None:
        email = unique_email("full")
        customer = await synced.customers.create(
            email=email,
            name="Ana Souza",
            phone="+5511912345678",
            address={"line1": "Av. Paulista 1000", "city": "São Paulo", "country": "BR"},
            metadata={"userId": "usr_1"},
        )
        pcid = customer.provider_customer_ids["stripe"]
        remote = await stripe_provider.customers.retrieve(pcid)
        assert remote is not None
        assert (remote.email, remote.name, remote.phone) == (email, "Ana Souza", "+5511912345678")
        assert remote.address == customer.address
        assert remote.metadata == {"userId": "usr_1", "qzpay_customer_id": customer.id}
        assert await synced.customers.get(customer.id) == customer
        assert await synced.customers.get_by_external_id(pcid, provider="stripe") == customer

    async def test_update_pushes_changes_and_removes_keys(
        self, synced: Billing, stripe_provider: StripeProvider
    ) -> None:
        customer = await synced.customers.create(
            email=unique_email(), metadata={"keep": "1", "drop": "2"}
        )
        updated = await synced.customers.update(
            customer.id, name="Renamed", metadata={"drop": None, "plan": "pro"}
        )
        remote = await stripe_provider.customers.retrieve(updated.provider_customer_ids["stripe"])
        assert remote is not None
        assert remote.name == "Renamed"
        assert remote.metadata == {"keep": "1", "plan": "pro", "qzpay_customer_id": customer.id}

    async def test_delete_deletes_at_stripe(
        self, synced: Billing, stripe_provider: StripeProvider
    ) -> None:
        customer = await synced.customers.create(email=unique_email())
        await synced.customers.delete(customer.id)
        assert (
            await stripe_provider.customers.retrieve(customer.provider_customer_ids["stripe"])
            is None
        )
        deleted = await synced.customers.get(customer.id)
        assert deleted is not None
        assert deleted.deleted_at is not None


class TestFailuresRaise:
    async def test_refused_request_changes_nothing(
        self, synced: Billing, fault_proxy: FaultProxy
    ) -> None:
        events: list[Event] = []
        synced.on("*", events.append)
        fault_proxy.inject(Fault.rate_limited(), method="POST", path=CUSTOMERS)
        with pytest.raises(ProviderSyncError) as caught:
            await synced.customers.create(email=unique_email())
        assert caught.value.provider == "stripe"
        assert caught.value.operation == "create_customer"
        assert not caught.value.ambiguous
        assert (await synced.customers.list(include_deleted=True)).total == 0
        assert await synced.events.list() == []
        assert events == []
        assert await synced.storage.list_sync_tasks(limit=10) == []

    async def test_dropped_response_is_adopted_not_duplicated(
        self, synced: Billing, fault_proxy: FaultProxy, stripe_provider: StripeProvider
    ) -> None:
        fault_proxy.inject(Fault.drop(), method="POST", path=CUSTOMERS)
        customer = await synced.customers.create(email=unique_email("dropped"))
        assert len(fault_proxy.matching("POST", CUSTOMERS)) == 1  # no blind resend
        assert await stripe_twins(stripe_provider, customer.id) == [
            customer.provider_customer_ids["stripe"]
        ]

    async def test_a_failed_look_up_after_a_dropped_create_keeps_the_intent(
        self, synced: Billing, fault_proxy: FaultProxy, stripe_provider: StripeProvider
    ) -> None:
        """Regression: the create lands at Stripe, its answer is lost, and the look-up that
        follows fails cleanly (a 400). The failure must stay ambiguous and the intent stay,
        so a keyed retry adopts the Stripe customer (it used to be a clean failure: the
        intent was dropped and the Stripe customer orphaned)."""
        fault_proxy.inject(Fault.drop(), method="POST", path=CUSTOMERS)
        fault_proxy.inject(Fault.respond(400), method="GET", path=CUSTOMERS)
        args: dict[str, Any] = {"email": unique_email("orphan"), "idempotency_key": "signup-9"}
        with pytest.raises(ProviderSyncError) as caught:
            await synced.customers.create(**args)
        assert caught.value.ambiguous
        (intent,) = await synced.storage.list_sync_tasks(limit=10)
        customer = await synced.customers.create(**args)
        assert customer.id == intent.customer_id
        assert await stripe_twins(stripe_provider, customer.id) == [
            customer.provider_customer_ids["stripe"]
        ]

    async def test_unresolved_failure_is_finished_by_a_keyed_retry(
        self, synced: Billing, fault_proxy: FaultProxy, stripe_provider: StripeProvider
    ) -> None:
        # A 500 that Stripe never saw: ambiguous for us, nothing to adopt.
        fault_proxy.inject(Fault.server_error(), method="POST", path=CUSTOMERS)
        args: dict[str, Any] = {"email": unique_email("retry"), "idempotency_key": "signup-7"}
        with pytest.raises(ProviderSyncError) as caught:
            await synced.customers.create(**args)
        assert caught.value.ambiguous
        assert (await synced.customers.list(include_deleted=True)).total == 0  # invisible
        assert await synced.events.list() == []
        (intent,) = await synced.storage.list_sync_tasks(limit=10)
        customer = await synced.customers.create(**args)
        assert customer.id == intent.customer_id  # the same customer id is reused
        assert await stripe_twins(stripe_provider, customer.id) == [
            customer.provider_customer_ids["stripe"]
        ]
        assert await synced.customers.create(**args) == customer
        assert [e.type for e in await synced.events.list()] == ["customer.created"]
        assert await synced.storage.list_sync_tasks(limit=10) == []

    async def test_failed_update_leaves_both_sides_as_they_were(
        self, synced: Billing, fault_proxy: FaultProxy, stripe_provider: StripeProvider
    ) -> None:
        customer = await synced.customers.create(email=unique_email(), name="Before")
        fault_proxy.inject(
            Fault.rate_limited(),
            method="POST",
            path=f"{CUSTOMERS}/" + customer.provider_customer_ids["stripe"],
        )
        with pytest.raises(ProviderSyncError):
            await synced.customers.update(customer.id, name="After")
        assert await synced.customers.get(customer.id) == customer
        remote = await stripe_provider.customers.retrieve(customer.provider_customer_ids["stripe"])
        assert remote is not None
        assert remote.name == "Before"


class CrashBeforeCommit:
    """A real backend whose transaction fails when the customer row is inserted — as if the
    process died after Stripe answered and before the local commit."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.crash = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def transaction(self) -> Any:
        outer = self

        class Wrapped:
            async def __aenter__(self) -> Any:
                self.cm = outer.inner.transaction()
                tx = await self.cm.__aenter__()
                if outer.crash:

                    async def broken(*args: Any, **kwargs: Any) -> None:
                        raise StorageError("simulated crash before the local commit")

                    tx.insert_customer = broken  # type: ignore[method-assign]
                return tx

            async def __aexit__(self, *exc: Any) -> Any:
                return await self.cm.__aexit__(*exc)

        return Wrapped()


class TestCrashRecovery:
    @pytest.mark.parametrize("keyed", [True, False])
    async def test_sync_pending_finishes_or_undoes(
        self,
        storage_url: str,
        make_stripe_provider: Callable[..., StripeProvider],
        stripe_provider: StripeProvider,
        keyed: bool,
    ) -> None:
        storage = CrashBeforeCommit(open_storage(storage_url))
        async with Billing(storage=storage, provider=make_stripe_provider()) as billing:
            key = "crash-key" if keyed else None
            with pytest.raises(StorageError):
                await billing.customers.create(email=unique_email("crash"), idempotency_key=key)
            (intent,) = await billing.storage.list_sync_tasks(limit=10)
            assert len(await stripe_twins(stripe_provider, intent.customer_id)) == 1  # orphan
            assert await billing.customers.get(intent.customer_id) is None
            storage.crash = False
            report = await billing.customers.sync_pending()
            assert (report.completed, report.failed, report.remaining) == (1, 0, 0)
            twins = await stripe_twins(stripe_provider, intent.customer_id)
            local = await billing.customers.get(intent.customer_id)
            if keyed:  # the caller may retry with its key: finish the create
                assert local is not None
                assert local.provider_customer_ids["stripe"] == twins[0]
                assert len(twins) == 1
            else:  # the caller was told it failed and cannot retry it: undo it
                assert local is None
                assert twins == []

    async def test_intent_of_a_dead_process_is_taken_at_once(
        self, synced: Billing, stripe_provider: StripeProvider
    ) -> None:
        customer = await synced.customers.create(email=unique_email("dead"))
        assert await synced.storage.list_sync_tasks(limit=10) == []  # a finished create
        import socket

        from qzpay._time import utcnow
        from qzpay.storage.base import SyncTask

        orphan = customer.model_copy(
            update={"id": "cus_deadprocess0000000000000000", "provider_customer_ids": {}}
        )
        created = await stripe_provider.customers.create(orphan, idempotency_key="dead-1")
        dead = SyncTask(
            resource="customer",
            record_id=orphan.id,
            operation="create",
            record=orphan,
            committed=False,
            idempotency_key=None,
            request_fingerprint=None,
            lease_owner=f"{socket.gethostname()}:999999:deadbeef",  # no such pid
            lease_until=utcnow().replace(year=2100),
            attempts=0,
            last_error=None,
            created_at=utcnow(),
        )
        async with synced.storage.transaction() as tx:
            await tx.put_sync_task(dead)
        report = await synced.customers.sync_pending()
        assert report.completed == 1
        assert await stripe_provider.customers.retrieve(created.id) is None


class TestFaultStorm:
    async def test_no_duplicates_and_no_unlinked_customers(
        self, synced: Billing, fault_proxy: FaultProxy, stripe_provider: StripeProvider
    ) -> None:
        rng = random.Random(7)
        faults = [Fault.drop, Fault.server_error, Fault.rate_limited, Fault.reset]
        outcomes: Counter[str] = Counter()
        emails: set[str] = set()
        for i in range(240):  # hundreds of creates, faults injected into ~half
            if rng.random() < 0.4:
                fault_proxy.inject(rng.choice(faults)(), method="POST", path=CUSTOMERS)
            if rng.random() < 0.15:  # the look-up after an ambiguous failure fails too
                fault_proxy.inject(Fault.server_error(), method="GET", path=CUSTOMERS)
            key = f"storm-{i}" if i % 2 else None
            email = unique_email(f"storm{i}")
            emails.add(email)
            try:
                await synced.customers.create(email=email, idempotency_key=key)
                outcomes["ok"] += 1
            except ProviderSyncError:
                outcomes["failed"] += 1
                if key is not None:  # the caller retries with its key (it may fail again)
                    with contextlib.suppress(ProviderSyncError):
                        await synced.customers.create(email=email, idempotency_key=key)
        fault_proxy._rules.clear()
        await synced.customers.sync_pending()
        assert await synced.storage.list_sync_tasks(limit=10) == []
        local = [c async for c in synced.customers.iterate()]
        by_qzpay: Counter[str] = Counter()
        async for remote in stripe_provider.customers.list():
            if remote.email in emails:
                assert remote.qzpay_customer_id is not None
                by_qzpay[remote.qzpay_customer_id] += 1
        assert set(by_qzpay) == {c.id for c in local}  # no orphan at Stripe
        assert all(by_qzpay[c.id] == 1 for c in local)  # no duplicate at Stripe
        assert all(  # none unlinked, and linked to its own twin
            c.provider_customer_ids.get("stripe") is not None for c in local
        )
        assert outcomes["failed"] > 0
        assert outcomes["ok"] > 0


class TestLogMode:
    @pytest.fixture
    async def logged(
        self, storage_url: str, proxied_stripe_provider: StripeProvider
    ) -> AsyncIterator[Billing]:
        async with Billing(
            storage=storage_url, provider=proxied_stripe_provider, provider_sync_errors="log"
        ) as billing:
            yield billing

    async def test_outage_commits_locally_and_sync_pending_catches_up(
        self, logged: Billing, fault_proxy: FaultProxy, stripe_provider: StripeProvider
    ) -> None:
        async with fault_proxy.refusing():
            customer = await logged.customers.create(email=unique_email("outage"), name="v1")
            assert customer.provider_customer_ids == {}
            assert await logged.customers.get(customer.id) == customer
            renamed = await logged.customers.update(customer.id, name="v2")
            assert renamed.name == "v2"
            doomed = await logged.customers.create(email=unique_email("doomed"))
            await logged.customers.delete(doomed.id)
            assert len(await logged.storage.list_sync_tasks(limit=10)) == 2
            failed = await logged.customers.sync_pending()
            assert (failed.completed, failed.failed, failed.remaining) == (0, 2, 2)
        report = await logged.customers.sync_pending()
        assert (report.completed, report.failed, report.remaining) == (2, 0, 0)
        synced = await logged.customers.get(customer.id)
        assert synced is not None
        (twin,) = await stripe_twins(stripe_provider, customer.id)
        assert synced.provider_customer_ids == {"stripe": twin}
        remote = await stripe_provider.customers.retrieve(twin)
        assert remote is not None
        assert remote.name == "v2"
        assert await stripe_twins(stripe_provider, doomed.id) == []
        types = [e.type for e in await logged.events.list() if e.data.id == customer.id]
        assert types == ["customer.created", "customer.updated", "customer.updated"]

    async def test_no_outage_behaves_like_raise(
        self, logged: Billing, stripe_provider: StripeProvider
    ) -> None:
        customer = await logged.customers.create(email=unique_email("fine"))
        assert await stripe_twins(stripe_provider, customer.id) == [
            customer.provider_customer_ids["stripe"]
        ]
        assert await logged.storage.list_sync_tasks(limit=10) == []


class TestMetadataRoom:
    async def test_one_of_fifty_keys_is_kept_for_the_qzpay_id(
        self, synced: Billing, stripe_provider: StripeProvider
    ) -> None:
        with pytest.raises(ValidationError):
            await synced.customers.create(
                email=unique_email(), metadata={f"k{i}": "v" for i in range(50)}
            )
        full = await synced.customers.create(
            email=unique_email(), metadata={f"k{i}": "v" for i in range(49)}
        )
        remote = await stripe_provider.customers.retrieve(full.provider_customer_ids["stripe"])
        assert remote is not None
        assert len(remote.metadata) == 50
