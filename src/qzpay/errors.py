"""The error hierarchy. Every error carries a stable, machine-readable ``code``.

Callers branch on the class or on ``code``, never on the message text.
"""

from __future__ import annotations

from typing import TypedDict


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


class ValidationError(QZPayError, ValueError):
    """Bad input. ``errors`` lists every problem found, not only the first."""

    code = "validation_error"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
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


class StorageError(QZPayError):
    """The storage backend could not complete the operation (busy, unreachable, ...)."""

    code = "storage_error"


__all__ = [
    "ConflictError",
    "FieldError",
    "NotFoundError",
    "ProviderSyncError",
    "QZPayError",
    "StorageError",
    "UnknownArgumentError",
    "ValidationError",
    "WebhookSignatureError",
]
