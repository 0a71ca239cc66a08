"""What the provider packages share: settings checks, header reading, failure messages and
the adoption rule. Nothing here knows an SDK."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from qzpay.customers.models import Customer
from qzpay.errors import ProviderSyncError, WebhookSignatureError
from qzpay.providers.base import ProviderCustomer, ProviderEmailTaken

MAX_SIGNATURE_HEADER: Final = 4096  # a few signatures during a secret rotation, and then some


def check_client_settings(
    *, timeout: float, connect_timeout: float, page_size: int, max_page_size: int
) -> None:
    """Refuse settings that would make every call fail or wait forever (ValueError)."""
    if timeout <= 0 or connect_timeout <= 0:
        raise ValueError("timeouts must be positive")
    if not 1 <= page_size <= max_page_size:
        raise ValueError(f"page_size must be from 1 to {max_page_size}")


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


def missing_customer(provider: str, operation: str, provider_customer_id: str) -> ProviderSyncError:
    """A call that needs the customer found it gone (surely not applied)."""
    return ProviderSyncError(
        f"{provider} customer {provider_customer_id} does not exist",
        provider=provider,
        operation=operation,
    )


def adoptable(
    provider: str,
    provider_customer_id: str,
    current: ProviderCustomer | None,
    customer: Customer,
    *,
    taken: type[ProviderEmailTaken] = ProviderEmailTaken,
) -> ProviderCustomer:
    """``current`` if ``customer`` may adopt it: it exists and carries no other qzpay id.

    A customer that carries another qzpay customer's id is refused with ``taken``.
    """
    operation = "adopt_customer"
    if current is None:
        raise missing_customer(provider, operation, provider_customer_id)
    if current.qzpay_customer_id not in (None, customer.id):
        raise taken(
            f"{provider} customer {provider_customer_id} belongs to qzpay customer "
            f"{current.qzpay_customer_id}; it cannot be adopted for {customer.id}",
            provider=provider,
            existing=current,
            operation=operation,
        )
    return current


def carries(current: ProviderCustomer | None, customer: Customer) -> bool:
    """Whether ``current`` exists and carries ``customer.id``: the one customer a release may
    un-mark (one that is gone or carries another id is left alone)."""
    return current is not None and current.qzpay_customer_id == customer.id
