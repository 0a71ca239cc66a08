"""One Billing, two providers: Stripe (localstripe) and MercadoPago (the fake), both over HTTP
behind fault-injecting proxies. Each customer is linked at both or at neither."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from qzpay import Billing, Event
from qzpay.customers.models import Customer
from qzpay.errors import ConflictError, ProviderSyncError
from qzpay.ids import customer_ids
from qzpay.providers import PaymentProvider
from qzpay.providers.base import ProviderEmailTaken
from qzpay.providers.mercadopago import MercadoPagoProvider
from qzpay.providers.stripe import StripeProvider
from tests.support.fake_mercadopago import FakeMercadoPago, NotificationReceiver, running
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.stripe_fixtures import unique_email
from tests.sync.test_mercadopago_sync import RATE_LIMITED, SERVER_ERROR, after_a, marker
from tests.sync.test_stripe_webhooks import sign

if TYPE_CHECKING:
    from tests.support.mercadopago_fixtures import MercadoPagoFactory
    from tests.support.stripe_fixtures import ProviderFactory

CUSTOMERS = "/v1/customers"
SEARCH = "/v1/customers/search"
ONE_CUSTOMER = re.compile(r"/v1/customers/[^/]+")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def stripe_copies(stripe: StripeProvider, email: str) -> list[str]:
    """Ids of the live Stripe customers with this exact email."""
    return [copy.id async for copy in stripe.customers.list() if copy.email == email]


def mp_copies(fake: FakeMercadoPago, email: str) -> list[str]:
    return [c["id"] for c in fake.customers(email)]


@pytest.fixture
async def both(
    storage_url: str,
    proxied_stripe_provider: StripeProvider,
    proxied_mercadopago_provider: MercadoPagoProvider,
) -> AsyncIterator[Billing]:
    providers: list[PaymentProvider] = [proxied_stripe_provider, proxied_mercadopago_provider]
    async with Billing(storage=storage_url, provider=providers) as billing:
        yield billing


async def nothing_local(billing: Billing) -> None:
    assert (await billing.customers.list(include_deleted=True)).total == 0
    assert await billing.events.list() == []
    assert await billing.storage.list_sync_tasks(limit=10) == []


def a_customer(email: str, **fields: object) -> Customer:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "id": customer_ids.new(),
        "email": email,
        "metadata": {},
        "provider_customer_ids": {},
        "created_at": now,
        "updated_at": now,
    }
    return Customer.model_validate({**values, **fields})


class TestAdoptAndRelease:
    """The two provider calls adoption uses, at each provider (Stripe never needs them in
    the sync flow, since it allows several customers per email, but implements them alike)."""

    @pytest.mark.parametrize("name", ["stripe", "mercadopago"])
    async def test_adopt_marks_and_overwrites_release_unmarks(
        self,
        stripe_provider: StripeProvider,
        mercadopago_provider: MercadoPagoProvider,
        name: str,
    ) -> None:
        provider: PaymentProvider = stripe_provider if name == "stripe" else mercadopago_provider
        email = unique_email("adopt")
        first = a_customer(email, name="First Owner", metadata={"old": "1"})
        made = await provider.customers.create(first, idempotency_key=f"ar-{first.id}")
        await provider.customers.release(made.id, first, idempotency_key=f"rl-{first.id}")
        released = await provider.customers.retrieve(made.id)
        assert released is not None
        assert released.qzpay_customer_id is None  # as if created outside qzpay

        mine = a_customer(email, name="Ana Souza", phone="+5511912345678", metadata={"new": "2"})
        adopted = await provider.customers.adopt(made.id, mine, idempotency_key=f"ad-{mine.id}")

        assert adopted.id == made.id
        assert adopted.qzpay_customer_id == mine.id
        assert (adopted.name, adopted.phone) == ("Ana Souza", "+5511912345678")
        assert provider.customers.merge_remote(mine, adopted) == mine  # nothing left to push
        assert await provider.customers.find(mine) == adopted
        stranger = a_customer(email)
        with pytest.raises(ProviderEmailTaken):  # it is mine now
            await provider.customers.adopt(made.id, stranger, idempotency_key="ad-x")
        await provider.customers.release(made.id, stranger, idempotency_key="rl-x")  # not his
        assert await provider.customers.find(mine) == adopted
        await provider.customers.release(made.id, mine, idempotency_key=f"rl-{mine.id}")
        assert await provider.customers.find(mine) is None
        kept = await provider.customers.retrieve(made.id)
        assert kept is not None  # released, never deleted
        assert (kept.qzpay_customer_id, kept.name) == (None, "Ana Souza")


class TestLinkedEverywhere:
    async def test_create_update_delete_reach_both(
        self,
        both: Billing,
        stripe_provider: StripeProvider,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        email = unique_email("both")
        customer = await both.customers.create(email=email, name="Ana Souza", metadata={"k": "v"})
        links = customer.provider_customer_ids
        assert set(links) == {"stripe", "mercadopago"}
        assert await stripe_copies(stripe_provider, email) == [links["stripe"]]
        assert mp_copies(fake_mercadopago, email) == [links["mercadopago"]]
        for provider, pcid in links.items():
            assert await both.customers.get_by_external_id(pcid, provider=provider) == customer
            other = "stripe" if provider == "mercadopago" else "mercadopago"
            assert await both.customers.get_by_external_id(pcid, provider=other) is None

        await both.customers.update(customer.id, name="Ana Lima", metadata={"k": "w"})
        remote = await stripe_provider.customers.retrieve(links["stripe"])
        assert remote is not None
        assert (remote.name, remote.metadata["k"]) == ("Ana Lima", "w")
        stored = fake_mercadopago.get(links["mercadopago"])
        assert stored is not None
        assert stored["last_name"] == "Lima"

        await both.customers.delete(customer.id)
        assert await stripe_provider.customers.retrieve(links["stripe"]) is None
        assert fake_mercadopago.get(links["mercadopago"]) is None
        assert [e.type for e in await both.events.list()] == [
            "customer.created",
            "customer.updated",
            "customer.deleted",
        ]


class TestCreateFailures:
    async def test_a_clean_failure_at_the_second_undoes_the_first(
        self,
        both: Billing,
        mercadopago_proxy: FaultProxy,
        fault_proxy: FaultProxy,
        stripe_provider: StripeProvider,
    ) -> None:
        email = unique_email("undone")
        mercadopago_proxy.inject(RATE_LIMITED, method="POST", path=CUSTOMERS)

        with pytest.raises(ProviderSyncError) as caught:
            await both.customers.create(email=email, idempotency_key="undone-1")

        assert (caught.value.provider, caught.value.ambiguous) == ("mercadopago", False)
        assert len(fault_proxy.matching("POST", CUSTOMERS)) == 1  # it was created...
        assert len(fault_proxy.matching("DELETE")) == 1  # ...and deleted again
        assert await stripe_copies(stripe_provider, email) == []
        await nothing_local(both)

    async def test_an_email_taken_at_mercadopago_undoes_stripe(
        self, both: Billing, stripe_provider: StripeProvider, fake_mercadopago: FakeMercadoPago
    ) -> None:
        email = unique_email("taken")
        fake_mercadopago.add_customer(email=email, description=marker("cus_someoneelse"))

        with pytest.raises(ConflictError) as caught:
            await both.customers.create(email=email)

        assert caught.value.code == "provider_email_taken"
        assert await stripe_copies(stripe_provider, email) == []
        await nothing_local(both)

    @pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "unkeyed"])
    @pytest.mark.parametrize("landed", [True, False], ids=["landed", "not-landed"])
    async def test_an_ambiguous_failure_is_settled_at_both_by_sync_pending(
        self,
        both: Billing,
        mercadopago_proxy: FaultProxy,
        stripe_provider: StripeProvider,
        fake_mercadopago: FakeMercadoPago,
        keyed: bool,
        landed: bool,
    ) -> None:
        email = unique_email("unsure")
        if landed:  # applied, the answer lost, and looking for it fails too
            mercadopago_proxy.inject(Fault.drop(), method="POST", path=CUSTOMERS)
            mercadopago_proxy.inject(
                SERVER_ERROR, method="GET", path=SEARCH, where=after_a("POST", mercadopago_proxy)
            )
        else:
            mercadopago_proxy.inject(SERVER_ERROR, method="POST", path=CUSTOMERS)

        with pytest.raises(ProviderSyncError) as caught:
            await both.customers.create(email=email, idempotency_key="unsure" if keyed else None)

        assert caught.value.ambiguous
        (intent,) = await both.storage.list_sync_tasks(limit=10)
        assert (await both.customers.list(include_deleted=True)).total == 0  # invisible
        assert len(await stripe_copies(stripe_provider, email)) == 1  # left for sync_pending
        assert len(mp_copies(fake_mercadopago, email)) == (1 if landed else 0)

        report = await both.customers.sync_pending()

        assert (report.completed, report.failed, report.remaining) == (1, 0, 0)
        local = await both.customers.get(intent.customer_id)
        stripe_ids = await stripe_copies(stripe_provider, email)
        if keyed:  # finished at both, adopting what the first attempt made
            assert local is not None
            assert stripe_ids == [local.provider_customer_ids["stripe"]]
            assert mp_copies(fake_mercadopago, email) == [
                local.provider_customer_ids["mercadopago"]
            ]
            assert [e.type for e in await both.events.list()] == ["customer.created"]
        else:  # undone at both
            assert local is None
            assert stripe_ids == []
            assert mp_copies(fake_mercadopago, email) == []

    async def test_a_keyed_retry_finishes_with_the_same_customers(
        self,
        both: Billing,
        mercadopago_proxy: FaultProxy,
        fault_proxy: FaultProxy,
        stripe_provider: StripeProvider,
    ) -> None:
        email = unique_email("retry")
        mercadopago_proxy.inject(SERVER_ERROR, method="POST", path=CUSTOMERS)
        with pytest.raises(ProviderSyncError):
            await both.customers.create(email=email, idempotency_key="retry-1")
        (intent,) = await both.storage.list_sync_tasks(limit=10)

        customer = await both.customers.create(email=email, idempotency_key="retry-1")

        assert customer.id == intent.customer_id
        assert await stripe_copies(stripe_provider, email) == [
            customer.provider_customer_ids["stripe"]
        ]
        assert len(fault_proxy.matching("POST", CUSTOMERS)) == 1  # found, not re-created
        assert await both.storage.list_sync_tasks(limit=10) == []

    async def test_a_failed_undo_is_finished_by_sync_pending(
        self,
        both: Billing,
        mercadopago_proxy: FaultProxy,
        fault_proxy: FaultProxy,
        stripe_provider: StripeProvider,
    ) -> None:
        email = unique_email("stuck")
        mercadopago_proxy.inject(RATE_LIMITED, method="POST", path=CUSTOMERS)
        fault_proxy.inject(Fault.server_error(), method="DELETE", path=ONE_CUSTOMER)

        with pytest.raises(ProviderSyncError) as caught:
            await both.customers.create(email=email)

        assert caught.value.ambiguous  # something remains: an intent keeps track of it
        assert len(await stripe_copies(stripe_provider, email)) == 1
        assert (await both.customers.list(include_deleted=True)).total == 0
        report = await both.customers.sync_pending()
        assert (report.completed, report.remaining) == (1, 0)
        assert await stripe_copies(stripe_provider, email) == []
        await nothing_local(both)

    async def test_a_customer_made_outside_qzpay_is_adopted_at_mercadopago(
        self, both: Billing, stripe_provider: StripeProvider, fake_mercadopago: FakeMercadoPago
    ) -> None:
        email = unique_email("adopt")
        outsider = fake_mercadopago.add_customer(email=email, first_name="Someone")

        customer = await both.customers.create(email=email, name="Ana Souza")

        assert customer.provider_customer_ids["mercadopago"] == outsider["id"]
        assert await stripe_copies(stripe_provider, email) == [
            customer.provider_customer_ids["stripe"]
        ]
        stored = fake_mercadopago.get(outsider["id"])
        assert stored is not None
        assert (stored["description"], stored["first_name"]) == (marker(customer.id), "Ana")

    async def test_an_adoption_is_written_only_once_every_other_provider_succeeded(
        self,
        storage_url: str,
        proxied_stripe_provider: StripeProvider,
        proxied_mercadopago_provider: MercadoPagoProvider,
        fault_proxy: FaultProxy,
        mercadopago_proxy: FaultProxy,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        """MercadoPago first: the outsider is cleared for adoption, Stripe then fails, and the
        outsider was never touched (nothing to put back)."""
        email = unique_email("first")
        outsider = fake_mercadopago.add_customer(email=email, first_name="Someone")
        fault_proxy.inject(Fault.rate_limited(), method="POST", path=CUSTOMERS)
        providers: list[PaymentProvider] = [proxied_mercadopago_provider, proxied_stripe_provider]
        async with Billing(storage=storage_url, provider=providers) as billing:
            with pytest.raises(ProviderSyncError) as caught:
                await billing.customers.create(email=email)
            assert caught.value.provider == "stripe"
            await nothing_local(billing)
        assert fake_mercadopago.get(outsider["id"]) == outsider
        assert mercadopago_proxy.matching("PUT") == []


class TestUpdateFailures:
    async def test_a_clean_failure_at_the_second_reverts_the_first(
        self,
        both: Billing,
        mercadopago_proxy: FaultProxy,
        stripe_provider: StripeProvider,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        customer = await both.customers.create(email=unique_email(), name="Before")
        mercadopago_proxy.inject(RATE_LIMITED, method="PUT", path=ONE_CUSTOMER)

        with pytest.raises(ProviderSyncError) as caught:
            await both.customers.update(customer.id, name="After")

        assert not caught.value.ambiguous
        assert await both.customers.get(customer.id) == customer
        remote = await stripe_provider.customers.retrieve(customer.provider_customer_ids["stripe"])
        assert remote is not None
        assert remote.name == "Before"  # reverted
        stored = fake_mercadopago.get(customer.provider_customer_ids["mercadopago"])
        assert stored is not None
        assert stored["first_name"] == "Before"
        assert await both.storage.list_sync_tasks(limit=10) == []

    async def test_an_ambiguous_failure_leaves_a_task_that_realigns_both(
        self,
        both: Billing,
        mercadopago_proxy: FaultProxy,
        stripe_provider: StripeProvider,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        customer = await both.customers.create(email=unique_email(), name="Before")
        mp_id = customer.provider_customer_ids["mercadopago"]
        mercadopago_proxy.inject(Fault.drop(), method="PUT", path=f"{CUSTOMERS}/{mp_id}")

        with pytest.raises(ProviderSyncError) as caught:
            await both.customers.update(customer.id, name="After")

        assert caught.value.ambiguous
        assert await both.customers.get(customer.id) == customer
        stored = fake_mercadopago.get(mp_id)
        assert stored is not None
        assert stored["first_name"] == "After"  # it landed there
        (task,) = await both.storage.list_sync_tasks(limit=10)
        assert (task.operation, task.committed) == ("push", True)

        report = await both.customers.sync_pending()

        assert (report.completed, report.remaining) == (1, 0)
        stored = fake_mercadopago.get(mp_id)
        assert stored is not None
        assert stored["first_name"] == "Before"  # local is the truth
        remote = await stripe_provider.customers.retrieve(customer.provider_customer_ids["stripe"])
        assert remote is not None
        assert remote.name == "Before"

    async def test_a_change_made_again_after_a_revert_is_applied(
        self,
        storage_url: str,
        make_mercadopago_provider: MercadoPagoFactory,
        proxied_stripe_provider: StripeProvider,
        fault_proxy: FaultProxy,
    ) -> None:
        """With a provider that honours idempotency keys, a key reused for the same change
        would be answered from its cache (the change reverted meanwhile stays reverted)."""
        with running(honour_idempotency=True) as fake:
            mercadopago = make_mercadopago_provider(api_base=fake.url)
            providers: list[PaymentProvider] = [mercadopago, proxied_stripe_provider]
            async with Billing(storage=storage_url, provider=providers) as billing:
                customer = await billing.customers.create(email=unique_email(), name="Before")
                stripe_id = customer.provider_customer_ids["stripe"]
                fault_proxy.inject(
                    Fault.rate_limited(), method="POST", path=f"{CUSTOMERS}/{stripe_id}"
                )
                with pytest.raises(ProviderSyncError):
                    await billing.customers.update(customer.id, name="After")
                stored = fake.get(customer.provider_customer_ids["mercadopago"])
                assert stored is not None
                assert stored["first_name"] == "Before"  # reverted

                await billing.customers.update(customer.id, name="After")

                stored = fake.get(customer.provider_customer_ids["mercadopago"])
                assert stored is not None
                assert stored["first_name"] == "After"


class TestDeleteFailures:
    async def test_a_delete_failing_after_the_first_is_finished_forward(
        self,
        both: Billing,
        mercadopago_proxy: FaultProxy,
        stripe_provider: StripeProvider,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        customer = await both.customers.create(email=unique_email())
        links = customer.provider_customer_ids
        mercadopago_proxy.inject(RATE_LIMITED, method="DELETE", path=ONE_CUSTOMER)

        with pytest.raises(ProviderSyncError) as caught:
            await both.customers.delete(customer.id)

        assert caught.value.ambiguous  # applied at Stripe, which cannot be undone
        assert await stripe_provider.customers.retrieve(links["stripe"]) is None
        assert fake_mercadopago.get(links["mercadopago"]) is not None
        assert await both.customers.get(customer.id) == customer  # not yet deleted here
        (task,) = await both.storage.list_sync_tasks(limit=10)
        assert task.operation == "delete"

        report = await both.customers.sync_pending()

        assert (report.completed, report.remaining) == (1, 0)
        assert fake_mercadopago.get(links["mercadopago"]) is None
        deleted = await both.customers.get(customer.id)
        assert deleted is not None
        assert deleted.deleted_at is not None


class TestLogMode:
    async def test_an_outage_at_one_provider_is_caught_up_without_duplicates(
        self,
        storage_url: str,
        proxied_stripe_provider: StripeProvider,
        proxied_mercadopago_provider: MercadoPagoProvider,
        fault_proxy: FaultProxy,
        mercadopago_proxy: FaultProxy,
        stripe_provider: StripeProvider,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        email = unique_email("outage")
        async with Billing(
            storage=storage_url,
            provider=[proxied_stripe_provider, proxied_mercadopago_provider],
            provider_sync_errors="log",
        ) as billing:
            async with mercadopago_proxy.refusing():
                customer = await billing.customers.create(email=email)
            assert customer.provider_customer_ids == {}  # committed, not yet linked

            report = await billing.customers.sync_pending()

            assert (report.completed, report.remaining) == (1, 0)
            synced = await billing.customers.get(customer.id)
            assert synced is not None
            links = synced.provider_customer_ids
            assert await stripe_copies(stripe_provider, email) == [links["stripe"]]
            assert mp_copies(fake_mercadopago, email) == [links["mercadopago"]]
            assert len(fault_proxy.matching("POST", CUSTOMERS)) == 1  # kept, not re-made


class TestWebhooks:
    async def test_a_change_at_mercadopago_reaches_stripe(
        self,
        both: Billing,
        make_mercadopago_provider: MercadoPagoFactory,
        stripe_provider: StripeProvider,
        fake_mercadopago: FakeMercadoPago,
        notification_receiver: NotificationReceiver,
    ) -> None:
        customer = await both.customers.create(email=unique_email("mphook"), name="Local")
        links = customer.provider_customer_ids
        edited = customer.model_copy(update={"name": "Edited At MP"})
        await make_mercadopago_provider().customers.update(
            links["mercadopago"], customer, edited, idempotency_key="mp-dash"
        )
        notification = fake_mercadopago.notification(
            action="card.updated",
            type="automatic-payments",
            data={"customer_id": links["mercadopago"], "new_card_id": 2, "old_card_id": 1},
        )
        await fake_mercadopago.deliver(notification_receiver.url, notification)
        async with asyncio.timeout(10):
            delivery = await notification_receiver.next()

        result = await both.webhooks.handle(
            "mercadopago", delivery.body, delivery.headers, query=delivery.query
        )

        assert (result.status, result.customer_id) == ("applied", customer.id)
        local = await both.customers.get(customer.id)
        assert local is not None
        assert local.name == "Edited At MP"
        remote = await stripe_provider.customers.retrieve(links["stripe"])
        assert remote is not None
        assert remote.name == "Edited At MP"
        assert await both.storage.list_sync_tasks(limit=10) == []

    async def test_a_change_at_stripe_reaches_mercadopago(
        self, both: Billing, stripe_provider: StripeProvider, fake_mercadopago: FakeMercadoPago
    ) -> None:
        customer = await both.customers.create(email=unique_email("sthook"), name="Local")
        links = customer.provider_customer_ids
        edited = customer.model_copy(update={"name": "Edited At Stripe", "metadata": {"a": "b"}})
        await stripe_provider.customers.update(
            links["stripe"], customer, edited, idempotency_key=f"st-dash-{customer.id}"
        )
        events: list[Event] = []
        both.on("*", events.append)
        body = json.dumps(
            {
                "id": f"evt_{customer.id}",
                "type": "customer.updated",
                "data": {"object": {"object": "customer", "id": links["stripe"]}},
            }
        ).encode()

        result = await both.webhooks.handle("stripe", body, {"Stripe-Signature": sign(body)})

        assert result.status == "applied"
        local = await both.customers.get(customer.id)
        assert local is not None
        assert (local.name, local.metadata) == ("Edited At Stripe", {"a": "b"})
        stored = fake_mercadopago.get(links["mercadopago"])
        assert stored is not None
        assert (stored["first_name"], stored["last_name"]) == ("Edited", "At Stripe")
        assert [e.type for e in events] == ["customer.updated"]  # pushing adds no event

    async def test_a_deletion_at_one_deletes_at_the_other(
        self,
        both: Billing,
        make_mercadopago_provider: MercadoPagoFactory,
        stripe_provider: StripeProvider,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        customer = await both.customers.create(email=unique_email("delhook"))
        links = customer.provider_customer_ids
        await make_mercadopago_provider().customers.delete(
            links["mercadopago"], idempotency_key="mp-dash-del"
        )
        notification = fake_mercadopago.notification(
            action="customer.deleted", type="customer", data={"id": links["mercadopago"]}
        )

        result = await both.webhooks.handle(
            "mercadopago", notification.body, notification.headers, query=notification.query
        )

        assert result.status == "applied"
        local = await both.customers.get(customer.id)
        assert local is not None
        assert local.deleted_at is not None
        assert await stripe_provider.customers.retrieve(links["stripe"]) is None
        assert await both.storage.list_sync_tasks(limit=10) == []


class TestReconcile:
    async def test_each_provider_is_reconciled_on_its_own(
        self,
        both: Billing,
        make_mercadopago_provider: MercadoPagoFactory,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        customer = await both.customers.create(email=unique_email("rc"), name="Local")
        mp_id = customer.provider_customer_ids["mercadopago"]
        edited = customer.model_copy(update={"name": "Drifted"})
        await make_mercadopago_provider().customers.update(
            mp_id, customer, edited, idempotency_key="rc-mp"
        )

        at_mp = await both.customers.reconcile("mercadopago")
        at_stripe = await both.customers.reconcile("stripe")

        assert [(d.customer_id, d.fields) for d in at_mp.drift] == [
            (customer.id, {"name": ("Local", "Drifted")})
        ]
        assert at_stripe.drift == []
        assert customer.id not in at_stripe.unlinked + at_mp.unlinked
        await both.customers.reconcile("mercadopago", fix=True)
        stored = fake_mercadopago.get(mp_id)
        assert stored is not None
        assert stored["first_name"] == "Local"
        assert (await both.customers.reconcile("mercadopago")).drift == []


class TestFaultStorm:
    async def test_no_duplicates_and_no_unlinked_customers_at_either(
        self,
        storage_url: str,
        make_stripe_provider: ProviderFactory,
        make_mercadopago_provider: MercadoPagoFactory,
        fault_proxy: FaultProxy,
        mercadopago_proxy: FaultProxy,
        stripe_provider: StripeProvider,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        stripe = make_stripe_provider(api_base=fault_proxy.url)
        mercadopago = make_mercadopago_provider(api_base=mercadopago_proxy.url, timeout=0.3)
        rng = random.Random(3)
        stripe_faults = [Fault.drop(), Fault.server_error(), Fault.rate_limited(), Fault.reset()]
        mp_faults = [Fault.drop(), Fault.reset(), SERVER_ERROR, RATE_LIMITED, Fault.delay(0.5)]
        outcomes: Counter[str] = Counter()
        emails: list[str] = []
        async with Billing(storage=storage_url, provider=[stripe, mercadopago]) as billing:
            for i in range(30):
                if rng.random() < 0.25:
                    fault_proxy.inject(rng.choice(stripe_faults), method="POST", path=CUSTOMERS)
                if rng.random() < 0.3:
                    mercadopago_proxy.inject(rng.choice(mp_faults), method="POST", path=CUSTOMERS)
                if rng.random() < 0.1:
                    fault_proxy.inject(Fault.server_error(), method="GET", path=CUSTOMERS)
                if rng.random() < 0.1:
                    mercadopago_proxy.inject(SERVER_ERROR, method="GET", path=SEARCH)
                if rng.random() < 0.1:  # an undo fails too
                    fault_proxy.inject(Fault.server_error(), method="DELETE", path=ONE_CUSTOMER)
                key = f"storm-{i}-{rng.getrandbits(32)}" if i % 2 else None
                email = unique_email(f"both{i}")
                emails.append(email)
                try:
                    await billing.customers.create(email=email, name="Ana", idempotency_key=key)
                    outcomes["ok"] += 1
                except ProviderSyncError:
                    outcomes["failed"] += 1
                    if key is not None:
                        with contextlib.suppress(ProviderSyncError):
                            await billing.customers.create(
                                email=email, name="Ana", idempotency_key=key
                            )
            await asyncio.sleep(0.6)  # let delayed requests land before the final sweep
            fault_proxy._rules.clear()
            mercadopago_proxy._rules.clear()
            report = await billing.customers.sync_pending()
            assert (report.failed, report.remaining) == (0, 0)
            local: dict[str, Customer] = {c.email: c async for c in billing.customers.iterate()}

        assert outcomes["failed"] > 0
        assert outcomes["ok"] > 0
        for email in emails:
            at_stripe = await stripe_copies(stripe_provider, email)
            at_mp = mp_copies(fake_mercadopago, email)
            if email in local:
                links = local[email].provider_customer_ids
                assert (at_stripe, at_mp) == ([links["stripe"]], [links["mercadopago"]])
            else:
                assert (at_stripe, at_mp) == ([], [])
