"""Webhook verification, the same for every provider: a delivery is parsed only when its
signature is valid and in date; everything else is a WebhookSignatureError (a signed body
that is not an event: a WebhookPayloadError)."""

from __future__ import annotations

import json

import pytest

from qzpay.errors import QZPayError, WebhookPayloadError, WebhookSignatureError
from tests.providers.contract.kit import SDK_WARNING, ProviderKit, Signed

pytestmark = pytest.mark.filterwarnings(SDK_WARNING)


async def test_a_real_delivery_verifies_and_parses(provider_kit: ProviderKit) -> None:
    kit = provider_kit
    created, delivery = await kit.real_delivery(kit.provider)

    event = kit.provider.parse_webhook(delivery.payload, delivery.headers, query=delivery.query)

    raw = json.loads(delivery.payload)
    assert (event.id, event.type, event.provider_customer_id) == (
        str(raw["id"]),
        kit.delivered_type,
        created.id,
    )
    assert event.raw == raw
    shouting = {name.upper(): value for name, value in delivery.headers.items()}
    assert kit.provider.parse_webhook(delivery.payload, shouting, query=delivery.query) == event
    stranger = kit.make(webhook_secret="someone-elses-secret")
    with pytest.raises(WebhookSignatureError):
        stranger.parse_webhook(delivery.payload, delivery.headers, query=delivery.query)


def test_a_valid_signature_parses(provider_kit: ProviderKit) -> None:
    delivery = provider_kit.signed()

    event = provider_kit.provider.parse_webhook(
        delivery.payload, delivery.headers, query=delivery.query
    )

    expected = provider_kit.event
    assert (event.id, event.type, event.provider_customer_id) == (
        expected.id,
        expected.type,
        expected.provider_customer_id,
    )
    assert event.raw == json.loads(delivery.payload)


def _bad(kit: ProviderKit, case: str) -> Signed:
    good = kit.signed()
    header = kit.signature_header
    if case == "missing":
        return Signed(good.payload, {}, good.query)
    if case == "empty":
        return Signed(good.payload, {header: ""}, good.query)
    if case == "malformed":
        return Signed(good.payload, {header: "garbage"}, good.query)
    if case == "forged":
        return Signed(good.payload, kit.forged(), good.query)
    if case == "wrong-secret":
        return kit.signed(secret="wrong-secret")
    assert case == "tampered-body"
    return kit.tampered(good)


@pytest.mark.parametrize(
    "case", ["missing", "empty", "malformed", "forged", "wrong-secret", "tampered-body"]
)
def test_a_bad_signature_is_rejected(provider_kit: ProviderKit, case: str) -> None:
    delivery = _bad(provider_kit, case)

    with pytest.raises(WebhookSignatureError):
        provider_kit.provider.parse_webhook(
            delivery.payload, delivery.headers, query=delivery.query
        )


@pytest.mark.parametrize(
    ("age", "accepted"),
    [(250, True), (301, False), (-301, False)],
    ids=["recent", "stale", "future"],
)
def test_with_a_tolerance_only_a_signature_dated_within_it_is_accepted(
    provider_kit: ProviderKit, age: int, accepted: bool
) -> None:
    strict = provider_kit.make(webhook_tolerance=300)
    delivery = provider_kit.signed(age=age)

    if accepted:
        event = strict.parse_webhook(delivery.payload, delivery.headers, query=delivery.query)
        assert event.id == provider_kit.event.id
    else:
        with pytest.raises(WebhookSignatureError):
            strict.parse_webhook(delivery.payload, delivery.headers, query=delivery.query)


@pytest.mark.parametrize("payload", [b"not json", b"[]", b"\xff\xfe", b"{}"])
def test_a_signed_body_that_is_not_an_event_is_rejected(
    provider_kit: ProviderKit, payload: bytes
) -> None:
    delivery = provider_kit.signed(payload)

    with pytest.raises(WebhookPayloadError):
        provider_kit.provider.parse_webhook(
            delivery.payload, delivery.headers, query=delivery.query
        )


def test_a_signed_object_that_is_not_this_providers_event_is_rejected(
    provider_kit: ProviderKit,
) -> None:
    for payload in provider_kit.not_events:
        delivery = provider_kit.signed(payload)
        with pytest.raises(WebhookPayloadError):
            provider_kit.provider.parse_webhook(
                delivery.payload, delivery.headers, query=delivery.query
            )


def test_without_a_secret_it_refuses_to_verify(provider_kit: ProviderKit) -> None:
    provider = provider_kit.make(webhook_secret=None)
    delivery = provider_kit.signed()

    with pytest.raises(QZPayError) as caught:
        provider.parse_webhook(delivery.payload, delivery.headers, query=delivery.query)

    assert caught.value.code == "configuration_error"
    assert not isinstance(caught.value, WebhookSignatureError)
