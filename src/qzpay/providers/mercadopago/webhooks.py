"""MercadoPago notifications: the ``x-signature`` check, then the notification."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Final

from qzpay.errors import WebhookPayloadError, WebhookSignatureError
from qzpay.providers.base import ProviderEvent
from qzpay.providers.common import check_header_text, header
from qzpay.providers.mercadopago.mapping import text

_SIGNATURE_HEADER: Final = "x-signature"
_REQUEST_ID_HEADER: Final = "x-request-id"
_MAX_TS_DIGITS: Final = 15  # seconds or milliseconds since the epoch


def sign_manifest(secret: str, *, data_id: str | None, request_id: str | None, ts: str) -> str:
    """The hex HMAC-SHA256 of ``id:<data.id>;request-id:<x-request-id>;ts:<ts>;`` (absent
    pairs left out), as MercadoPago's "validate notification origin" steps describe."""
    parts = []
    if data_id is not None:
        parts.append(f"id:{data_id};")
    if request_id is not None:
        parts.append(f"request-id:{request_id};")
    parts.append(f"ts:{ts};")
    return hmac.new(secret.encode(), "".join(parts).encode(), hashlib.sha256).hexdigest()


def parse_webhook(
    payload: bytes,
    headers: Mapping[str, str],
    query: Mapping[str, str] | None,
    *,
    secret: str,
    tolerance: int | None,
) -> ProviderEvent:
    """Verify ``x-signature`` as MercadoPago documents it, then parse the notification.

    The signed manifest is ``id:<data.id>;request-id:<x-request-id>;ts:<ts>;`` with
    ``data.id`` taken from the query string (``query``), each pair left out when its value
    is absent; the signature is its HMAC-SHA256 under the webhook secret, in hex (``v1``).
    The body is *not* covered by the signature, so a body whose ``data.id`` differs from
    the signed one is rejected. ``type`` is the notification's ``action`` (such as
    ``card.updated``), else its ``type``; ``provider_customer_id`` is ``data.customer_id``
    (card updates) or, for a customer notification, ``data.id``. A header not of the
    documented shape is a WebhookSignatureError; a verified notification whose body is not
    UTF-8 JSON (or is nested too deep to parse) or not a notification is a
    WebhookPayloadError. With ``tolerance`` (seconds), a signed ``ts`` further from now is
    a WebhookSignatureError too.
    """
    signature = header(headers, _SIGNATURE_HEADER)
    if not signature:
        raise WebhookSignatureError("the x-signature header is missing")
    ts, v1 = _parse_signature(signature)
    data_id = _blank_to_none((query or {}).get("data.id"))
    request_id = _blank_to_none(header(headers, _REQUEST_ID_HEADER))
    try:
        expected = sign_manifest(secret, data_id=data_id, request_id=request_id, ts=ts)
    except UnicodeEncodeError as exc:  # a lone surrogate in data.id or x-request-id
        raise WebhookSignatureError("data.id or x-request-id is not valid text") from exc
    if not hmac.compare_digest(expected, v1.lower()):
        raise WebhookSignatureError("invalid MercadoPago signature")
    if tolerance is not None:
        signed_at = int(ts) / (1000 if len(ts) > 11 else 1)  # documented as ms, sent as s
        if abs(time.time() - signed_at) > tolerance:
            raise WebhookSignatureError("the MercadoPago signature is outside the tolerance")
    try:
        raw = json.loads(payload.decode("utf-8"))
    except RecursionError as exc:
        raise WebhookPayloadError("the notification body is nested too deeply") from exc
    except ValueError as exc:  # UnicodeDecodeError included
        raise WebhookPayloadError("the notification body is not UTF-8 JSON") from exc
    return _event(raw, data_id)


def _blank_to_none(value: str | None) -> str | None:
    return value.strip() if value is not None and value.strip() else None


def _parse_signature(signature: str) -> tuple[str, str]:
    """``(ts, v1)`` from ``ts=<digits>,v1=<hex>`` (parts in any order, spaces allowed).

    Printable ASCII only (``hmac.compare_digest`` raises TypeError on other text), each of
    ``ts`` and ``v1`` once, ``ts`` ASCII digits (``int`` would read other scripts' digits).
    """
    malformed = "the x-signature header is not ts=...,v1=..."
    check_header_text(signature, malformed)
    values: dict[str, str] = {}
    for part in signature.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if sep and key in ("ts", "v1"):
            if key in values:
                raise WebhookSignatureError(malformed)
            values[key] = value.strip()
    ts, v1 = values.get("ts", ""), values.get("v1", "")
    if not ts.isdigit() or len(ts) > _MAX_TS_DIGITS or not v1:
        raise WebhookSignatureError(malformed)
    return ts, v1


def _event(raw: object, signed_data_id: str | None) -> ProviderEvent:
    if not isinstance(raw, dict):
        raise WebhookPayloadError("the body is not a MercadoPago notification")
    event_id = raw.get("id")
    kind = raw.get("action") if isinstance(raw.get("action"), str) else raw.get("type")
    if (
        isinstance(event_id, bool)
        or not isinstance(event_id, str | int)
        or not isinstance(kind, str)
    ):
        raise WebhookPayloadError("the body is not a MercadoPago notification")
    data = raw.get("data")
    data = data if isinstance(data, Mapping) else {}
    body_data_id = data.get("id")
    if isinstance(body_data_id, bool) or not isinstance(body_data_id, str | int | None):
        raise WebhookPayloadError("the notification's data.id is not a string or a number")
    if (
        signed_data_id is not None
        and body_data_id is not None
        and str(body_data_id) != signed_data_id
    ):
        raise WebhookSignatureError("the notification's data.id differs from the signed one")
    customer_id = text(data.get("customer_id"))
    if customer_id is None and kind.split(".")[0] == "customer" and body_data_id is not None:
        customer_id = str(body_data_id)
    return ProviderEvent(id=str(event_id), type=kind, provider_customer_id=customer_id, raw=raw)
