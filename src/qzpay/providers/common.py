"""What the provider packages share: the provider objects' base class, settings checks, header
reading and failure messages (the customers' shared flow is
:mod:`~qzpay.providers.customer_base`). Nothing here knows an SDK."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from qzpay.errors import ProviderSyncError, QZPayError, WebhookSignatureError
from qzpay.providers.base import ClosingContext, ProviderEvent

MAX_SIGNATURE_HEADER: Final = 4096  # a few signatures during a secret rotation, and then some


def check_client_settings(
    *, timeout: float, connect_timeout: float, page_size: int, max_page_size: int
) -> None:
    """Refuse settings that would make every call fail or wait forever (ValueError)."""
    if timeout <= 0 or connect_timeout <= 0:
        raise ValueError("timeouts must be positive")
    if not 1 <= page_size <= max_page_size:
        raise ValueError(f"page_size must be from 1 to {max_page_size}")


@dataclass(frozen=True, slots=True)
class Delivery:
    """A webhook delivery as it arrived: the raw body, its headers, its query parameters."""

    payload: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str] | None = None


class WebhookProvider(ClosingContext):
    """What every provider object does alike: it verifies a webhook delivery only when it was
    given a webhook secret, and ``async with provider:`` closes it.

    A subclass says how a delivery is verified (``_verify``) and how it closes (``close``).
    """

    name: str

    def __init__(self, webhook_secret: str | None) -> None:
        self._webhook_secret = webhook_secret

    def parse_webhook(
        self,
        payload: bytes,
        headers: Mapping[str, str],
        *,
        query: Mapping[str, str] | None = None,
    ) -> ProviderEvent:
        """Verify the delivery's signature and parse it (see the provider's ``_verify``); a
        provider created without ``webhook_secret`` refuses with a configuration error."""
        if self._webhook_secret is None:
            raise QZPayError(
                f"{type(self).__name__} was created without webhook_secret; "
                "it cannot verify webhooks",
                code="configuration_error",
            )
        return self._verify(Delivery(payload, headers, query), self._webhook_secret)

    def _verify(self, delivery: Delivery, secret: str) -> ProviderEvent:
        """The provider's check and parse of a delivery, with its webhook secret."""
        raise NotImplementedError


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (lower case), whatever case the server delivered it in."""
    return next((value for key, value in headers.items() if key.lower() == name), None)


def check_header_text(value: str, malformed: str) -> None:
    """A signature header must be short printable ASCII: ``hmac.compare_digest`` (and the
    SDKs' compares built on it) raise TypeError on other text instead of saying no."""
    if len(value) > MAX_SIGNATURE_HEADER or not value.isascii() or not value.isprintable():
        raise WebhookSignatureError(malformed)


def sync_failure(
    provider: str,
    operation: str,
    detail: str,
    *,
    ambiguous: bool,
    cause: BaseException | None = None,
) -> ProviderSyncError:
    """``<provider> <operation> failed: <detail>``, saying so when it may have been applied."""
    outcome = "; it may or may not have been applied" if ambiguous else ""
    return ProviderSyncError(
        f"{provider} {operation} failed: {detail}{outcome}",
        provider=provider,
        operation=operation,
        cause=cause,
        ambiguous=ambiguous,
    )


def missing(provider: str, operation: str, noun: str, object_id: str) -> ProviderSyncError:
    """A call that needs the object (``noun``: what the provider calls it) found it gone:
    surely not applied."""
    return ProviderSyncError(
        f"{provider} {noun} {object_id} does not exist", provider=provider, operation=operation
    )
