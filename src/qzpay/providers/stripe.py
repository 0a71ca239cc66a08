"""Stripe behind the PaymentProvider protocol, via the official SDK's async client.

Design choices, each for a reason:

* The SDK's ``HTTPXClient`` does the HTTP: it is the SDK's default async transport (what
  ``stripe[async]`` installs), it wraps every transport error, body read included, into
  ``APIConnectionError``, and httpx never resends on its own. (aiohttp, the alternative,
  silently resends a GET or DELETE once when a connection drops.)
* SDK network retries are off (``max_network_retries=0``): a blind resend hides whether the
  first attempt was applied. The caller decides, using ``ProviderSyncError.ambiguous`` and the
  idempotency key it supplied.
* Every mutating call carries the caller's ``Idempotency-Key``, so a deliberate retry of the
  same operation is replayed by Stripe instead of applied twice.
* Only plain Python values leave this module; SDK objects and errors are converted here.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, Final, Literal, TypeVar, cast

import httpx
import stripe
from stripe.params import (
    CustomerCreateParams,
    CustomerCreateParamsAddress,
    CustomerListParams,
    CustomerUpdateParams,
    CustomerUpdateParamsAddress,
)

from qzpay.customers.models import Address, Customer
from qzpay.errors import (
    ProviderSyncError,
    QZPayError,
    WebhookPayloadError,
    WebhookSignatureError,
)
from qzpay.providers.base import (
    QZPAY_CUSTOMER_ID_KEY,
    ClosingContext,
    ProviderCustomer,
    ProviderEmailTaken,
    ProviderEvent,
    replace_all_fields,
)

__all__ = ["DEFAULT_WEBHOOK_TOLERANCE", "StripeProvider"]

DEFAULT_WEBHOOK_TOLERANCE: Final = 300
MAX_PAGE_SIZE: Final = 100
_SIGNATURE_HEADER: Final = "stripe-signature"
_MAX_SIGNATURE_HEADER: Final = 4096  # a few v1 (and v0) signatures during a secret rotation
_MAX_TIMESTAMP_DIGITS: Final = 15
_ADDRESS_FIELDS: Final = ("line1", "line2", "city", "state", "postal_code", "country")

_T = TypeVar("_T")


class StripeProvider(ClosingContext):
    """Customers at Stripe. One instance owns one connection pool; ``close()`` it when done.

    Use an instance from one event loop only: pooled connections belong to the loop that
    opened them.

    ``api_base`` points the client at another server (a local test double); every SDK base
    address is redirected so nothing reaches the real API by accident. ``timeout`` bounds a
    whole request; ``connect_timeout`` bounds opening the connection, which is the one wait
    after which the request is known not to have been sent.
    """

    name: str = "stripe"

    def __init__(
        self,
        api_key: str,
        webhook_secret: str | None = None,
        api_base: str | None = None,
        *,
        timeout: float = 20.0,
        connect_timeout: float = 5.0,
        webhook_tolerance: int = DEFAULT_WEBHOOK_TOLERANCE,
        page_size: int = MAX_PAGE_SIZE,
    ) -> None:
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if webhook_tolerance <= 0:
            # The SDK treats a tolerance of 0 as "never expire"; refuse that silently weak setting.
            raise ValueError("webhook_tolerance must be a positive number of seconds")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be from 1 to {MAX_PAGE_SIZE}")
        self._webhook_secret = webhook_secret
        self._webhook_tolerance = webhook_tolerance
        self._page_size = page_size
        self._http = stripe.HTTPXClient(
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        )
        base = api_base.rstrip("/") if api_base is not None else None
        self._client = stripe.StripeClient(
            api_key,
            base_addresses=(
                {"api": base, "connect": base, "files": base, "meter_events": base}
                if base is not None
                else None
            ),
            max_network_retries=0,
            http_client=self._http,
        )
        self._customers = self._client.v1.customers

    # -- customers -------------------------------------------------------------------------

    async def create_customer(
        self, customer: Customer, *, idempotency_key: str
    ) -> ProviderCustomer:
        params: CustomerCreateParams = {
            "email": customer.email,
            "metadata": {**customer.metadata, QZPAY_CUSTOMER_ID_KEY: customer.id},
        }
        if customer.name is not None:
            params["name"] = customer.name
        if customer.phone is not None:
            params["phone"] = customer.phone
        if customer.address is not None:
            # Only the set fields: an absent field is simply unset on a new customer.
            fields = {f: v for f in _ADDRESS_FIELDS if (v := getattr(customer.address, f))}
            if fields:
                params["address"] = cast(CustomerCreateParamsAddress, fields)
        created = await self._call(
            "create_customer",
            self._customers.create_async(params, {"idempotency_key": idempotency_key}),
        )
        return _provider_customer(created.to_dict())

    async def update_customer(
        self,
        provider_customer_id: str,
        before: Customer,
        after: Customer,
        *,
        idempotency_key: str,
    ) -> ProviderCustomer:
        """Send only what changed, so concurrent edits made at Stripe to other fields survive.

        Stripe clears a field given as ``""``: that is how a name, phone, address or metadata
        key removed locally is removed at Stripe. With nothing to send this only reads.
        """
        params: CustomerUpdateParams = {}
        if before.email != after.email:
            params["email"] = after.email
        if before.name != after.name:
            params["name"] = after.name or ""
        if before.phone != after.phone:
            params["phone"] = after.phone or ""
        if before.address != after.address:
            params["address"] = _update_address(after.address)
        metadata = _metadata_changes(before.metadata, after.metadata)
        if metadata:
            params["metadata"] = metadata
        if not params:
            current = await self._retrieve("update_customer", provider_customer_id)
            if current is None:
                raise ProviderSyncError(
                    f"stripe customer {provider_customer_id} does not exist",
                    provider=self.name,
                    operation="update_customer",
                )
            return current
        updated = await self._call(
            "update_customer",
            self._customers.update_async(
                provider_customer_id, params, {"idempotency_key": idempotency_key}
            ),
        )
        return _provider_customer(updated.to_dict())

    async def delete_customer(self, provider_customer_id: str, *, idempotency_key: str) -> None:
        try:
            await self._customers.delete_async(
                provider_customer_id, options={"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as exc:
            if exc.http_status == 404:
                return  # already gone: the goal of the call is met
            raise self._sync_error("delete_customer", exc) from exc
        except httpx.HTTPError as exc:
            raise self._sync_error("delete_customer", exc) from exc

    async def retrieve_customer(self, provider_customer_id: str) -> ProviderCustomer | None:
        return await self._retrieve("retrieve_customer", provider_customer_id)

    async def adopt_customer(
        self, provider_customer_id: str, customer: Customer, *, idempotency_key: str
    ) -> ProviderCustomer:
        """Take over a customer created outside qzpay: set ``metadata.qzpay_customer_id`` and
        every field from ``customer`` (cleared ones as ``""``, metadata keys it lacks removed).

        Stripe allows any number of customers per email, so the sync machinery never needs
        this for Stripe; it is here so that every provider can be adopted alike.
        """
        current = await self._retrieve("adopt_customer", provider_customer_id)
        if current is None:
            raise ProviderSyncError(
                f"stripe customer {provider_customer_id} does not exist",
                provider=self.name,
                operation="adopt_customer",
            )
        if current.qzpay_customer_id not in (None, customer.id):
            raise ProviderEmailTaken(
                f"stripe customer {provider_customer_id} belongs to qzpay customer "
                f"{current.qzpay_customer_id}; it cannot be adopted for {customer.id}",
                provider=self.name,
                existing=current,
                operation="adopt_customer",
            )
        metadata = {k: "" for k in current.metadata if k not in customer.metadata}
        metadata.update(customer.metadata)
        metadata[QZPAY_CUSTOMER_ID_KEY] = customer.id
        params: CustomerUpdateParams = {
            "email": customer.email,
            "name": customer.name or "",
            "phone": customer.phone or "",
            "address": _update_address(customer.address),
            "metadata": metadata,
        }
        adopted = await self._call(
            "adopt_customer",
            self._customers.update_async(
                provider_customer_id, params, {"idempotency_key": idempotency_key}
            ),
        )
        return _provider_customer(adopted.to_dict())

    async def release_customer(
        self, provider_customer_id: str, customer: Customer, *, idempotency_key: str
    ) -> None:
        """Remove ``metadata.qzpay_customer_id`` if it is ``customer.id``; nothing else changes."""
        current = await self._retrieve("release_customer", provider_customer_id)
        if current is None or current.qzpay_customer_id != customer.id:
            return
        params: CustomerUpdateParams = {"metadata": {QZPAY_CUSTOMER_ID_KEY: ""}}
        await self._call(
            "release_customer",
            self._customers.update_async(
                provider_customer_id, params, {"idempotency_key": idempotency_key}
            ),
        )

    async def find_customer(self, customer: Customer) -> ProviderCustomer | None:
        """Match ``qzpay_customer_id`` among customers listed by the exact email.

        Listing is strongly consistent, unlike the Search API (which lags by up to an hour), so
        a customer created a moment ago by an ambiguous call is found. Stripe's email filter is
        case-sensitive, hence the email exactly as it was sent. Should several match (only
        possible after a create that was repeated without its idempotency key) the oldest wins,
        so every caller settles on the same one.
        """
        matches: list[tuple[int, str, ProviderCustomer]] = []
        async for data in self._list("find_customer", email=customer.email):
            found = _provider_customer(data)
            if found.qzpay_customer_id == customer.id and not found.deleted:
                created = data.get("created")
                matches.append((created if isinstance(created, int) else 0, found.id, found))
        if not matches:
            return None
        return min(matches, key=lambda match: (match[0], match[1]))[2]

    async def list_customers(self) -> AsyncIterator[ProviderCustomer]:
        async for data in self._list("list_customers"):
            yield _provider_customer(data)

    # -- webhooks --------------------------------------------------------------------------

    def parse_webhook(
        self,
        payload: bytes,
        headers: Mapping[str, str],
        *,
        query: Mapping[str, str] | None = None,
    ) -> ProviderEvent:
        """Verify with the SDK's own ``Stripe-Signature`` check, then parse.

        ``payload`` must be the raw body: re-serialised JSON no longer matches the signature.
        ``query`` is unused (Stripe signs only the body); it is part of the protocol for
        providers that sign query parameters. A header not of the documented shape is a
        WebhookSignatureError before the SDK sees it, and so is a timestamp more than the
        tolerance away from now in either direction (the SDK checks only its age). A body that
        is not UTF-8, or signed but not a Stripe event (not JSON, nested too deep to parse, no
        string ``id`` and ``type``) is a WebhookPayloadError: nothing downstream could use it.
        """
        del query
        if self._webhook_secret is None:
            raise QZPayError(
                "StripeProvider was created without webhook_secret; it cannot verify webhooks",
                code="configuration_error",
            )
        header = next(
            (value for key, value in headers.items() if key.lower() == _SIGNATURE_HEADER), None
        )
        if not header:
            raise WebhookSignatureError("the Stripe-Signature header is missing")
        timestamp = _signature_timestamp(header)
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookPayloadError("the webhook body is not UTF-8") from exc
        try:
            stripe.WebhookSignature.verify_header(
                text, header, self._webhook_secret, self._webhook_tolerance
            )
        except stripe.SignatureVerificationError as exc:
            raise WebhookSignatureError(f"invalid Stripe signature: {exc.user_message}") from exc
        except (TypeError, ValueError) as exc:  # the SDK's compare on a header it let through
            raise WebhookSignatureError("the Stripe-Signature header is malformed") from exc
        if timestamp > time.time() + self._webhook_tolerance:
            raise WebhookSignatureError("the Stripe signature is dated beyond the tolerance")
        try:
            raw = json.loads(text)
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

    def merge_remote(self, local: Customer, remote: ProviderCustomer) -> Customer:
        """Stripe holds every field qzpay has, so its copy replaces them all."""
        return replace_all_fields(local, remote)

    async def close(self) -> None:
        # The SDK leaves this method unannotated; it closes the httpx.AsyncClient it created.
        await self._http.close_async()  # type: ignore[no-untyped-call]

    # -- internals -------------------------------------------------------------------------

    async def _retrieve(self, operation: str, provider_customer_id: str) -> ProviderCustomer | None:
        try:
            found = await self._customers.retrieve_async(provider_customer_id)
        except stripe.StripeError as exc:
            if exc.http_status == 404:
                return None
            raise self._sync_error(operation, exc) from exc
        except httpx.HTTPError as exc:
            raise self._sync_error(operation, exc) from exc
        customer = _provider_customer(found.to_dict())
        # Stripe answers a deleted customer with a stub marked deleted (localstripe with 404).
        return None if customer.deleted else customer

    async def _list(
        self, operation: str, *, email: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every customer matching the filter, one page request at a time."""
        starting_after: str | None = None
        while True:
            params: CustomerListParams = {"limit": self._page_size}
            if email is not None:
                params["email"] = email
            if starting_after is not None:
                params["starting_after"] = starting_after
            page = await self._call(operation, self._customers.list_async(params))
            items = [item.to_dict() for item in page.data]
            for item in items:
                yield item
            if not page.has_more or not items:
                return
            starting_after = str(items[-1]["id"])

    async def _call(self, operation: str, request: Awaitable[_T]) -> _T:
        try:
            return await request
        except (stripe.StripeError, httpx.HTTPError) as exc:
            # The SDK wraps transport errors itself; httpx.HTTPError is a safety net so that no
            # library exception escapes the provider boundary.
            raise self._sync_error(operation, exc) from exc

    def _sync_error(self, operation: str, exc: BaseException) -> ProviderSyncError:
        ambiguous = _is_ambiguous(exc)
        network = exc.__cause__ if isinstance(exc, stripe.APIConnectionError) else exc
        if isinstance(network, stripe.StripeError):
            status = f" (HTTP {network.http_status})" if network.http_status else ""
            detail = f"{network.user_message or type(network).__name__}{status}"
        elif network is not None:
            # The SDK's own text for network errors is a generic paragraph; the cause says more.
            text = str(network)
            detail = f"network error: {type(network).__name__}{': ' + text if text else ''}"
        else:
            detail = "network error"
        outcome = "; it may or may not have been applied" if ambiguous else ""
        return ProviderSyncError(
            f"stripe {operation} failed: {detail}{outcome}",
            provider=self.name,
            operation=operation,
            cause=exc,
            ambiguous=ambiguous,
        )


def _is_ambiguous(exc: BaseException) -> bool:
    """True unless Stripe surely did not apply the request.

    Sure: no connection was opened (refused, DNS, TLS, connect or pool timeout), or Stripe answered
    with a 4xx (including 429) — it validates before acting. Unsure: the request was sent but
    no answer came back (timeout, dropped connection), or a 5xx, which Stripe documents may
    follow partial execution (and replays as-is for the same idempotency key).
    """
    if isinstance(exc, stripe.APIConnectionError):
        return not _never_sent(exc.__cause__)
    if isinstance(exc, stripe.StripeError):
        return exc.http_status is None or exc.http_status >= 500
    return not _never_sent(exc)


def _never_sent(exc: BaseException | None) -> bool:
    # ConnectError covers refused, DNS and TLS failures; PoolTimeout is waiting for a free slot.
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _update_address(address: Address | None) -> CustomerUpdateParamsAddress | Literal[""]:
    """The whole address, ``""`` for cleared fields, or ``""`` to clear it entirely."""
    if address is None:
        return ""
    return cast(
        CustomerUpdateParamsAddress, {f: getattr(address, f) or "" for f in _ADDRESS_FIELDS}
    )


def _metadata_changes(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    """Changed and added keys with their values, removed keys as ``""`` (Stripe's unset).

    ``qzpay_customer_id`` is owned by qzpay, set at creation and never changed by updates.
    """
    changes = {k: v for k, v in after.items() if before.get(k) != v}
    changes.update({k: "" for k in before if k not in after})
    changes.pop(QZPAY_CUSTOMER_ID_KEY, None)
    return changes


def _text(value: object) -> str | None:
    """Stripe reports unset strings as null; ``""`` (what clearing sends) means unset too."""
    return value if isinstance(value, str) and value else None


def _provider_customer(data: Mapping[str, Any]) -> ProviderCustomer:
    raw_metadata = data.get("metadata")
    metadata = (
        {str(k): v for k, v in raw_metadata.items() if isinstance(v, str) and v}
        if isinstance(raw_metadata, Mapping)
        else {}
    )
    raw_address = data.get("address")
    address = None
    if isinstance(raw_address, Mapping):
        fields = {f: _text(raw_address.get(f)) for f in _ADDRESS_FIELDS}
        if any(v is not None for v in fields.values()):
            address = Address(**fields)
    return ProviderCustomer(
        id=str(data["id"]),
        email=_text(data.get("email")),
        name=_text(data.get("name")),
        phone=_text(data.get("phone")),
        address=address,
        metadata=metadata,
        qzpay_customer_id=metadata.get(QZPAY_CUSTOMER_ID_KEY),
        deleted=data.get("deleted") is True,
    )


def _signature_timestamp(header: str) -> int:
    """The ``t`` of a ``Stripe-Signature`` header of the documented shape
    (``t=<digits>,v1=<hex>[,v1=...][,v0=...]``), else WebhookSignatureError.

    The SDK's own parser is lenient where it should not be: it lets non-ASCII through to its
    constant-time compare (which then raises TypeError), takes the first of several ``t`` and
    reads signs, spaces and non-ASCII digits in it.
    """
    if len(header) > _MAX_SIGNATURE_HEADER or not header.isascii() or not header.isprintable():
        raise WebhookSignatureError("the Stripe-Signature header is malformed")
    timestamps: list[str] = []
    signatures = 0
    for part in header.split(","):
        key, sep, value = part.partition("=")
        if not (sep and key and value):
            raise WebhookSignatureError("the Stripe-Signature header is malformed")
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
        return _text(obj.get("id"))
    return _text(obj.get("customer"))
