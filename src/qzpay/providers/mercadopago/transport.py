"""The MercadoPago SDK on its own thread pool, sending each request once, to ``api_base``,
with its failures classified as ProviderSyncErrors that say whether they may have applied.

* The SDK is synchronous (``requests``). Every SDK call runs on a small thread pool that the
  client owns, so the event loop is never blocked; ``close()`` shuts the pool down.
* The SDK's API base (``https://api.mercadopago.com``) is fixed inside its ``Config``. It is
  redirected through the SDK's public ``http_client=`` hook: the SDK sends every request through
  a ``mercadopago.http.HttpClient``, and ours (:class:`SdkHttpClient`) re-roots the URL under
  ``api_base``. It refuses any URL outside the SDK's own base, so nothing can reach another host.
* The transport never resends. The SDK's default client retries 429 and 5xx (three times,
  through urllib3, on https); a blind resend hides whether the first attempt was applied. The
  caller decides, using ``ProviderSyncError.ambiguous`` and the idempotency key it supplied.
  Redirects are not followed, environment proxies are ignored, and each request opens its own
  connection: a stale pooled connection can never turn a request into an ambiguous failure.
* Every mutating call carries a deterministic ``X-Idempotency-Key`` (the SDK would otherwise
  send a random one per request): see :func:`idempotency_key`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import mercadopago  # type: ignore[import-untyped]  # the SDK ships no type information
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from qzpay.errors import ProviderSyncError
from qzpay.providers.base import ProviderCurrencyUnsupported
from qzpay.providers.common import sync_failure

PROVIDER: Final = "mercadopago"
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 64  # what the SDK accepts in x-idempotency-key

SdkRequest = Callable[[Any, Any], Any]
"""``request(sdk, options)``: one SDK call, such as ``sdk.customer().get(id, options)``."""


def idempotency_key(operation: str, subject: str, caller_key: str) -> str:
    """The ``X-Idempotency-Key`` sent for one logical operation.

    Deterministic in the operation (``create``/``update``/``delete``), the customer it acts on
    (our customer id, or MercadoPago's for a delete) and the caller's own idempotency key, which
    already tells one change from another; hashed because the SDK caps the header at 64
    characters while qzpay ids may be up to 255.
    """
    digest = hashlib.sha256(f"{operation}\n{subject}\n{caller_key}".encode()).hexdigest()
    key = f"qzpay-{operation}-{digest[:48]}"
    assert len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH
    return key


@dataclass(frozen=True, slots=True)
class Answer:
    """What MercadoPago answered: the HTTP status and the JSON body (None if there was none)."""

    status: int
    body: object

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def object(self) -> dict[str, Any] | None:
        return self.body if isinstance(self.body, dict) else None

    @property
    def message(self) -> str:
        """The error body's ``message`` ("" when there is none)."""
        return str((self.object or {}).get("message") or "")

    def cause_codes(self) -> set[str]:
        """The ``code`` of every entry in the error body's ``cause`` list."""
        causes = (self.object or {}).get("cause")
        if not isinstance(causes, list):
            return set()
        return {str(cause.get("code")) for cause in causes if isinstance(cause, dict)}


class MercadoPagoClient:
    """The SDK, each call on a worker thread; ``close()`` stops the threads.

    ``timeout`` bounds each wait for the server (connect excepted: ``connect_timeout``, after
    which the request is known not to have been sent); a slow trickle of bytes can take longer
    in total.
    """

    def __init__(
        self,
        access_token: str,
        api_base: str | None,
        *,
        timeout: float,
        connect_timeout: float,
        max_workers: int,
    ) -> None:
        http = SdkHttpClient(api_base, (min(connect_timeout, timeout), timeout))
        self._sdk = mercadopago.SDK(access_token, http_client=http)
        self._access_token = access_token
        self._timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="qzpay-mercadopago")

    async def call(self, operation: str, request: SdkRequest, *, key: str | None = None) -> Answer:
        """Run ``request`` on a worker thread with our request options (and ``key`` as the
        ``x-idempotency-key``); a failure to get an answer is a ProviderSyncError."""

        def send() -> Answer:
            raw = request(self._sdk, self._options(key))
            return Answer(status=int(raw["status"]), body=raw["response"])

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, send)
        except (requests.RequestException, _UnreadableAnswer) as exc:
            raise _transport_error(operation, exc) from exc

    async def close(self) -> None:
        """Stop the thread pool, letting requests in flight finish (their timeouts bound it)."""
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)

    def _options(self, key: str | None) -> Any:
        return mercadopago.config.RequestOptions(
            access_token=self._access_token,
            connection_timeout=float(self._timeout),
            max_retries=0,
            custom_headers={"x-idempotency-key": key} if key is not None else None,
        )


def status_error(operation: str, answer: Answer) -> ProviderSyncError:
    """MercadoPago answered with an error status.

    Ambiguous for 5xx (the request may have been partly executed), 423 (a request with
    the same idempotency key is still being processed) and 424 (a failed internal
    dependency, documented as retryable); every other 4xx, 429 included, was refused
    before anything was applied.
    """
    ambiguous = answer.status >= 500 or answer.status in (423, 424)
    data = answer.object or {}
    message = data.get("message") or data.get("error") or "no error message"
    causes = "; ".join(
        f"cause {cause.get('code')}: {cause.get('description')}"
        for cause in data.get("cause") or []
        if isinstance(cause, dict)
    )
    return sync_failure(
        PROVIDER,
        operation,
        f"{message} (HTTP {answer.status}{'; ' + causes if causes else ''})",
        ambiguous=ambiguous,
        cause=_AnswerError(answer.status, data),
    )


def answered(operation: str, answer: Answer, noun: str) -> dict[str, Any]:
    """The object (``noun``: customer, plan, preapproval) a success answered. A success without
    one was applied, but its outcome is unknown: an ambiguous ProviderSyncError."""
    data = answer.object
    if data is None or not isinstance(data.get("id"), str):
        raise ProviderSyncError(
            f"{PROVIDER} {operation} answered HTTP {answer.status} without a {noun}; "
            "it may or may not have been applied",
            provider=PROVIDER,
            operation=operation,
            ambiguous=True,
        )
    return data


def refused_currency(answer: Answer, refusals: tuple[str, ...]) -> bool:
    """Whether MercadoPago refused the request for its currency: a 400 whose message contains
    one of ``refusals`` (lower case; the wording differs by endpoint)."""
    message = answer.message.lower()
    return answer.status == 400 and any(refusal in message for refusal in refusals)


def currency_unsupported(
    currency: str, *, what: str, why: str, operation: str
) -> ProviderCurrencyUnsupported:
    """MercadoPago cannot charge ``what`` (subscription plans, subscriptions) in ``currency``."""
    return ProviderCurrencyUnsupported(
        f"{PROVIDER} cannot charge {what} in {currency}: {why}",
        provider=PROVIDER,
        currency=currency,
        operation=operation,
    )


def needs_back_url(operation: str, what: str) -> ProviderSyncError:
    """A create of ``what`` on a provider made without ``back_url``: nothing was sent."""
    return ProviderSyncError(
        f"{PROVIDER} {operation}: MercadoPagoProvider needs back_url= to create "
        f"{what} (MercadoPago requires one)",
        provider=PROVIDER,
        operation=operation,
    )


class _AnswerError(Exception):
    """The HTTP error MercadoPago answered, kept as ``ProviderSyncError.cause``."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {json.dumps(body, default=str)[:500]}")
        self.status = status
        self.body = dict(body)


class _UnreadableAnswer(Exception):
    """A success status whose body is not JSON: applied, but we cannot tell the result."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status} with a body that is not JSON")
        self.status = status


def _transport_error(operation: str, exc: BaseException) -> ProviderSyncError:
    text = str(exc)
    return sync_failure(
        PROVIDER,
        operation,
        f"network error: {type(exc).__name__}{': ' + text if text else ''}",
        ambiguous=not _never_sent(exc),
        cause=exc,
    )


def _never_sent(exc: BaseException) -> bool:
    """True when the request surely never left: the connection was never established.

    Refused, unresolvable and connect-timed-out connections surface from urllib3 as a
    ``NewConnectionError``/``ConnectTimeoutError`` (the former subclasses the latter). Anything
    later (reset, dropped answer, read timeout, TLS trouble, an unreadable body) is unsure.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(
        exc, requests.exceptions.SSLError
    ):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        return isinstance(reason, ConnectTimeoutError)
    return False


class SdkHttpClient(mercadopago.http.HttpClient):  # type: ignore[misc]  # untyped SDK base
    """The SDK's ``http_client=``: same contract, no retries, re-rooted at ``api_base``."""

    def __init__(self, api_base: str | None, timeout: tuple[float, float]) -> None:
        super().__init__()
        self._sdk_base = str(mercadopago.config.Config().api_base_url).rstrip("/")
        self._api_base = api_base.rstrip("/") if api_base is not None else self._sdk_base
        self._timeout = timeout

    def request(
        self, method: str, url: str, maxretries: object = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Send once; answer ``{"status": ..., "response": ...}`` like the SDK's client."""
        del maxretries
        for ignored in ("retry_on", "backoff_factor", "timeout"):
            kwargs.pop(ignored, None)
        if not (url == self._sdk_base or url.startswith(self._sdk_base + "/")):
            raise ValueError(f"refusing to send to {url!r}: not under {self._sdk_base}")
        target = self._api_base + url[len(self._sdk_base) :]
        with requests.Session() as session:
            session.trust_env = False  # no proxies or .netrc from the environment
            for scheme in ("http://", "https://"):
                session.mount(scheme, HTTPAdapter(max_retries=0))
            response = session.request(
                method, target, timeout=self._timeout, allow_redirects=False, **kwargs
            )
            status = response.status_code
            body: object = None
            if status != 204 and response.content:
                try:
                    body = json.loads(response.content)
                except ValueError:
                    if 200 <= status < 300:
                        raise _UnreadableAnswer(status) from None
        return {"status": status, "response": body}
