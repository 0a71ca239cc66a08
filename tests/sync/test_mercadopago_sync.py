"""Customers kept in step with MercadoPago through Billing (the fake server over HTTP, faults
from a loopback proxy): the create rules, the one-customer-per-email rule, webhooks, reconcile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from qzpay import Billing, Event
from qzpay.errors import ConflictError, ProviderSyncError, WebhookSignatureError
from qzpay.providers.base import ProviderEmailTaken
from qzpay.providers.mercadopago import MercadoPagoEmailTaken, MercadoPagoProvider
from tests.support.fake_mercadopago import FakeMercadoPago, NotificationReceiver, unique_email
from tests.support.fault_proxy import Fault, FaultProxy, RecordedRequest

if TYPE_CHECKING:
    from tests.support.mercadopago_fixtures import MercadoPagoFactory

CUSTOMERS = "/v1/customers"
SEARCH = "/v1/customers/search"


def mp_error(status: int, message: str, error: str) -> Fault:
    """An injected answer shaped like MercadoPago's errors."""
    body = {"message": message, "error": error, "status": status, "cause": []}
    return Fault.respond(status, json.dumps(body).encode())


SERVER_ERROR = mp_error(500, "internal_error", "internal_error")
RATE_LIMITED = mp_error(429, "too many requests", "too_many_requests")


def marker(customer_id: str) -> str:
    return f"qzpay_customer_id:{customer_id}"


def after_a(method: str, proxy: FaultProxy) -> Any:
    """A matcher that holds once the proxy has seen a request with ``method``."""

    def matches(_: RecordedRequest) -> bool:
        return any(r.method == method for r in proxy.requests)

    return matches


@pytest.fixture
async def synced(
    storage_url: str, proxied_mercadopago_provider: MercadoPagoProvider
) -> AsyncIterator[Billing]:
    async with Billing(storage=storage_url, provider=proxied_mercadopago_provider) as billing:
        yield billing


class TestHappyPath:
    async def test_create_update_delete(
        self, synced: Billing, fake_mercadopago: FakeMercadoPago
    ) -> None:
        email = unique_email("happy")
        customer = await synced.customers.create(
            email=email,
            name="Ana Souza",
            phone="+5511912345678",
            address={"line1": "Av. Paulista 1000", "city": "São Paulo", "postal_code": "01310"},
            metadata={"plan": "pro"},
        )
        pcid = customer.provider_customer_ids["mercadopago"]
        stored = fake_mercadopago.get(pcid)
        assert stored is not None
        assert (stored["email"], stored["first_name"], stored["last_name"]) == (
            email,
            "Ana",
            "Souza",
        )
        assert stored["phone"] == {"area_code": "55", "number": "11912345678"}
        assert stored["address"]["street_name"] == "Av. Paulista 1000"
        assert stored["description"] == marker(customer.id)
        found = await synced.customers.get_by_external_id(pcid, provider="mercadopago")
        assert found == customer

        updated = await synced.customers.update(
            customer.id, name="Ana Lima", metadata={"plan": "team"}
        )
        assert updated.metadata == {"plan": "team"}  # kept in qzpay only
        stored = fake_mercadopago.get(pcid)
        assert stored is not None
        assert (stored["first_name"], stored["last_name"]) == ("Ana", "Lima")

        await synced.customers.delete(customer.id)
        assert fake_mercadopago.get(pcid) is None
        deleted = await synced.customers.get(customer.id)
        assert deleted is not None
        assert deleted.deleted_at is not None


class TestEmailRule:
    """MercadoPago allows one customer per email: a create meeting one adopts it only if it
    was made outside qzpay and no local customer is linked to it; otherwise ConflictError."""

    async def test_a_customer_made_outside_qzpay_is_adopted(
        self, synced: Billing, fake_mercadopago: FakeMercadoPago
    ) -> None:
        email = unique_email("outsider")
        outsider = fake_mercadopago.add_customer(
            email=email, first_name="Someone", description="imported by hand"
        )
        events: list[Event] = []
        synced.on("*", events.append)

        customer = await synced.customers.create(
            email=email.upper(), name="Ana Souza", phone="+5511912345678"
        )

        assert customer.provider_customer_ids == {"mercadopago": outsider["id"]}
        [stored] = fake_mercadopago.customers(email)
        assert stored["id"] == outsider["id"]
        assert stored["description"] == marker(customer.id)
        assert (stored["first_name"], stored["last_name"]) == ("Ana", "Souza")
        assert stored["phone"] == {"area_code": "55", "number": "11912345678"}
        assert [e.type for e in events] == ["customer.created"]
        assert await synced.storage.list_sync_tasks(limit=10) == []
        assert (
            await synced.customers.get_by_external_id(outsider["id"], provider="mercadopago")
            == customer
        )

    async def test_one_linked_to_another_local_customer_is_a_conflict(
        self, synced: Billing, fake_mercadopago: FakeMercadoPago
    ) -> None:
        email = unique_email("claimed")
        outsider = fake_mercadopago.add_customer(email=email, first_name="Someone")
        holder = await synced.customers.create(email=unique_email("holder"))
        await synced.customers.unlink(holder.id, provider="mercadopago")
        await synced.customers.link(
            holder.id, provider="mercadopago", provider_customer_id=outsider["id"]
        )

        with pytest.raises(ConflictError) as caught:
            await synced.customers.create(email=email, idempotency_key="claimed-1")

        error = caught.value
        assert error.code == "provider_email_taken"
        assert isinstance(error, ProviderEmailTaken)
        assert not error.ambiguous
        assert holder.id in error.message
        assert fake_mercadopago.get(outsider["id"]) == outsider  # untouched
        assert (await synced.customers.list(email=email)).total == 0
        assert await synced.storage.list_sync_tasks(limit=10) == []

    async def test_one_of_another_qzpay_customer_is_a_conflict(
        self, synced: Billing, fake_mercadopago: FakeMercadoPago
    ) -> None:
        email = unique_email("taken")
        first = await synced.customers.create(email=email)

        with pytest.raises(MercadoPagoEmailTaken) as caught:
            await synced.customers.create(email=email)

        assert caught.value.code == "provider_email_taken"
        assert caught.value.existing is not None
        assert caught.value.existing.qzpay_customer_id == first.id
        assert [c["id"] for c in fake_mercadopago.customers(email)] == [
            first.provider_customer_ids["mercadopago"]
        ]
        assert (await synced.customers.list(email=email)).total == 1
        assert await synced.storage.list_sync_tasks(limit=10) == []

    @pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "unkeyed"])
    async def test_an_unsettled_adoption_is_finished_or_released_never_deleted(
        self,
        synced: Billing,
        fake_mercadopago: FakeMercadoPago,
        mercadopago_proxy: FaultProxy,
        keyed: bool,
    ) -> None:
        """The marking is applied but its answer lost, and looking for it fails too."""
        email = unique_email("limbo")
        outsider = fake_mercadopago.add_customer(email=email, first_name="Someone")
        mercadopago_proxy.inject(Fault.drop(), method="PUT", path=f"{CUSTOMERS}/{outsider['id']}")
        mercadopago_proxy.inject(
            SERVER_ERROR, method="GET", path=SEARCH, where=after_a("PUT", mercadopago_proxy)
        )

        with pytest.raises(ProviderSyncError) as caught:
            await synced.customers.create(
                email=email, name="Ana", idempotency_key="limbo-1" if keyed else None
            )

        assert caught.value.ambiguous
        (intent,) = await synced.storage.list_sync_tasks(limit=10)
        assert intent.customer.provider_customer_ids == {"mercadopago": outsider["id"]}  # noted
        assert (await synced.customers.list(include_deleted=True)).total == 0
        stored = fake_mercadopago.get(outsider["id"])
        assert stored is not None
        assert stored["description"] == marker(intent.customer_id)  # it did land

        report = await synced.customers.sync_pending()

        assert (report.completed, report.failed, report.remaining) == (1, 0, 0)
        stored = fake_mercadopago.get(outsider["id"])
        assert stored is not None  # never deleted: qzpay did not create it
        local = await synced.customers.get(intent.customer_id)
        if keyed:  # finished: linked to the adopted customer
            assert local is not None
            assert local.provider_customer_ids == {"mercadopago": outsider["id"]}
            assert stored["description"] == marker(local.id)
        else:  # undone: released, no longer carrying our id
            assert local is None
            assert not stored["description"]
        assert [c["id"] for c in fake_mercadopago.customers(email)] == [outsider["id"]]


class TestFaultStorm:
    async def test_no_duplicates_and_no_unlinked_customers(
        self,
        storage_url: str,
        make_mercadopago_provider: MercadoPagoFactory,
        mercadopago_proxy: FaultProxy,
        fake_mercadopago: FakeMercadoPago,
    ) -> None:
        """Creates through timeouts, dropped answers, resets, 5xx and 429 (and failing
        look-ups), retried with the caller's key when it has one, then ``sync_pending``."""
        provider = make_mercadopago_provider(api_base=mercadopago_proxy.url, timeout=0.3)
        rng = random.Random(5)
        faults = [Fault.drop(), Fault.reset(), SERVER_ERROR, RATE_LIMITED, Fault.delay(0.5)]
        outcomes: Counter[str] = Counter()
        emails: list[str] = []
        async with Billing(storage=storage_url, provider=provider) as billing:
            for i in range(40):
                if rng.random() < 0.45:
                    mercadopago_proxy.inject(rng.choice(faults), method="POST", path=CUSTOMERS)
                if rng.random() < 0.15:  # the look-up after an ambiguous failure fails too
                    mercadopago_proxy.inject(SERVER_ERROR, method="GET", path=SEARCH)
                key = f"storm-{i}-{rng.getrandbits(32)}" if i % 2 else None
                email = unique_email(f"storm{i}")
                emails.append(email)
                try:
                    await billing.customers.create(email=email, name="Ana", idempotency_key=key)
                    outcomes["ok"] += 1
                except ProviderSyncError:
                    outcomes["failed"] += 1
                    if key is not None:  # the caller retries with its key (it may fail again)
                        with contextlib.suppress(ProviderSyncError):
                            await billing.customers.create(
                                email=email, name="Ana", idempotency_key=key
                            )
            await asyncio.sleep(0.6)  # let delayed requests land before the final sweep
            mercadopago_proxy._rules.clear()
            report = await billing.customers.sync_pending()
            assert (report.failed, report.remaining) == (0, 0)
            local = {c.email: c async for c in billing.customers.iterate()}
            for customer in local.values():
                pcid = customer.provider_customer_ids["mercadopago"]
                assert await billing.customers.get_by_external_id(pcid) == customer

        assert outcomes["failed"] > 0
        assert outcomes["ok"] > 0
        for email in emails:
            remote = fake_mercadopago.customers(email)
            if email in local:  # linked, to its own and only copy
                assert [r["id"] for r in remote] == [
                    local[email].provider_customer_ids["mercadopago"]
                ]
                assert remote[0]["description"] == marker(local[email].id)
            else:  # no orphan
                assert remote == []


class TestWebhooks:
    @pytest.fixture
    async def hooked(
        self, storage_url: str, mercadopago_provider: MercadoPagoProvider
    ) -> AsyncIterator[Billing]:
        async with Billing(storage=storage_url, provider=mercadopago_provider) as billing:
            yield billing

    async def test_a_change_made_at_mercadopago_is_applied_once(
        self,
        hooked: Billing,
        make_mercadopago_provider: MercadoPagoFactory,
        fake_mercadopago: FakeMercadoPago,
        notification_receiver: NotificationReceiver,
    ) -> None:
        customer = await hooked.customers.create(
            email=unique_email("hook"), name="Local Name", metadata={"plan": "pro"}
        )
        pcid = customer.provider_customer_ids["mercadopago"]
        dashboard = make_mercadopago_provider()  # someone else, straight at MercadoPago
        edited = customer.model_copy(update={"name": "Edited There", "phone": "+5511912345678"})
        await dashboard.customers.update(pcid, customer, edited, idempotency_key="dash-1")
        notification = fake_mercadopago.notification(
            action="card.updated",
            type="automatic-payments",
            data={"customer_id": pcid, "new_card_id": 501, "old_card_id": 500},
        )
        assert await fake_mercadopago.deliver(notification_receiver.url, notification) == 200
        async with asyncio.timeout(10):
            delivery = await notification_receiver.next()
        events: list[Event] = []
        hooked.on("customer.updated", events.append)

        result = await hooked.webhooks.handle(
            "mercadopago", delivery.body, delivery.headers, query=delivery.query
        )

        assert (result.status, result.customer_id, result.event_type) == (
            "applied",
            customer.id,
            "card.updated",
        )
        local = await hooked.customers.get(customer.id)
        assert local is not None
        assert (local.name, local.phone) == ("Edited There", "+5511912345678")
        assert (local.email, local.metadata) == (customer.email, {"plan": "pro"})  # local only
        assert [e.previous for e in events] == [{"name": "Local Name", "phone": None}]
        again = await hooked.webhooks.handle(
            "mercadopago", delivery.body, delivery.headers, query=delivery.query
        )
        assert again.status == "duplicate"
        assert len(events) == 1

    async def test_the_signed_query_is_needed_and_checked(
        self,
        hooked: Billing,
        make_mercadopago_provider: MercadoPagoFactory,
        fake_mercadopago: FakeMercadoPago,
        notification_receiver: NotificationReceiver,
    ) -> None:
        customer = await hooked.customers.create(email=unique_email("gone"))
        pcid = customer.provider_customer_ids["mercadopago"]
        await make_mercadopago_provider().customers.delete(pcid, idempotency_key="dash-del")
        notification = fake_mercadopago.notification(
            action="customer.deleted", type="customer", data={"id": pcid}
        )
        await fake_mercadopago.deliver(notification_receiver.url, notification)
        async with asyncio.timeout(10):
            delivery = await notification_receiver.next()
        assert delivery.query["data.id"] == pcid

        for query in (None, {**delivery.query, "data.id": "1234567890-someoneelse"}):
            with pytest.raises(WebhookSignatureError):
                await hooked.webhooks.handle(
                    "mercadopago", delivery.body, delivery.headers, query=query
                )
        assert await hooked.customers.get(customer.id) == customer

        result = await hooked.webhooks.handle(
            "mercadopago", delivery.body, delivery.headers, query=delivery.query
        )
        assert result.status == "applied"
        local = await hooked.customers.get(customer.id)
        assert local is not None
        assert local.deleted_at is not None

    async def test_a_delivery_about_an_unknown_customer_is_ignored(
        self, hooked: Billing, fake_mercadopago: FakeMercadoPago
    ) -> None:
        notification = fake_mercadopago.notification(
            action="card.updated", type="automatic-payments", data={"customer_id": "1-nobody"}
        )
        args = (notification.body, notification.headers)
        first = await hooked.webhooks.handle("mercadopago", *args, query=notification.query)
        second = await hooked.webhooks.handle("mercadopago", *args, query=notification.query)
        assert (first.status, second.status) == ("ignored", "duplicate")


class TestReconcile:
    async def test_reports_then_fixes_with_the_email_rule(
        self,
        storage_url: str,
        make_mercadopago_provider: MercadoPagoFactory,
        isolated_mercadopago: FakeMercadoPago,
    ) -> None:
        """Against a private fake, so the report covers exactly this test's customers."""
        fake = isolated_mercadopago
        provider = make_mercadopago_provider(api_base=fake.url)
        async with Billing(storage=storage_url, provider=provider) as billing:
            in_sync = await billing.customers.create(
                email=unique_email("ok"), name="In Sync", address={"line1": "Rua A", "city": "X"}
            )
            drifted = await billing.customers.create(email=unique_email("drift"), name="Local")
            drift_pcid = drifted.provider_customer_ids["mercadopago"]
            await provider.customers.update(
                drift_pcid,
                drifted,
                drifted.model_copy(update={"name": "Edited"}),
                idempotency_key="rc-1",
            )
            unlinked = await billing.customers.create(email=unique_email("unlinked"))
            await billing.customers.unlink(unlinked.id, provider="mercadopago")
            # Its copy was deleted and someone re-created the email outside qzpay: adoptable.
            orphaned = await billing.customers.create(email=unique_email("orphaned"))
            await provider.customers.delete(
                orphaned.provider_customer_ids["mercadopago"], idempotency_key="rc-2"
            )
            await billing.customers.unlink(orphaned.id, provider="mercadopago")
            outsider = fake.add_customer(email=orphaned.email, first_name="Outside")
            # Same, but the email now belongs to another qzpay customer's copy: a conflict.
            blocked = await billing.customers.create(email=unique_email("blocked"))
            await provider.customers.delete(
                blocked.provider_customer_ids["mercadopago"], idempotency_key="rc-3"
            )
            await billing.customers.unlink(blocked.id, provider="mercadopago")
            squatter = fake.add_customer(email=blocked.email, description=marker(in_sync.id))

            report = await billing.customers.reconcile("mercadopago")
            assert not report.in_sync
            assert sorted(report.unlinked) == sorted([unlinked.id, orphaned.id, blocked.id])
            assert [(d.customer_id, d.fields) for d in report.drift] == [
                (drifted.id, {"name": ("Local", "Edited")})
            ]
            assert report.duplicates == {
                in_sync.id: [in_sync.provider_customer_ids["mercadopago"], squatter["id"]]
            }
            assert report.fixed == []

            fixed = await billing.customers.reconcile("mercadopago", fix=True)
            assert list(fixed.conflicts) == [blocked.id]
            after = await billing.customers.reconcile("mercadopago")
            assert after.unlinked == [blocked.id]
            assert after.drift == []
            stored = fake.get(drift_pcid)
            assert stored is not None
            assert stored["first_name"] == "Local"  # local values pushed over the drift
            relinked = await billing.customers.get(unlinked.id)
            assert relinked is not None
            assert relinked.provider_customer_ids == unlinked.provider_customer_ids
            adopted = await billing.customers.get(orphaned.id)
            assert adopted is not None
            assert adopted.provider_customer_ids == {"mercadopago": outsider["id"]}
            stored = fake.get(outsider["id"])
            assert stored is not None
            assert stored["description"] == marker(orphaned.id)
            assert fake.get(squatter["id"]) == squatter  # reported, never touched
