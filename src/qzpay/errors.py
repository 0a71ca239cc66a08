"""The error hierarchy. Every error carries a stable, machine-readable ``code``.

Callers branch on the class or on ``code``, never on the message text.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import TypedDict

from qzpay.limits import MAX_FIELD_ERRORS


class FieldError(TypedDict):
    """One problem with one input field; ``field`` is a dotted path such as ``address.country``."""

    field: str
    code: str
    message: str


class QZPayError(Exception):
    """Base of every error qzpay raises on purpose."""

    code: str = "qzpay_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


def encodable(text: str) -> str:
    """``text`` with any lone surrogate (text no UTF-8 can encode) written as ``\\udXXX``.

    Field paths and messages can quote the caller's input (a bad metadata key is reported as
    ``metadata.<key>``); this keeps them printable and serializable as JSON."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class ValidationError(QZPayError, ValueError):
    """Bad input. ``errors`` lists every problem found, not only the first, up to
    ``MAX_FIELD_ERRORS`` of them; ``omitted`` counts the ones left out."""

    code = "validation_error"

    def __init__(self, errors: Iterable[FieldError], *, omitted: int = 0) -> None:
        remaining = iter(errors)
        self.errors: list[FieldError] = [
            {
                "field": encodable(error["field"]),
                "code": error["code"],
                "message": encodable(error["message"]),
            }
            for error in islice(remaining, MAX_FIELD_ERRORS)
        ]
        self.omitted: int = omitted + sum(1 for _ in remaining)
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in self.errors)
        if self.omitted:
            summary += f"; ... and {self.omitted} more"
        super().__init__(f"invalid input: {summary}")


class UnknownArgumentError(ValidationError, TypeError):
    """A ValidationError raised when a call names a keyword the API does not have.

    It is also a ``TypeError``, as Python's own error for an unexpected keyword would be.
    """


class NotFoundError(QZPayError, LookupError):
    code = "not_found"


class ConflictError(QZPayError):
    """The request contradicts the stored state (reused idempotency key, taken provider id, ...)."""

    code = "conflict"


class ProviderSyncError(QZPayError):
    """A payment provider call failed; the local state was left as it was.

    ``ambiguous`` is True when the request may have reached the provider but no answer came
    back (timeout, dropped connection), so the provider may or may not have applied it.
    """

    code = "provider_sync_failed"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        operation: str,
        cause: BaseException | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.operation = operation
        self.cause = cause
        self.ambiguous = ambiguous


class WebhookSignatureError(QZPayError):
    """A webhook delivery's signature is missing, malformed, wrong or outside the tolerance."""

    code = "webhook_signature_invalid"


class WebhookPayloadError(WebhookSignatureError):
    """A webhook delivery whose body (or an id in it) qzpay cannot read or store: not UTF-8, not
    JSON, nested too deep, not an event, or an event/object id that is not storable text.

    Permanent: the same delivery can never succeed, so it is rejected (HTTP 400), never
    retried. A ``WebhookSignatureError`` subclass, so handlers that reject bad signatures
    reject these too.
    """

    code = "webhook_payload_invalid"


class StorageError(QZPayError):
    """The storage backend could not complete the operation (busy, unreachable, ...)."""

    code = "storage_error"


__all__ = [
    "MAX_FIELD_ERRORS",
    "ConflictError",
    "FieldError",
    "NotFoundError",
    "ProviderSyncError",
    "QZPayError",
    "StorageError",
    "UnknownArgumentError",
    "ValidationError",
    "WebhookPayloadError",
    "WebhookSignatureError",
    "encodable",
]
