"""``billing.webhooks.handle`` hardening (issue 10): a delivery that can never succeed raises a
typed, permanent error (WebhookSignatureError, or its subclass WebhookPayloadError for the
body) before anything touches storage, and is logged as rejected.

Stripe on localstripe, MercadoPago on the fake MercadoPago, over SQLite and PostgreSQL; the
payloads are signed here, independently of the code under test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from qzpay import Billing
from qzpay.errors import QZPayError, WebhookPayloadError, WebhookSignatureError
from qzpay.providers.base import PaymentProvider
from qzpay.providers.mercadopago import MercadoPagoProvider
from qzpay.providers.stripe import StripeProvider
from qzpay.webhooks import WebhookResult
from tests.support.fake_mercadopago import ACCESS_TOKEN as MP_TOKEN
from tests.support.fake_mercadopago import WEBHOOK_SECRET as MP_SECRET
from tests.support.fake_mercadopago import FakeMercadoPago
from tests.support.fake_mercadopago import sign as mp_sign
from tests.support.localstripe import API_KEY as STRIPE_KEY
from tests.support.stripe_fixtures import WEBHOOK_SECRET as STRIPE_SECRET

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOLERANCE = 300
DEPTH = 100_000
REQUEST_ID = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def billing(
    storage_url: str, localstripe_url: str, fake_mercadopago: FakeMercadoPago
) -> AsyncIterator[Billing]:
    providers: list[PaymentProvider] = [
        StripeProvider(
            STRIPE_KEY,
            webhook_secret=STRIPE_SECRET,
            api_base=localstripe_url,
            webhook_tolerance=TOLERANCE,
        ),
        MercadoPagoProvider(
            MP_TOKEN,
            webhook_secret=MP_SECRET,
            api_base=fake_mercadopago.url,
            webhook_tolerance=TOLERANCE,
        ),
    ]
    try:
        async with Billing(storage=storage_url, provider=providers) as instance:
            yield instance
    finally:
        for provider in providers:
            await provider.close()


def stripe_sign(payload: bytes, *, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(STRIPE_SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def stripe_event(event_id: str | None = None, **fields: Any) -> bytes:
    event = {
        "id": f"evt_{os.urandom(6).hex()}" if event_id is None else event_id,
        "type": "customer.updated",
        "data": {"object": {"object": "customer", "id": "cus_nobody_here"}},
        **fields,
    }
    return json.dumps(event).encode()


def mp_notification(notification_id: object = None, **fields: Any) -> bytes:
    body = {
        "id": int.from_bytes(os.urandom(5), "big") if notification_id is None else notification_id,
        "type": "automatic-payments",
        "action": "card.updated",
        "data": {"customer_id": "1234-nobody"},
        **fields,
    }
    return json.dumps(body).encode()


def mp_headers(
    *, ts: int | None = None, request_id: str = REQUEST_ID, data_id: str | None = None
) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    signature = mp_sign(MP_SECRET, data_id=data_id, request_id=request_id, ts=ts)
    return {"x-signature": signature, "x-request-id": request_id}


async def stripe(billing: Billing, body: bytes, signature: str | None = None) -> WebhookResult:
    signature = stripe_sign(body) if signature is None else signature
    return await billing.webhooks.handle("stripe", body, {"Stripe-Signature": signature})


async def mercadopago(
    billing: Billing,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
) -> WebhookResult:
    headers = mp_headers() if headers is None else headers
    return await billing.webhooks.handle("mercadopago", body, headers, query=query)


def rejections(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "qzpay.webhooks"]


async def test_well_signed_deliveries_are_accepted(billing: Billing) -> None:
    """The control: what the tests below break is the only thing wrong with them."""
    assert (await stripe(billing, stripe_event())).status == "ignored"
    assert (await mercadopago(billing, mp_notification())).status == "ignored"


async def test_non_ascii_signature_is_a_400(
    billing: Billing, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="qzpay.webhooks")
    now = int(time.time())
    body = stripe_event()
    good = stripe_sign(body, timestamp=now)
    for header in (
        f"t={now},v1=é",
        f"{good},v1=é",
        f"t={now},v1=\udc80",
        f"{good}\x00",
        f"{good}\n",
        f"t=١٧٠٠٠٠٠٠٠٠,{good.split(',')[1]}",
    ):
        with pytest.raises(WebhookSignatureError) as caught:
            await stripe(billing, body, header)
        assert type(caught.value) is WebhookSignatureError
        assert caught.value.code == "webhook_signature_invalid"
    mp_body = mp_notification()
    for mp_header in (f"ts={now},v1=é", f"ts=²,v1={'0' * 64}", f"ts={now},v1=\ud800"):
        with pytest.raises(WebhookSignatureError) as caught:
            await mercadopago(billing, mp_body, {"x-signature": mp_header})
        assert type(caught.value) is WebhookSignatureError
    signed = mp_headers(ts=now)
    for headers, query in (
        ({**signed, "x-request-id": "req-\ud800"}, None),
        (signed, {"data.id": "\udfff"}),
    ):
        with pytest.raises(WebhookSignatureError) as caught:
            await mercadopago(billing, mp_body, headers, query)
        assert type(caught.value) is WebhookSignatureError
    assert len(rejections(caplog)) == 6 + 3 + 2
    assert all(r.levelno == logging.WARNING for r in rejections(caplog))


@pytest.mark.parametrize("kind", ["array", "object"])
async def test_deeply_nested_signed_body_is_a_400_and_recorded(
    billing: Billing, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    caplog.set_level(logging.WARNING, logger="qzpay.webhooks")
    nested = "[" * DEPTH + "]" * DEPTH if kind == "array" else '{"a":' * DEPTH + "1" + "}" * DEPTH
    stripe_body = f'{{"id": "evt_deep", "type": "customer.updated", "data": {nested}}}'.encode()
    mp_body = f'{{"id": 1, "action": "card.updated", "data": {nested}}}'.encode()

    with pytest.raises(WebhookPayloadError, match="nested too deeply") as caught:
        await stripe(billing, stripe_body)
    assert caught.value.code == "webhook_payload_invalid"
    with pytest.raises(WebhookPayloadError, match="nested too deeply"):
        await mercadopago(billing, mp_body)

    records = rejections(caplog)
    assert [(r.levelno, getattr(r, "provider", None)) for r in records] == [
        (logging.WARNING, "stripe"),
        (logging.WARNING, "mercadopago"),
    ]
    assert all(getattr(r, "code", None) == "webhook_payload_invalid" for r in records)
    assert all("nested too deeply" in getattr(r, "reason", "") for r in records)
    # Nothing durable: a valid delivery with the same id is new, not a duplicate.
    assert (await stripe(billing, stripe_event("evt_deep"))).status == "ignored"


async def test_event_id_with_nul_is_a_permanent_400_on_postgres(billing: Billing) -> None:
    body = stripe_event("evt_\x00nul")
    for _ in range(2):  # a retry meets the same typed error, never a StorageError
        with pytest.raises(WebhookPayloadError, match="NUL"):
            await stripe(billing, body)
    with pytest.raises(WebhookPayloadError, match="NUL"):
        await mercadopago(billing, mp_notification("12\x0034"))
    assert (await stripe(billing, stripe_event("evt_nul"))).status == "ignored"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(stripe_event("evt_\ud800"), id="id-lone-surrogate"),
        pytest.param(stripe_event("evt_" + "x" * 252), id="id-256-characters"),
        pytest.param(stripe_event(type="customer.\x00updated"), id="type-nul"),
        pytest.param(
            stripe_event(data={"object": {"object": "customer", "id": "cus_\x00"}}),
            id="customer-id-nul",
        ),
        pytest.param(
            stripe_event(data={"object": {"object": "card", "customer": "cus_\udfff"}}),
            id="customer-id-lone-surrogate",
        ),
        pytest.param(b"\xff", id="invalid-utf8"),
        pytest.param(b'{"id": "evt_1"', id="invalid-json"),
        pytest.param(b"[]", id="not-an-object"),
    ],
)
async def test_unstorable_or_unreadable_stripe_event_is_a_payload_error(
    billing: Billing, body: bytes
) -> None:
    with pytest.raises(WebhookPayloadError):
        await stripe(billing, body)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(mp_notification("\ud800"), id="id-lone-surrogate"),
        pytest.param(mp_notification(10**300), id="id-301-digits"),
        pytest.param(mp_notification(action="card.\x00updated"), id="type-nul"),
        pytest.param(mp_notification(data={"customer_id": "1\x002"}), id="customer-id-nul"),
        pytest.param(b"\xff", id="invalid-utf8"),
        pytest.param(b"{", id="invalid-json"),
        pytest.param(b'"1"', id="not-an-object"),
    ],
)
async def test_unstorable_or_unreadable_mercadopago_notification_is_a_payload_error(
    billing: Billing, body: bytes
) -> None:
    with pytest.raises(WebhookPayloadError):
        await mercadopago(billing, body)


async def test_signature_from_the_future_is_rejected(billing: Billing) -> None:
    now = int(time.time())
    body = stripe_event()
    for ahead in (TOLERANCE + 60, 10**9):
        with pytest.raises(WebhookSignatureError, match="tolerance") as caught:
            await stripe(billing, body, stripe_sign(body, timestamp=now + ahead))
        assert type(caught.value) is WebhookSignatureError
    for ts in (now + TOLERANCE + 60, (now + TOLERANCE + 60) * 1000):
        with pytest.raises(WebhookSignatureError, match="tolerance"):
            await mercadopago(billing, mp_notification(), mp_headers(ts=ts))
    # Within the window, either way, is accepted.
    for skew in (-(TOLERANCE - 60), TOLERANCE - 60):
        accepted = await stripe(billing, body, stripe_sign(body, timestamp=now + skew))
        assert accepted.status in ("ignored", "duplicate")
        notification = await mercadopago(billing, mp_notification(), mp_headers(ts=now + skew))
        assert notification.status == "ignored"


async def test_payload_errors_are_permanent_signature_errors() -> None:
    """Existing ``except WebhookSignatureError`` handlers (answering 400) catch them too."""
    assert issubclass(WebhookPayloadError, WebhookSignatureError)
    assert issubclass(WebhookPayloadError, QZPayError)
    assert WebhookPayloadError("x").code == "webhook_payload_invalid"
