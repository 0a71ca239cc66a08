"""The Stripe SDK's async client, set up to never resend, and its errors made provider-neutral.

* The SDK's ``HTTPXClient`` does the HTTP: it is the SDK's default async transport (what
  ``stripe[async]`` installs), it wraps every transport error, body read included, into
  ``APIConnectionError``, and httpx never resends on its own. (aiohttp, the alternative,
  silently resends a GET or DELETE once when a connection drops.)
* SDK network retries are off (``max_network_retries=0``): a blind resend hides whether the
  first attempt was applied. The caller decides, using ``ProviderSyncError.ambiguous`` and the
  idempotency key it supplied.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Coroutine
from typing import TypeVar

import httpx
import stripe

from qzpay.errors import ProviderSyncError
from qzpay.providers.common import sync_failure

PROVIDER = "stripe"

_T = TypeVar("_T")


class StripeTransport:
    """One ``StripeClient`` on one connection pool; ``close()`` releases the pool.

    ``api_base`` redirects every SDK base address, so nothing reaches the real API by
    accident. ``timeout`` bounds a whole request; ``connect_timeout`` bounds opening the
    connection, which is the one wait after which the request is known not to have been sent.
    """

    def __init__(
        self, api_key: str, api_base: str | None, *, timeout: float, connect_timeout: float
    ) -> None:
        self._http = stripe.HTTPXClient(
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        )
        # The SDK's httpx client reads HTTP(S)_PROXY from the environment: billing traffic must
        # go where api_base says and nowhere else, so its pool is replaced by one that does not
        # (same TLS settings). Pinned by the provider contract's proxy test.
        self._http._client_async = httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=stripe.ca_bundle_path), trust_env=False
        )
        self._closed = False
        base = api_base.rstrip("/") if api_base is not None else None
        self.client = stripe.StripeClient(
            api_key,
            base_addresses=(
                {"api": base, "connect": base, "files": base, "meter_events": base}
                if base is not None
                else None
            ),
            max_network_retries=0,
            http_client=self._http,
        )

    async def call(self, operation: str, request: Awaitable[_T]) -> _T:
        """The request's result, or a ProviderSyncError."""
        self._check_open(request)
        try:
            return await request
        except (stripe.StripeError, httpx.HTTPError) as exc:
            # The SDK wraps transport errors itself; httpx.HTTPError is a safety net so that no
            # library exception escapes the provider boundary.
            raise sync_error(operation, exc) from exc

    async def call_or_none(self, operation: str, request: Awaitable[_T]) -> _T | None:
        """As :meth:`call`, but None when Stripe answers 404 (no such object)."""
        self._check_open(request)
        try:
            return await request
        except stripe.StripeError as exc:
            if exc.http_status == 404:
                return None
            raise sync_error(operation, exc) from exc
        except httpx.HTTPError as exc:
            raise sync_error(operation, exc) from exc

    def _check_open(self, request: Awaitable[object]) -> None:
        """A call after close() is a programming error that sent nothing: RuntimeError, not a
        ProviderSyncError that may have been applied."""
        if self._closed:
            if isinstance(request, Coroutine):
                request.close()
            raise RuntimeError("the Stripe provider is closed")

    async def close(self) -> None:
        self._closed = True
        # The SDK leaves this method unannotated; it closes the httpx.AsyncClient it holds.
        await self._http.close_async()  # type: ignore[no-untyped-call]


def sync_error(operation: str, exc: BaseException) -> ProviderSyncError:
    """The ProviderSyncError for a failed request, with the most telling detail we have."""
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
    return sync_failure(PROVIDER, operation, detail, ambiguous=_is_ambiguous(exc), cause=exc)


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
