"""Idempotency keys on the wire: a key names one request to one provider object.

A provider that honours keys (Stripe, for 24 hours) answers a key it has seen with its first
answer, or refuses it if the request differs; a key reused for another request therefore means
a request that is silently not applied, or refused. Every request is recorded by the loopback
proxies in front of localstripe and the fake MercadoPago, and each test fails if one key was
sent with two different requests (method, path, body). The Stripe proxies also replay keys as
Stripe does (localstripe ignores them), so a reuse shows as the wrong outcome, too.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import stripe

from qzpay import Billing
from qzpay.customers.models import Customer
from qzpay.customers.sync import MAX_KEY_LENGTH, create_key, delete_key, update_key
from qzpay.errors import ProviderSyncError
from qzpay.providers import PaymentProvider
from tests.support.fake_mercadopago import FakeMercadoPago, running
from tests.support.fault_proxy import Fault, FaultProxy, RecordedRequest
from tests.support.stripe_fixtures import unique_email
from tests.support.stripe_sdk import live_at_stripe, stripe_copy
from tests.sync.test_mercadopago_sync import RATE_LIMITED, SERVER_ERROR, marker
from tests.sync.test_multi_provider import a_customer

if TYPE_CHECKING:
    from tests.support.mercadopago_fixtures import MercadoPagoFactory
    from tests.support.stripe_fixtures import ProviderFactory

CUSTOMERS = "/v1/customers"
SEARCH = "/v1/customers/search"
ONE_CUSTOMER = re.compile(r"/v1/customers/[^/]+")
MP_KEY = "x-idempotency-key"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
async def stripe_proxy(localstripe_url: str) -> AsyncIterator[FaultProxy]:
    """A proxy in front of localstripe that records every request and replays keys as Stripe."""
    async with FaultProxy(localstripe_url, replay_idempotency=True) as proxy:
        yield proxy


@pytest.fixture
async def mercadopago() -> AsyncIterator[tuple[FakeMercadoPago, FaultProxy]]:
    """A private fake that honours keys (as MercadoPago does for payments), behind a proxy."""
    with running(honour_idempotency=True) as fake:
        async with FaultProxy(fake.url) as proxy:
            yield fake, proxy


def keys_of(requests: list[RecordedRequest], header: str = "idempotency-key") -> list[str]:
    return [r.headers[header] for r in requests]


def assert_no_key_reused(proxy: FaultProxy, header: str = "idempotency-key") -> None:
    keyed = [r for r in proxy.requests if header in r.headers]
    assert keyed, "no keyed request was recorded"
    assert proxy.key_reuses(header) == {}
    assert all(header in r.headers for r in proxy.requests if r.method != "GET")


class TestKeys:
    def test_each_provider_object_has_its_own_delete_key(self) -> None:
        assert delete_key("cus_A") == delete_key("cus_A")
        assert delete_key("cus_A") != delete_key("cus_B")

    def test_a_create_key_is_stable_for_one_version_of_the_record(self) -> None:
        customer = a_customer(unique_email(), name="Ana")
        again = Customer.model_validate(customer.model_dump())  # as loaded by another process

        assert create_key(customer) == create_key(again)
        assert customer.id in create_key(customer)
        edited = customer.model_copy(
            update={"name": "Bia", "updated_at": customer.updated_at + timedelta(seconds=1)}
        )
        assert create_key(edited) != create_key(customer)
        touched = customer.model_copy(
            update={"updated_at": customer.updated_at + timedelta(microseconds=1)}
        )
        assert create_key(touched) != create_key(customer)  # e.g. unlinked since

    def test_update_keys_are_fresh_per_attempt(self) -> None:
        assert update_key("cus_A") != update_key("cus_A")

    def test_keys_fit_the_provider_limit(self) -> None:
        long_id = "cus_" + "x" * 251
        long_customer = a_customer(unique_email()).model_copy(update={"id": long_id})
        keys = [create_key(long_customer), create_key(long_id), delete_key(long_id)]
        keys.append(update_key(long_id))
        assert all(len(key) <= MAX_KEY_LENGTH for key in keys)
        assert len(set(keys)) == len(keys)
        assert create_key(long_customer) == create_key(long_customer)
        assert delete_key(long_id) == delete_key(long_id)


class TestStripe:
    async def test_reconcile_delete_of_leftover_copy_uses_its_own_key(
        self,
        storage_url: str,
        make_stripe_provider: ProviderFactory,
        stripe_proxy: FaultProxy,
        stripe_sdk: stripe.StripeClient,
    ) -> None:
        provider = make_stripe_provider(api_base=stripe_proxy.url)
        async with Billing(storage=storage_url, provider=provider) as billing:
            customer = await billing.customers.create(email=unique_email("leftover"))
            linked = customer.provider_customer_ids["stripe"]
            leftovers = [await stripe_copy(stripe_sdk, customer.email, customer.id)]
            leftovers.append(await stripe_copy(stripe_sdk, unique_email("other"), customer.id))
            await billing.customers.delete(customer.id)  # deletes the linked copy only

            report = await billing.customers.reconcile("stripe", fix=True)

            assert customer.id in report.deleted_locally_live_at_provider
            assert [await live_at_stripe(stripe_sdk, c) for c in [linked, *leftovers]] == [
                False,
                False,
                False,
            ]
            deletes = stripe_proxy.matching("DELETE")
            assert sorted(r.path for r in deletes) == sorted(
                f"{CUSTOMERS}/{c}" for c in [linked, *leftovers]
            )
            assert len(set(keys_of(deletes))) == 3
            assert_no_key_reused(stripe_proxy)
            again = await billing.customers.reconcile("stripe")
            assert customer.id not in again.deleted_locally_live_at_provider
            assert customer.id not in again.duplicates

    async def test_no_idempotency_key_is_reused_for_a_different_request(
        self,
        storage_url: str,
        make_stripe_provider: ProviderFactory,
        stripe_proxy: FaultProxy,
        stripe_sdk: stripe.StripeClient,
    ) -> None:
        proxy = stripe_proxy
        provider = make_stripe_provider(api_base=proxy.url)
        async with Billing(storage=storage_url, provider=provider) as billing:
            # Create, update (a change, its revert, the same change again), delete.
            customer = await billing.customers.create(email=unique_email("flows"), name="A")
            for name in ("B", "A", "B"):
                await billing.customers.update(customer.id, name=name, metadata={"n": name})
            await billing.customers.delete(customer.id)

            # An ambiguous create that never arrived, finished by a keyed retry: the same
            # request, so the same key (an ambiguous retry must be deduplicated).
            proxy.inject(Fault.reset(), method="POST", path=CUSTOMERS)
            args: dict[str, Any] = {"email": unique_email("keyed"), "idempotency_key": "keys-1"}
            with pytest.raises(ProviderSyncError):
                await billing.customers.create(**args)
            retried = await billing.customers.create(**args)
            first, second = proxy.matching("POST", CUSTOMERS)[-2:]
            assert (first.fault, second.fault) == ("reset", "pass")
            assert first.identity() == second.identity()
            assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
            assert retried.id in second.headers["idempotency-key"]
            assert await live_at_stripe(stripe_sdk, retried.provider_customer_ids["stripe"])

            # A create that landed unseen, undone by sync_pending (compensation).
            proxy.inject(Fault.drop(), method="POST", path=CUSTOMERS)
            proxy.inject(Fault.server_error(), method="GET", path=CUSTOMERS)
            with pytest.raises(ProviderSyncError):
                await billing.customers.create(email=unique_email("undone"))
            (intent,) = await billing.storage.list_sync_tasks(limit=10)
            made = proxy.matching("POST", CUSTOMERS)[-1]
            report = await billing.customers.sync_pending()
            assert (report.completed, report.remaining) == (1, 0)
            undo = proxy.matching("DELETE")[-1]
            assert undo.headers["idempotency-key"] == delete_key(undo.path.rsplit("/", 1)[1])
            assert made.form()["metadata[qzpay_customer_id]"] == intent.customer_id

            # Reconcile: drift pushed, leftover copies of a deleted customer deleted.
            drifted = await billing.customers.create(email=unique_email("drift"), name="Mine")
            pcid = drifted.provider_customer_ids["stripe"]
            await stripe_sdk.v1.customers.update_async(pcid, {"name": "Theirs"})
            gone = await billing.customers.create(email=unique_email("gone"))
            leftover = await stripe_copy(stripe_sdk, gone.email, gone.id)
            await billing.customers.delete(gone.id)
            await billing.customers.reconcile("stripe", fix=True)
            assert not await live_at_stripe(stripe_sdk, leftover)

        assert_no_key_reused(proxy)

    async def test_a_create_retried_after_an_edit_is_another_request(
        self,
        storage_url: str,
        make_stripe_provider: ProviderFactory,
        stripe_proxy: FaultProxy,
        stripe_sdk: stripe.StripeClient,
    ) -> None:
        """Log mode: a create that never arrived, then an edit before sync_pending. The
        create that finally goes out carries the new values, so it cannot carry the key of
        the first attempt (Stripe refuses a key reused with other parameters)."""
        provider = make_stripe_provider(api_base=stripe_proxy.url)
        async with Billing(
            storage=storage_url, provider=provider, provider_sync_errors="log"
        ) as billing:
            stripe_proxy.inject(Fault.reset(), method="POST", path=CUSTOMERS, times=2)
            customer = await billing.customers.create(email=unique_email("edited"), name="One")
            await billing.customers.update(customer.id, name="Two")
            report = await billing.customers.sync_pending()
            assert (report.completed, report.remaining) == (1, 0)
            synced = await billing.customers.get(customer.id)

        assert synced is not None
        creates = stripe_proxy.matching("POST", CUSTOMERS)
        assert [r.form()["name"] for r in creates] == ["One", "Two", "Two"]
        assert len(set(keys_of(creates))) == 2
        assert_no_key_reused(stripe_proxy)
        remote = await stripe_sdk.v1.customers.retrieve_async(
            synced.provider_customer_ids["stripe"]
        )
        assert remote.name == "Two"

    async def test_reconcile_recreates_a_deleted_copy_with_a_new_key(
        self,
        storage_url: str,
        make_stripe_provider: ProviderFactory,
        stripe_proxy: FaultProxy,
        stripe_sdk: stripe.StripeClient,
    ) -> None:
        """The copy was deleted at Stripe and the customer unlinked: the create reconcile
        sends is not the first create (Stripe would answer it with the deleted customer)."""
        provider = make_stripe_provider(api_base=stripe_proxy.url)
        async with Billing(storage=storage_url, provider=provider) as billing:
            customer = await billing.customers.create(email=unique_email("recreated"))
            first = customer.provider_customer_ids["stripe"]
            await stripe_sdk.v1.customers.delete_async(first)
            await billing.customers.unlink(customer.id, provider="stripe")

            report = await billing.customers.reconcile("stripe", fix=True)

            assert customer.id in report.unlinked
            relinked = await billing.customers.get(customer.id)
            assert relinked is not None
            second = relinked.provider_customer_ids["stripe"]
            assert second != first
            assert await live_at_stripe(stripe_sdk, second)
        first_create, second_create = stripe_proxy.matching("POST", CUSTOMERS)
        assert first_create.form() == second_create.form()  # the same values...
        assert keys_of([first_create]) != keys_of([second_create])  # ...another object
        assert_no_key_reused(stripe_proxy)


class TestMercadoPago:
    async def test_no_mercadopago_idempotency_key_is_reused_for_a_different_request(
        self,
        storage_url: str,
        make_stripe_provider: ProviderFactory,
        make_mercadopago_provider: MercadoPagoFactory,
        stripe_proxy: FaultProxy,
        mercadopago: tuple[FakeMercadoPago, FaultProxy],
    ) -> None:
        fake, mp_proxy = mercadopago
        providers: list[PaymentProvider] = [
            make_stripe_provider(api_base=stripe_proxy.url),
            make_mercadopago_provider(api_base=mp_proxy.url),
        ]
        # Copies made outside qzpay, through the SDK, straight to the fake.
        outside = make_mercadopago_provider(api_base=fake.url)
        async with Billing(storage=storage_url, provider=providers) as billing:
            customer = await billing.customers.create(email=unique_email("mp"), name="A")
            for name in ("B", "A", "B"):
                await billing.customers.update(customer.id, name=name)
            # A change refused by MercadoPago is reverted at Stripe, then made again.
            mp_proxy.inject(RATE_LIMITED, method="PUT", path=ONE_CUSTOMER)
            with pytest.raises(ProviderSyncError):
                await billing.customers.update(customer.id, name="C")
            await billing.customers.update(customer.id, name="C")
            await billing.customers.delete(customer.id)

            # Refused at MercadoPago: the Stripe copy is undone (compensation).
            mp_proxy.inject(RATE_LIMITED, method="POST", path=CUSTOMERS)
            with pytest.raises(ProviderSyncError):
                await billing.customers.create(email=unique_email("undone"))

            # Ambiguous at MercadoPago, settled by sync_pending: finished (keyed), undone
            # (unkeyed, landed).
            mp_proxy.inject(SERVER_ERROR, method="POST", path=CUSTOMERS)
            with pytest.raises(ProviderSyncError):
                await billing.customers.create(email=unique_email("keyed"), idempotency_key="k")
            mp_proxy.inject(Fault.drop(), method="POST", path=CUSTOMERS)
            mp_proxy.inject(SERVER_ERROR, method="GET", path=SEARCH)
            with pytest.raises(ProviderSyncError):
                await billing.customers.create(email=unique_email("unkeyed"))
            report = await billing.customers.sync_pending()
            assert (report.completed, report.remaining) == (2, 0)

            # Reconcile: leftover copies of a deleted customer, each deleted.
            gone = await billing.customers.create(email=unique_email("gone"))
            copies = [
                (await outside.customers.create(c, idempotency_key=f"outside-{c.email}")).id
                for c in (
                    gone.model_copy(update={"email": unique_email("copy1")}),
                    gone.model_copy(update={"email": unique_email("copy2")}),
                )
            ]
            await billing.customers.delete(gone.id)
            fixed = await billing.customers.reconcile("mercadopago", fix=True)
            assert gone.id in fixed.deleted_locally_live_at_provider
            assert [fake.get(c) for c in copies] == [None, None]
            assert all(c["description"] != marker(gone.id) for c in fake.customers())

        assert fake.key_reuses() == {}
        assert_no_key_reused(mp_proxy, MP_KEY)
        assert_no_key_reused(stripe_proxy)

    async def test_a_mercadopago_create_retried_after_an_edit_is_another_request(
        self,
        storage_url: str,
        make_mercadopago_provider: MercadoPagoFactory,
        mercadopago: tuple[FakeMercadoPago, FaultProxy],
    ) -> None:
        fake, mp_proxy = mercadopago
        provider = make_mercadopago_provider(api_base=mp_proxy.url)
        async with Billing(
            storage=storage_url, provider=provider, provider_sync_errors="log"
        ) as billing:
            mp_proxy.inject(Fault.reset(), method="POST", path=CUSTOMERS, times=2)
            customer = await billing.customers.create(email=unique_email("edited"), name="One")
            await billing.customers.update(customer.id, name="Two")
            report = await billing.customers.sync_pending()
            assert (report.completed, report.remaining) == (1, 0)
            synced = await billing.customers.get(customer.id)

        assert synced is not None
        creates = mp_proxy.matching("POST", CUSTOMERS)
        assert [r.headers.get(MP_KEY) is not None for r in creates] == [True] * 3
        assert len(set(keys_of(creates, MP_KEY))) == 2
        assert_no_key_reused(mp_proxy, MP_KEY)
        assert fake.key_reuses() == {}
        stored = fake.get(synced.provider_customer_ids["mercadopago"])
        assert stored is not None
        assert stored["first_name"] == "Two"

    async def test_no_key_is_reused_under_random_faults(
        self,
        storage_url: str,
        make_stripe_provider: ProviderFactory,
        make_mercadopago_provider: MercadoPagoFactory,
        stripe_proxy: FaultProxy,
        mercadopago: tuple[FakeMercadoPago, FaultProxy],
    ) -> None:
        fake, mp_proxy = mercadopago
        providers: list[PaymentProvider] = [
            make_stripe_provider(api_base=stripe_proxy.url),
            make_mercadopago_provider(api_base=mp_proxy.url, timeout=0.3),
        ]
        rng = random.Random(11)
        stripe_faults = [Fault.drop(), Fault.server_error(), Fault.rate_limited(), Fault.reset()]
        mp_faults = [Fault.drop(), Fault.reset(), SERVER_ERROR, RATE_LIMITED]
        async with Billing(storage=storage_url, provider=providers) as billing:
            for i in range(12):
                if rng.random() < 0.3:
                    stripe_proxy.inject(rng.choice(stripe_faults), method="POST")
                if rng.random() < 0.3:
                    mp_proxy.inject(rng.choice(mp_faults), method=rng.choice(["POST", "PUT"]))
                if rng.random() < 0.15:
                    stripe_proxy.inject(Fault.server_error(), method="DELETE")
                key = f"storm-{i}" if i % 2 else None
                with contextlib.suppress(ProviderSyncError):
                    made = await billing.customers.create(
                        email=unique_email(f"storm{i}"), name="Ana", idempotency_key=key
                    )
                    await billing.customers.update(made.id, name="Bia")
                    if i % 3 == 0:
                        await billing.customers.delete(made.id)
            stripe_proxy._rules.clear()
            mp_proxy._rules.clear()
            report = await billing.customers.sync_pending()
            assert (report.failed, report.remaining) == (0, 0)

        assert fake.key_reuses() == {}
        assert mp_proxy.key_reuses(MP_KEY) == {}
        assert stripe_proxy.key_reuses() == {}
