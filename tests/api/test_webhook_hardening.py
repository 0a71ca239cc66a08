"""POST /webhooks/{provider} hardening (issue 10): every delivery that can never succeed is a
permanent 400 problem, never a 500 or a retryable 503.

A real uvicorn server over SQLite and PostgreSQL, with Stripe on localstripe and MercadoPago on
the fake MercadoPago; payloads are signed here, independently of the code under test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qzpay import Billing
from qzpay.api import APIKeyAuth, create_app
from qzpay.providers.base import PaymentProvider
from qzpay.providers.mercadopago import MercadoPagoProvider
from qzpay.providers.stripe import StripeProvider
from tests.api.live import API_KEY, LiveServer, serving
from tests.api.test_routes import assert_problem
from tests.support.fake_mercadopago import ACCESS_TOKEN as MP_TOKEN
from tests.support.fake_mercadopago import WEBHOOK_SECRET as MP_SECRET
from tests.support.fake_mercadopago import FakeMercadoPago
from tests.support.fake_mercadopago import sign as mp_sign
from tests.support.localstripe import API_KEY as STRIPE_KEY
from tests.support.stripe_fixtures import WEBHOOK_SECRET as STRIPE_SECRET

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOLERANCE = 300
DEPTH = 100_000
SIGNATURE_INVALID = "webhook_signature_invalid"
PAYLOAD_INVALID = "webhook_payload_invalid"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides the suite's backend: the stores that refuse NUL (PostgreSQL) and one that
    does not (SQLite); memory keeps nothing a provider could retry into."""
    return str(request.param)


@pytest.fixture
def live(
    storage_url: str, localstripe_url: str, fake_mercadopago: FakeMercadoPago
) -> Iterator[LiveServer]:
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
    billing = Billing(storage_url, provider=providers)  # the app closes it and them
    with serving(create_app(billing, auth=APIKeyAuth(API_KEY)), billing) as server:
        yield server


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client(None) as client:  # providers have no API key
        yield client


def stripe_sign(payload: bytes, *, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header, computed as Stripe does."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(STRIPE_SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def stripe_event(event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"evt_{os.urandom(6).hex()}" if event_id is None else event_id,
        "type": "customer.updated",
        "data": {"object": {"object": "customer", "id": "cus_nobody_here"}},
        **fields,
    }


def post_stripe(
    http: httpx.Client, body: bytes, signature: str | bytes | None = None
) -> httpx.Response:
    signature = stripe_sign(body) if signature is None else signature
    return http.post(
        "/webhooks/stripe", content=body, headers={b"Stripe-Signature": raw(signature)}
    )


def mp_notification(notification_id: object = None, **fields: Any) -> bytes:
    return json.dumps(
        {
            "id": notification_number() if notification_id is None else notification_id,
            "type": "automatic-payments",
            "action": "card.updated",
            "data": {"customer_id": "1234-nobody"},
            **fields,
        }
    ).encode()


def notification_number() -> int:
    return int.from_bytes(os.urandom(5), "big")


def post_mp(
    http: httpx.Client,
    body: bytes,
    *,
    ts: int | str | None = None,
    signature: str | bytes | None = None,
    request_id: str | bytes = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e",
) -> httpx.Response:
    if signature is None:
        assert isinstance(request_id, str)
        signature = mp_sign(
            MP_SECRET,
            data_id=None,
            request_id=request_id,
            ts=int(time.time()) if ts is None else ts,
        )
    return http.post(
        "/webhooks/mercadopago",
        content=body,
        headers={b"x-signature": raw(signature), b"x-request-id": raw(request_id)},
    )


def raw(value: str | bytes) -> bytes:
    """A header value as bytes, sent as given (a str is sent as UTF-8, as a client may)."""
    return value.encode() if isinstance(value, str) else value


def assert_permanent(response: httpx.Response, code: str) -> dict[str, Any]:
    """A 400 problem: the provider must not retry it (no 5xx, no Retry-After)."""
    problem = assert_problem(response, 400, code)
    assert "retry-after" not in response.headers
    assert STRIPE_SECRET not in response.text
    assert MP_SECRET not in response.text
    return problem


def rejections(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The structured records of rejected deliveries (the only record a rejection leaves)."""
    return [r for r in caplog.records if r.name == "qzpay.webhooks"]


def deep(kind: str) -> str:
    if kind == "array":
        return "[" * DEPTH + "]" * DEPTH
    return '{"a":' * DEPTH + "1" + "}" * DEPTH


class TestSignatureHeaders:
    def test_the_setup_accepts_well_signed_deliveries(self, http: httpx.Client) -> None:
        """The control: what the tests below break is the only thing wrong with them."""
        stripe = post_stripe(http, json.dumps(stripe_event()).encode())
        mercadopago = post_mp(http, mp_notification())
        assert (stripe.status_code, stripe.json()["status"]) == (200, "ignored"), stripe.text
        assert (mercadopago.status_code, mercadopago.json()["status"]) == (200, "ignored")

    def test_non_ascii_signature_is_a_400(self, http: httpx.Client) -> None:
        now = int(time.time())
        body = json.dumps(stripe_event()).encode()
        good = stripe_sign(body, timestamp=now)
        for header in (
            f"t={now},v1=é",
            f"t={now},v1={'é' * 64}",
            f"{good},v1=é",  # a valid signature beside a non-ASCII one
            f"t={now}é,v1=00",
            f"t=١٧٠٠٠٠٠٠٠٠,{good.split(',')[1]}",  # digits of another script
        ):
            response = post_stripe(http, body, header.encode("utf-8"))
            assert_permanent(response, SIGNATURE_INVALID)

        mp_body = mp_notification()
        for mp_header in (f"ts={now},v1=é", f"ts=١٢٣,v1={'0' * 64}", f"ts=²,v1={'0' * 64}"):
            response = post_mp(http, mp_body, signature=mp_header.encode("utf-8"))
            assert_permanent(response, SIGNATURE_INVALID)
        signed = mp_sign(MP_SECRET, data_id=None, request_id="req-é", ts=now)
        response = post_mp(http, mp_body, signature=signed, request_id="req-é".encode())
        assert_permanent(response, SIGNATURE_INVALID)

    @pytest.mark.parametrize(
        "header",
        [
            pytest.param("garbage", id="garbage"),
            pytest.param(",,,", id="commas"),
            pytest.param("v1=" + "0" * 64, id="no-t"),
            pytest.param("t={now}", id="no-v1"),
            pytest.param("t={now},v1=", id="empty-v1"),
            pytest.param("t=,v1=00", id="empty-t"),
            pytest.param("t={now},t={now},{v1}", id="repeated-t"),
            pytest.param("t=-{now},{v1}", id="negative-t"),
            pytest.param("t= {now},{v1}", id="spaced-t"),
            pytest.param("t=1_{now},{v1}", id="underscored-t"),
            pytest.param("t=" + "9" * 5000 + ",{v1}", id="huge-t"),
            pytest.param("t={now}," + ",".join(["v1=" + "0" * 64] * 100), id="huge-header"),
            pytest.param("t={now},{v1}," + "x" * 5000, id="huge-junk"),
        ],
    )
    def test_malformed_stripe_signature_header_is_a_400(
        self, http: httpx.Client, header: str
    ) -> None:
        now = int(time.time())
        body = json.dumps(stripe_event()).encode()
        v1 = stripe_sign(body, timestamp=now).split(",")[1]
        response = post_stripe(http, body, header.format(now=now, v1=v1))
        assert_permanent(response, SIGNATURE_INVALID)

    @pytest.mark.parametrize(
        "header",
        [
            pytest.param("ts={now},ts={now},v1={v1}", id="repeated-ts"),
            pytest.param("ts={now},v1={v1},v1={v1}", id="repeated-v1"),
            pytest.param("ts=" + "9" * 5000 + ",v1={v1}", id="huge-ts"),
            pytest.param("ts={now},v1={v1}," + "x" * 5000, id="huge-header"),
            pytest.param("ts=-{now},v1={v1}", id="negative-ts"),
        ],
    )
    def test_malformed_mercadopago_signature_header_is_a_400(
        self, http: httpx.Client, header: str
    ) -> None:
        now = int(time.time())
        request_id = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"
        v1 = mp_sign(MP_SECRET, data_id=None, request_id=request_id, ts=now).split("v1=")[1]
        response = post_mp(
            http,
            mp_notification(),
            signature=header.format(now=now, v1=v1),
            request_id=request_id,
        )
        assert_permanent(response, SIGNATURE_INVALID)


class TestBodies:
    @pytest.mark.parametrize("kind", ["array", "object"])
    def test_deeply_nested_signed_body_is_a_400_and_recorded(
        self, http: httpx.Client, caplog: pytest.LogCaptureFixture, kind: str
    ) -> None:
        caplog.set_level(logging.WARNING, logger="qzpay.webhooks")
        stripe_body = f'{{"id": "evt_deep", "type": "customer.updated", "data": {deep(kind)}}}'
        mp_body = f'{{"id": 1, "action": "card.updated", "data": {deep(kind)}}}'
        for provider, body, response in (
            ("stripe", stripe_body, post_stripe(http, stripe_body.encode())),
            ("mercadopago", mp_body, post_mp(http, mp_body.encode())),
        ):
            problem = assert_permanent(response, PAYLOAD_INVALID)
            assert "nested too deeply" in problem["detail"]
            [record] = [r for r in rejections(caplog) if getattr(r, "provider", "") == provider]
            assert record.levelno == logging.WARNING, len(body)
            assert getattr(record, "code", None) == PAYLOAD_INVALID
            assert "nested too deeply" in getattr(record, "reason", "")

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(b"not json", id="invalid-json"),
            pytest.param(b'{"id": "evt_1", "type": "x"', id="truncated"),
            pytest.param(b'{"id": "evt_\xff", "type": "customer.updated"}', id="invalid-utf8"),
            pytest.param(b"[]", id="array"),
            pytest.param(b'"evt_1"', id="string"),
            pytest.param(b'{"type": "customer.updated"}', id="no-id"),
            pytest.param(b'{"id": 7, "type": "customer.updated"}', id="id-not-text"),
        ],
    )
    def test_unreadable_signed_stripe_body_is_a_400(self, http: httpx.Client, body: bytes) -> None:
        assert_permanent(post_stripe(http, body), PAYLOAD_INVALID)

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(b"not json", id="invalid-json"),
            pytest.param(b'{"id": 1, "action": "card.updated"', id="truncated"),
            pytest.param(b'{"id": 1, "action": "card.\xff"}', id="invalid-utf8"),
            pytest.param(b"[1]", id="array"),
            pytest.param(b'{"action": "card.updated"}', id="no-id"),
            pytest.param(b'{"id": 1, "action": "x", "data": {"id": [1]}}', id="data-id-list"),
        ],
    )
    def test_unreadable_signed_mercadopago_body_is_a_400(
        self, http: httpx.Client, body: bytes
    ) -> None:
        assert_permanent(post_mp(http, body), PAYLOAD_INVALID)


class TestUnstorableIds:
    """Anything a provider sends that qzpay cannot store is a permanent 400, never a 503."""

    def test_event_id_with_nul_is_a_permanent_400_on_postgres(
        self, http: httpx.Client, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="qzpay.webhooks")
        # \u0000 in JSON is a NUL in the parsed id: SQLite stores it, PostgreSQL refuses it.
        body = json.dumps(stripe_event("evt_\x00nul")).encode()
        assert b"\\u0000" in body
        for _ in range(2):  # the provider's retry meets the same answer
            problem = assert_permanent(post_stripe(http, body), PAYLOAD_INVALID)
            assert "NUL" in problem["detail"]
        mp = assert_permanent(post_mp(http, mp_notification("12\x0034")), PAYLOAD_INVALID)
        assert "NUL" in mp["detail"]
        assert [getattr(r, "provider", None) for r in rejections(caplog)] == [
            "stripe",
            "stripe",
            "mercadopago",
        ]
        # Nothing was recorded: the same id without the NUL is new.
        clean = json.dumps(stripe_event("evt_nul")).encode()
        assert post_stripe(http, clean).json()["status"] == "ignored"

    @pytest.mark.parametrize(
        "event",
        [
            pytest.param(stripe_event("evt_\ud800"), id="id-lone-surrogate"),
            pytest.param(stripe_event("evt_" + "x" * 252), id="id-256-characters"),
            pytest.param(stripe_event(""), id="id-empty"),
            pytest.param(stripe_event(type="customer.\x00updated"), id="type-nul"),
            pytest.param(stripe_event(type="customer." + "x" * 300), id="type-too-long"),
            pytest.param(
                stripe_event(data={"object": {"object": "customer", "id": "cus_\x00"}}),
                id="customer-id-nul",
            ),
            pytest.param(
                stripe_event(data={"object": {"object": "customer", "id": "cus_\udfff"}}),
                id="customer-id-lone-surrogate",
            ),
            pytest.param(
                stripe_event(data={"object": {"object": "card", "customer": "cus_" + "x" * 300}}),
                id="customer-id-too-long",
            ),
        ],
    )
    def test_unstorable_stripe_event_is_a_permanent_400(
        self, http: httpx.Client, event: dict[str, Any]
    ) -> None:
        assert_permanent(post_stripe(http, json.dumps(event).encode()), PAYLOAD_INVALID)

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(mp_notification("12\ud83434"), id="id-lone-surrogate"),
            pytest.param(mp_notification(10**300), id="id-301-digits"),
            pytest.param(mp_notification(data={"customer_id": "1\x002"}), id="customer-id-nul"),
            pytest.param(
                mp_notification(data={"customer_id": "9" * 256}), id="customer-id-too-long"
            ),
            pytest.param(
                mp_notification(action="customer.updated", data={"id": "\ud800"}),
                id="customer-data-id-lone-surrogate",
            ),
        ],
    )
    def test_unstorable_mercadopago_notification_is_a_permanent_400(
        self, http: httpx.Client, body: bytes
    ) -> None:
        assert_permanent(post_mp(http, body), PAYLOAD_INVALID)

    def test_ids_of_255_characters_are_accepted(self, http: httpx.Client) -> None:
        long_id = "evt_" + os.urandom(4).hex() + "x" * 243
        assert len(long_id) == 255
        response = post_stripe(http, json.dumps(stripe_event(long_id)).encode())
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ignored", "event_id": long_id}


class TestTolerance:
    def test_signature_from_the_future_is_rejected(self, http: httpx.Client) -> None:
        now = int(time.time())
        body = json.dumps(stripe_event()).encode()
        for ahead in (TOLERANCE + 60, 10**9):
            response = post_stripe(http, body, stripe_sign(body, timestamp=now + ahead))
            problem = assert_permanent(response, SIGNATURE_INVALID)
            assert "tolerance" in problem["detail"]
        mp_body = mp_notification()
        for ts in (now + TOLERANCE + 60, (now + TOLERANCE + 60) * 1000):
            problem = assert_permanent(post_mp(http, mp_body, ts=ts), SIGNATURE_INVALID)
            assert "tolerance" in problem["detail"]

    def test_a_little_clock_skew_either_way_is_accepted(self, http: httpx.Client) -> None:
        now = int(time.time())
        for skew in (-(TOLERANCE - 60), TOLERANCE - 60):
            body = json.dumps(stripe_event()).encode()
            response = post_stripe(http, body, stripe_sign(body, timestamp=now + skew))
            assert response.status_code == 200, response.text
            mp = post_mp(http, mp_notification(), ts=now + skew)
            assert mp.status_code == 200, mp.text
