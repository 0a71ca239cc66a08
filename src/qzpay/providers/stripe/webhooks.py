"""Stripe webhook deliveries: the ``Stripe-Signature`` check, then the event."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Final

import stripe

from qzpay.errors import WebhookPayloadError, WebhookSignatureError
from qzpay.providers.base import ProviderEvent
from qzpay.providers.common import check_header_text, header
from qzpay.providers.stripe.fields import text

DEFAULT_WEBHOOK_TOLERANCE: Final = 300
_SIGNATURE_HEADER: Final = "stripe-signature"
_MAX_TIMESTAMP_DIGITS: Final = 15


def parse_webhook(
    payload: bytes, headers: Mapping[str, str], *, secret: str, tolerance: int
) -> ProviderEvent:
    """Verify with the SDK's own ``Stripe-Signature`` check, then parse.

    ``payload`` must be the raw body: re-serialised JSON no longer matches the signature. A
    header not of the documented shape is a WebhookSignatureError before the SDK sees it, and
    so is a timestamp more than ``tolerance`` seconds away from now in either direction (the
    SDK checks only its age). A body that is not UTF-8, or signed but not a Stripe event (not
    JSON, nested too deep to parse, no string ``id`` and ``type``) is a WebhookPayloadError:
    nothing downstream could use it.
    """
    signature = header(headers, _SIGNATURE_HEADER)
    if not signature:
        raise WebhookSignatureError("the Stripe-Signature header is missing")
    timestamp = _signature_timestamp(signature)
    try:
        body = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookPayloadError("the webhook body is not UTF-8") from exc
    try:
        stripe.WebhookSignature.verify_header(body, signature, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise WebhookSignatureError(f"invalid Stripe signature: {exc.user_message}") from exc
    except (TypeError, ValueError) as exc:  # the SDK's compare on a header it let through
        raise WebhookSignatureError("the Stripe-Signature header is malformed") from exc
    if timestamp > time.time() + tolerance:
        raise WebhookSignatureError("the Stripe signature is dated beyond the tolerance")
    try:
        raw = json.loads(body)
    except RecursionError as exc:
        raise WebhookPayloadError("the signed webhook body is nested too deeply") from exc
    except ValueError as exc:
        raise WebhookPayloadError("the signed webhook body is not JSON") from exc
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("id"), str)
        or not isinstance(raw.get("type"), str)
    ):
        raise WebhookPayloadError("the signed webhook body is not a Stripe event")
    return ProviderEvent(
        id=raw["id"],
        type=raw["type"],
        provider_customer_id=_event_customer_id(raw),
        raw=raw,
    )


def _signature_timestamp(signature: str) -> int:
    """The ``t`` of a ``Stripe-Signature`` header of the documented shape
    (``t=<digits>,v1=<hex>[,v1=...][,v0=...]``), else WebhookSignatureError.

    The SDK's own parser is lenient where it should not be: it lets non-ASCII through to its
    constant-time compare (which then raises TypeError), takes the first of several ``t`` and
    reads signs, spaces and non-ASCII digits in it.
    """
    malformed = "the Stripe-Signature header is malformed"
    check_header_text(signature, malformed)
    timestamps: list[str] = []
    signatures = 0
    for part in signature.split(","):
        key, sep, value = part.partition("=")
        if not (sep and key and value):
            raise WebhookSignatureError(malformed)
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures += 1
    if len(timestamps) != 1:
        raise WebhookSignatureError("the Stripe-Signature header needs exactly one t=<timestamp>")
    stamp = timestamps[0]
    if not stamp.isdigit() or len(stamp) > _MAX_TIMESTAMP_DIGITS:
        raise WebhookSignatureError("the Stripe-Signature timestamp is not a number of seconds")
    if not signatures:
        raise WebhookSignatureError("the Stripe-Signature header has no v1 signature")
    return int(stamp)


def _event_customer_id(event: Mapping[str, Any]) -> str | None:
    """The customer an event is about: the object itself, or the object's ``customer``."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        return None
    if obj.get("object") == "customer":
        return text(obj.get("id"))
    return text(obj.get("customer"))
