"""POST /webhooks/stripe on a real uvicorn server, fed by localstripe's own signed deliveries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from qzpay import Billing
from qzpay.api import APIKeyAuth, create_app
from qzpay.api.server import app_from_env
from qzpay.api.webhook_routes import MAX_WEBHOOK_BODY
from qzpay.config import ConfigError
from qzpay.customers.models import Customer
from qzpay.providers.stripe import StripeProvider
from tests.api.live import API_KEY, LiveServer, serving
from tests.api.test_routes import assert_problem
from tests.support.localstripe import API_KEY as STRIPE_KEY
from tests.support.localstripe import mute_webhook, register_webhook
from tests.support.stripe_fixtures import WEBHOOK_SECRET, unique_email
from tests.support.webhook_receiver import Delivery, WebhookReceiver

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CUSTOMER_EVENTS = ["customer.updated", "customer.deleted"]


def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header, computed as Stripe does."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass
class Hooked:
    """The API server, Stripe (localstripe) posting customer events straight to it, and a
    receiver that gets a copy of every delivery (to replay them)."""

    server: LiveServer
    http: httpx.AsyncClient  # with the API key
    receiver: WebhookReceiver


@pytest.fixture
async def hooked(
    storage_url: str, localstripe_url: str, webhook_receiver: WebhookReceiver
) -> AsyncIterator[Hooked]:
    provider = StripeProvider(STRIPE_KEY, webhook_secret=WEBHOOK_SECRET, api_base=localstripe_url)
    billing = Billing(storage_url, provider=provider)  # the app closes both
    names = [f"qzpay-api-{os.urandom(4).hex()}" for _ in range(2)]
    with serving(create_app(billing, auth=APIKeyAuth(API_KEY)), billing) as server:
        try:
            for name, url in zip(
                names, [f"{server.base_url}/webhooks/stripe", webhook_receiver.url], strict=True
            ):
                await register_webhook(
                    localstripe_url, name, url=url, secret=WEBHOOK_SECRET, events=CUSTOMER_EVENTS
                )
            async with httpx.AsyncClient(
                base_url=server.base_url,
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=30,
            ) as http:
                yield Hooked(server, http, webhook_receiver)
        finally:
            for name in names:
                await mute_webhook(localstripe_url, name)


async def create_customer(http: httpx.AsyncClient, **fields: Any) -> Customer:
    response = await http.post("/customers", json={"email": unique_email("hook"), **fields})
    assert response.status_code == 201, response.text
    return Customer.model_validate(response.json())


async def wait_for_customer(
    http: httpx.AsyncClient, customer_id: str, *, name: str, within: float = 15
) -> dict[str, Any]:
    """Poll GET /customers/{id} until its name is ``name`` (bounded)."""
    deadline = time.monotonic() + within
    while True:
        body: dict[str, Any] = (await http.get(f"/customers/{customer_id}")).json()
        if body["name"] == name:
            return body
        assert time.monotonic() < deadline, f"the webhook never arrived: {body}"
        await asyncio.sleep(0.1)


async def copy_of(receiver: WebhookReceiver, stripe_id: str, kind: str) -> Delivery:
    def about(delivery: Delivery) -> bool:
        event = json.loads(delivery.body)
        return bool(event["type"] == kind and event["data"]["object"]["id"] == stripe_id)

    async with asyncio.timeout(15):
        return await receiver.wait_for(about)


async def customer_events(http: httpx.AsyncClient, customer_id: str) -> list[str]:
    events = (await http.get("/events", params={"limit": 1000})).json()["data"]
    return [e["type"] for e in events if e["data"]["id"] == customer_id]


class TestDeliveriesFromStripe:
    async def test_a_change_made_at_stripe_arrives_and_a_replay_is_a_duplicate(
        self, hooked: Hooked, stripe_provider: StripeProvider
    ) -> None:
        customer = await create_customer(hooked.http, name="Local")
        pcid = customer.provider_customer_ids["stripe"]
        edited = customer.model_copy(update={"name": "From Dashboard", "metadata": {"vip": "y"}})
        await stripe_provider.customers.update(pcid, customer, edited, idempotency_key=pcid + "-e")

        # localstripe signs and POSTs customer.updated to /webhooks/stripe by itself.
        shown = await wait_for_customer(hooked.http, customer.id, name="From Dashboard")
        assert shown["metadata"] == {"vip": "y"}
        assert await customer_events(hooked.http, customer.id) == [
            "customer.created",
            "customer.updated",
        ]

        delivery = await copy_of(hooked.receiver, pcid, "customer.updated")
        headers = {
            name: value
            for name, value in delivery.headers.items()
            if name.lower() in ("content-type", "stripe-signature")
        }
        async with httpx.AsyncClient(base_url=hooked.server.base_url) as anonymous:
            replay = await anonymous.post(
                "/webhooks/stripe", content=delivery.body, headers=headers
            )
        assert replay.status_code == 200, replay.text
        assert replay.json() == {"status": "duplicate", "event_id": json.loads(delivery.body)["id"]}
        assert len(await customer_events(hooked.http, customer.id)) == 2

    async def test_untrusted_deliveries_are_400_and_change_nothing(self, hooked: Hooked) -> None:
        customer = await create_customer(hooked.http, name="Safe")
        pcid = customer.provider_customer_ids["stripe"]
        body = json.dumps(
            {"id": "evt_forged_1", "type": "customer.deleted", "data": {"object": {"id": pcid}}}
        ).encode()
        attempts: list[tuple[bytes, dict[str, str]]] = [
            (body, {"Stripe-Signature": sign(body, secret="whsec_attacker")}),  # forged
            (body, {"Stripe-Signature": sign(body, timestamp=int(time.time()) - 3600)}),  # stale
            (body, {}),  # missing
            (body, {"Stripe-Signature": "t=1,v1=garbage"}),
            (body.replace(b"deleted", b"updated"), {"Stripe-Signature": sign(body)}),  # tampered
        ]
        async with httpx.AsyncClient(base_url=hooked.server.base_url) as anonymous:
            for payload, headers in attempts:
                response = await anonymous.post(
                    "/webhooks/stripe", content=payload, headers=headers
                )
                problem = assert_problem(response, 400, "webhook_signature_invalid")
                assert problem["instance"] == "/webhooks/stripe"
                assert WEBHOOK_SECRET not in response.text
        after = await hooked.http.get(f"/customers/{customer.id}")
        assert Customer.model_validate(after.json()) == customer
        assert await customer_events(hooked.http, customer.id) == ["customer.created"]

    async def test_signed_event_about_an_unknown_customer_is_ignored_once(
        self, hooked: Hooked
    ) -> None:
        body = json.dumps(
            {
                "id": f"evt_{os.urandom(6).hex()}",
                "type": "customer.updated",
                "data": {"object": {"id": "cus_nobody_here"}},
            }
        ).encode()
        async with httpx.AsyncClient(base_url=hooked.server.base_url) as anonymous:
            statuses = [
                (
                    await anonymous.post(
                        "/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body)}
                    )
                ).json()["status"]
                for _ in range(2)
            ]
        assert statuses == ["ignored", "duplicate"]


class TestRoute:
    """Routing, limits and configuration (no deliveries from localstripe needed)."""

    @pytest.fixture
    def live(self, tmp_path: Path) -> Iterator[LiveServer]:
        provider = StripeProvider(
            STRIPE_KEY, webhook_secret=WEBHOOK_SECRET, api_base="http://127.0.0.1:9"
        )
        billing = Billing(f"sqlite:///{tmp_path / 'w.db'}", provider=provider)
        with serving(create_app(billing, auth=APIKeyAuth(API_KEY)), billing) as server:
            yield server

    def test_unknown_provider_is_404_and_bad_names_422(self, live: LiveServer) -> None:
        with live.client(None) as anonymous:
            unknown = anonymous.post("/webhooks/paypal", content=b"{}")
            assert_problem(unknown, 404, "not_found")
            assert "paypal" in unknown.json()["detail"]
            invalid = anonymous.post("/webhooks/" + "x" * 65, content=b"{}")
            assert_problem(invalid, 422, "validation_error")
            assert anonymous.get("/webhooks/stripe").status_code == 405

    def test_a_body_over_the_limit_is_413_unread(self, live: LiveServer) -> None:
        huge = b"{" + b" " * MAX_WEBHOOK_BODY + b"}"
        with live.client(None) as anonymous:
            response = anonymous.post(
                "/webhooks/stripe", content=huge, headers={"Stripe-Signature": sign(huge)}
            )

            def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds streaming too
                yield huge

            streamed = anonymous.post("/webhooks/stripe", content=chunks())
        assert_problem(response, 413, "payload_too_large")
        assert_problem(streamed, 413, "payload_too_large")

    def test_without_a_webhook_secret_it_is_a_500_without_details(self, tmp_path: Path) -> None:
        provider = StripeProvider(STRIPE_KEY, api_base="http://127.0.0.1:9")
        billing = Billing(f"sqlite:///{tmp_path / 'n.db'}", provider=provider)
        with serving(create_app(billing, auth=None), billing) as live, live.client(None) as http:
            body = b'{"id": "evt_1", "type": "customer.updated"}'
            response = http.post(
                "/webhooks/stripe", content=body, headers={"Stripe-Signature": "x"}
            )
        problem = assert_problem(response, 500, "configuration_error")
        assert "webhook_secret" not in problem["detail"]


class TestFromEnvironment:
    def test_app_from_env_enables_stripe_and_its_webhooks(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, localstripe_url: str
    ) -> None:
        monkeypatch.setenv("QZPAY_API_KEY", API_KEY)
        monkeypatch.setenv("QZPAY_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
        monkeypatch.setenv("STRIPE_API_KEY", STRIPE_KEY)
        monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        monkeypatch.setenv("STRIPE_API_BASE", localstripe_url)
        monkeypatch.delenv("QZPAY_PROVIDER_SYNC_ERRORS", raising=False)
        with serving(app_from_env()) as live, live.client() as http:
            created = http.post("/customers", json={"email": unique_email("env")})
            assert created.status_code == 201, created.text
            assert created.json()["provider_customer_ids"]["stripe"].startswith("cus_")
            body = json.dumps(
                {"id": f"evt_{os.urandom(6).hex()}", "type": "invoice.paid", "data": {}}
            ).encode()
            receipt = http.post(
                "/webhooks/stripe",
                content=body,
                headers={"Stripe-Signature": sign(body), "Authorization": ""},
            )
            assert receipt.status_code == 200, receipt.text
            assert receipt.json()["status"] == "ignored"

    def test_app_from_env_refuses_a_bad_provider_setting(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("QZPAY_API_KEY", API_KEY)
        monkeypatch.delenv("STRIPE_API_KEY", raising=False)
        monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_do_not_print_me")
        with pytest.raises(ConfigError, match="STRIPE_API_KEY is not") as failure:
            app_from_env()
        assert "whsec_do_not_print_me" not in str(failure.value)
