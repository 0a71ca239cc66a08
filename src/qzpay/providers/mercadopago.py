"""MercadoPago behind the PaymentProvider protocol, via the official ``mercadopago`` SDK (3.x).

Design choices, each for a reason:

* The SDK is synchronous (``requests``). Every SDK call runs on a small thread pool that the
  provider owns, so the event loop is never blocked; ``close()`` shuts the pool down.
* The SDK's API base (``https://api.mercadopago.com``) is fixed inside its ``Config``. It is
  redirected through the SDK's public ``http_client=`` hook: the SDK sends every request through
  a ``mercadopago.http.HttpClient``, and ours (:class:`_Transport`) re-roots the URL under
  ``api_base``. It refuses any URL outside the SDK's own base, so nothing can reach another host.
* The transport never resends. The SDK's default client retries 429 and 5xx (three times,
  through urllib3, on https); a blind resend hides whether the first attempt was applied. The
  caller decides, using ``ProviderSyncError.ambiguous`` and the idempotency key it supplied.
  Redirects are not followed, environment proxies are ignored, and each request opens its own
  connection: a stale pooled connection can never turn a request into an ambiguous failure.
* Every mutating call carries a deterministic ``X-Idempotency-Key`` (the SDK would otherwise
  send a random one per request): see :func:`idempotency_key`.
* MercadoPago allows one customer per email per integrator and answers a second create with
  its "customer already exists" error (cause code ``101``). ``create_customer`` resolves it by
  searching that email: a customer that carries our id (an earlier attempt of the same create)
  is returned; any other is a :class:`MercadoPagoEmailTaken` (``ConflictError`` with code
  ``provider_email_taken``, carrying that customer), never a silent take-over here. The sync
  machinery (``qzpay.customers.sync``) then adopts a customer created outside qzpay that no
  other qzpay customer is linked to, through :meth:`MercadoPagoProvider.adopt_customer`.
* Only plain Python values leave this module; SDK objects and errors are converted here.

Field mapping (qzpay ``Customer`` -> MercadoPago customer), every row round-trips
-------------------------------------------------------------------------------

=========================  ======================================================
qzpay                      MercadoPago
=========================  ======================================================
``email``                  ``email`` (MercadoPago refuses to change it once set:
                           cause 126, a non-ambiguous ProviderSyncError)
``name``                   ``first_name`` + ``last_name``, split at the first space
``phone`` (E.164)          ``phone.area_code`` = country calling code,
                           ``phone.number`` = national significant number
``address.line1``          ``address.street_name``
``address.postal_code``    ``address.zip_code``
``id``                     ``description`` = ``qzpay_customer_id:<id>``, set at
                           creation and never changed (find and reconcile read it;
                           edited away at MercadoPago, the link is lost)
=========================  ======================================================

Not sent, kept in qzpay only: ``metadata`` (every key: the customers API documents no
writable metadata), and ``address.line2``, ``address.city``, ``address.state`` and
``address.country`` (the documented customer address has ``zip_code``, ``street_name`` and a
numeric ``street_number`` only). ``ProviderCustomer.metadata`` therefore holds nothing but
``qzpay_customer_id``, and ``ProviderCustomer.address`` only ``line1`` and ``postal_code``;
:meth:`MercadoPagoProvider.held_view` gives the part of a qzpay customer MercadoPago can hold,
to compare like with like. MercadoPago's ``street_number``, ``identification``, cards and its
own ``metadata`` are neither written nor read.

Names: ``"Ana Souza"`` is sent as first ``"Ana"``, last ``"Souza"``; ``"María José García"``
as ``"María"`` / ``"José García"``; a single name as ``first_name`` only. Read back, the two
are joined with one space. A name whose remainder after the first space is blank or starts
with whitespace (``"Ana  Souza"``) is sent whole as ``first_name`` so that it still
round-trips. This is a storage encoding, not a claim about which part is the family name.

Phones: E.164 is ``+`` country code national-number, so ``"+5511912345678"`` is sent as
``{"area_code": "55", "number": "11912345678"}`` and rebuilt exactly. A phone edited at
MercadoPago into another convention (a local area code) is reported as its raw digits.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import mercadopago  # type: ignore[import-untyped]  # the SDK ships no type information
import phonenumbers
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

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
)

__all__ = [
    "MAX_PAGE_SIZE",
    "MercadoPagoEmailTaken",
    "MercadoPagoProvider",
    "idempotency_key",
    "sign_manifest",
    "split_name",
]

MAX_PAGE_SIZE: Final = 100
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 64  # what the SDK accepts in x-idempotency-key
DESCRIPTION_PREFIX: Final = f"{QZPAY_CUSTOMER_ID_KEY}:"
_PROVIDER: Final = "mercadopago"
_DUPLICATE_EMAIL: Final = "101"  # "the customer already exist."
_SIGNATURE_HEADER: Final = "x-signature"
_REQUEST_ID_HEADER: Final = "x-request-id"
_MAX_SIGNATURE_HEADER: Final = 4096
_MAX_TS_DIGITS: Final = 15  # seconds or milliseconds since the epoch

_T = TypeVar("_T")


class MercadoPagoEmailTaken(ProviderEmailTaken):
    """MercadoPago already has a customer with this email that is not this qzpay customer.

    ``existing`` is that customer (``None`` if MercadoPago's search did not return it):
    ``existing.qzpay_customer_id`` names the other qzpay customer, or is ``None`` for a
    customer created outside qzpay. This provider never takes one over by itself; the sync
    machinery adopts such a customer (:meth:`MercadoPagoProvider.adopt_customer`) only when no
    other qzpay customer is linked to it. It is a ``ConflictError`` for callers and a
    non-ambiguous ``ProviderSyncError`` for the sync machinery, so a create at other providers
    is undone as for any clean failure.
    """

    def __init__(
        self,
        message: str,
        *,
        existing: ProviderCustomer | None,
        operation: str = "create_customer",
    ) -> None:
        super().__init__(message, provider=_PROVIDER, existing=existing, operation=operation)


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


def split_name(name: str) -> tuple[str, str]:
    """``(first_name, last_name)`` for a trimmed qzpay name; see the module docstring."""
    first, _, rest = name.partition(" ")
    if not first or not rest or rest != rest.strip():
        return name, ""
    return first, rest


# -- transport -----------------------------------------------------------------------------


class _UnreadableAnswer(Exception):
    """A success status whose body is not JSON: applied, but we cannot tell the result."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status} with a body that is not JSON")
        self.status = status


class _Transport(mercadopago.http.HttpClient):  # type: ignore[misc]  # untyped SDK base
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


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: object

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def object(self) -> dict[str, Any] | None:
        return self.body if isinstance(self.body, dict) else None


class _Customers:
    """The SDK's customer resource, narrowed to typed calls (runs on a worker thread)."""

    def __init__(self, sdk: Any, access_token: str, timeout: float) -> None:
        self._sdk = sdk
        self._access_token = access_token
        self._timeout = timeout

    def _options(self, key: str | None = None) -> Any:
        return mercadopago.config.RequestOptions(
            access_token=self._access_token,
            connection_timeout=float(self._timeout),
            max_retries=0,
            custom_headers={"x-idempotency-key": key} if key is not None else None,
        )

    @staticmethod
    def _answer(raw: Any) -> _Answer:
        return _Answer(status=int(raw["status"]), body=raw["response"])

    def create(self, body: dict[str, Any], key: str) -> _Answer:
        return self._answer(self._sdk.customer().create(body, self._options(key)))

    def update(self, customer_id: str, body: dict[str, Any], key: str) -> _Answer:
        return self._answer(self._sdk.customer().update(customer_id, body, self._options(key)))

    def delete(self, customer_id: str, key: str) -> _Answer:
        return self._answer(self._sdk.customer().delete(customer_id, self._options(key)))

    def get(self, customer_id: str) -> _Answer:
        return self._answer(self._sdk.customer().get(customer_id, self._options()))

    def search(self, filters: dict[str, Any]) -> _Answer:
        return self._answer(self._sdk.customer().search(filters, self._options()))


# -- the provider ----------------------------------------------------------------------------


class MercadoPagoProvider(ClosingContext):
    """Customers at MercadoPago. One instance owns one thread pool; ``close()`` it when done.

    ``api_base`` points the SDK at another server (a local test double). ``timeout`` bounds
    each wait for the server (connect excepted: ``connect_timeout``, after which the request is
    known not to have been sent); a slow trickle of bytes can take longer in total.
    ``webhook_tolerance`` (seconds), when set, rejects notifications whose signed ``ts`` is
    further from now; it is off by default, as in the SDK: MercadoPago's documentation does not
    say whether a redelivery is signed anew, and a replay only makes qzpay re-fetch.
    """

    name: str = _PROVIDER

    def __init__(
        self,
        access_token: str,
        webhook_secret: str | None = None,
        api_base: str | None = None,
        *,
        timeout: float = 20.0,
        connect_timeout: float = 5.0,
        webhook_tolerance: int | None = None,
        page_size: int = MAX_PAGE_SIZE,
        max_workers: int = 4,
    ) -> None:
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if webhook_tolerance is not None and webhook_tolerance <= 0:
            raise ValueError("webhook_tolerance must be a positive number of seconds or None")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be from 1 to {MAX_PAGE_SIZE}")
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._webhook_secret = webhook_secret
        self._webhook_tolerance = webhook_tolerance
        self._page_size = page_size
        transport = _Transport(api_base, (min(connect_timeout, timeout), timeout))
        sdk = mercadopago.SDK(access_token, http_client=transport)
        self._customers = _Customers(sdk, access_token, timeout)
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="qzpay-mercadopago")

    # -- customers -------------------------------------------------------------------------

    async def create_customer(
        self, customer: Customer, *, idempotency_key: str
    ) -> ProviderCustomer:
        """Create with every field MercadoPago can hold and our id in ``description``.

        If the email is taken at MercadoPago, the customer carrying our id is returned (an
        earlier attempt of this create landed); anything else raises MercadoPagoEmailTaken.
        """
        body = _create_body(customer)
        key = _key("create", customer.id, idempotency_key)
        answer = await self._run("create_customer", lambda: self._customers.create(body, key))
        if answer.ok:
            return self._parsed("create_customer", answer)
        if answer.status == 400 and _DUPLICATE_EMAIL in _cause_codes(answer):
            return await self._resolve_taken_email(customer)
        raise self._status_error("create_customer", answer)

    async def update_customer(
        self,
        provider_customer_id: str,
        before: Customer,
        after: Customer,
        *,
        idempotency_key: str,
    ) -> ProviderCustomer:
        """Send only what changed among the fields MercadoPago holds (``""`` clears one).

        Changes to fields kept only in qzpay (metadata, most of the address) send nothing, and
        neither does an email change (MercadoPago refuses to change an email once set). With
        nothing to send this only reads.
        """
        body = _update_body(before, after)
        if not body:
            current = await self._retrieve("update_customer", provider_customer_id)
            if current is None:
                raise self._missing("update_customer", provider_customer_id)
            return current
        key = _key("update", after.id, idempotency_key)
        answer = await self._run(
            "update_customer",
            lambda: self._customers.update(provider_customer_id, body, key),
        )
        if answer.ok:
            return self._parsed("update_customer", answer)
        if answer.status == 404:
            raise self._missing("update_customer", provider_customer_id)
        raise self._status_error("update_customer", answer)

    async def delete_customer(self, provider_customer_id: str, *, idempotency_key: str) -> None:
        key = _key("delete", provider_customer_id, idempotency_key)
        answer = await self._run(
            "delete_customer", lambda: self._customers.delete(provider_customer_id, key)
        )
        if answer.ok or answer.status == 404:
            return  # 404: already gone, the goal of the call is met
        raise self._status_error("delete_customer", answer)

    async def retrieve_customer(self, provider_customer_id: str) -> ProviderCustomer | None:
        return await self._retrieve("retrieve_customer", provider_customer_id)

    async def adopt_customer(
        self, provider_customer_id: str, customer: Customer, *, idempotency_key: str
    ) -> ProviderCustomer:
        """Take over a customer created outside qzpay (one per email: see the module docstring).

        Writes ``description = qzpay_customer_id:<id>`` (replacing any description it had) and
        every field MercadoPago holds, cleared ones as ``""``; its email stays as it is
        (MercadoPago refuses changes, and it matches case-insensitively). A customer that
        carries another qzpay customer's id is refused with MercadoPagoEmailTaken.
        """
        current = await self._retrieve("adopt_customer", provider_customer_id)
        if current is None:
            raise self._missing("adopt_customer", provider_customer_id)
        if current.qzpay_customer_id not in (None, customer.id):
            raise MercadoPagoEmailTaken(
                f"mercadopago customer {provider_customer_id} belongs to qzpay customer "
                f"{current.qzpay_customer_id}; it cannot be adopted for {customer.id}",
                existing=current,
                operation="adopt_customer",
            )
        body = _adopt_body(customer)
        key = _key("adopt", customer.id, idempotency_key)
        answer = await self._run(
            "adopt_customer",
            lambda: self._customers.update(provider_customer_id, body, key),
        )
        if answer.ok:
            return self._parsed("adopt_customer", answer)
        if answer.status == 404:
            raise self._missing("adopt_customer", provider_customer_id)
        raise self._status_error("adopt_customer", answer)

    async def release_customer(
        self, provider_customer_id: str, customer: Customer, *, idempotency_key: str
    ) -> None:
        """Clear ``description`` if it carries ``customer.id``; the fields adoption wrote stay."""
        current = await self._retrieve("release_customer", provider_customer_id)
        if current is None or current.qzpay_customer_id != customer.id:
            return
        key = _key("release", customer.id, idempotency_key)
        answer = await self._run(
            "release_customer",
            lambda: self._customers.update(provider_customer_id, {"description": ""}, key),
        )
        if not answer.ok and answer.status != 404:
            raise self._status_error("release_customer", answer)

    async def find_customer(self, customer: Customer) -> ProviderCustomer | None:
        """The customer among those searched by this exact email whose ``description`` carries
        ``customer.id``; the oldest if several ever do.

        A customer with the same email but no qzpay id is *not* returned: the service deletes
        what this finds when it undoes a create. :meth:`find_unmanaged` reports that case.
        """
        matches = [
            found
            async for found in self._search("find_customer", email=customer.email)
            if found[1].qzpay_customer_id == customer.id
        ]
        return min(matches, key=lambda match: match[0])[1] if matches else None

    async def find_unmanaged(self, customer: Customer) -> ProviderCustomer | None:
        """The one customer with this email (case-insensitively) that carries no qzpay id.

        None when there is none, or when the email is ambiguous (several such customers). The
        provider cannot tell whether that customer is linked to another qzpay customer: the
        caller must check its links before adopting it.
        """
        wanted = customer.email.casefold()
        candidates = [
            found
            async for _, found in self._search("find_customer", email=customer.email)
            if (found.email or "").casefold() == wanted
        ]
        unmanaged = [c for c in candidates if c.qzpay_customer_id is None]
        return unmanaged[0] if len(unmanaged) == 1 else None

    async def list_customers(self) -> AsyncIterator[ProviderCustomer]:
        """Every customer, oldest first, page by page through the search API.

        The search pages by offset: a customer deleted during the walk shifts the later pages,
        so one customer may be missed (the next reconcile sees it) and one seen twice is
        reported once.
        """
        seen: set[str] = set()
        async for _, found in self._search("list_customers"):
            if found.id not in seen:
                seen.add(found.id)
                yield found

    @staticmethod
    def held_view(customer: Customer) -> Customer:
        """``customer`` reduced to what MercadoPago holds of it (for drift comparisons).

        Metadata and the address fields MercadoPago has no place for are dropped, exactly as
        :func:`_create_body` leaves them out.
        """
        address = _held_address(customer.address)
        return customer.model_copy(update={"address": address, "metadata": {}})

    def merge_remote(self, local: Customer, remote: ProviderCustomer) -> Customer:
        """MercadoPago's name, phone, street and zip code over ``local``; the rest stays.

        Its email is the one the customer was created with (MercadoPago refuses changes), so it
        is never taken from there; metadata and the other address parts live only in qzpay.
        """
        address = local.address
        held = _held_address(remote.address)
        if held is not None or address is not None:
            base = address or Address()
            merged = base.model_copy(
                update={
                    "line1": held.line1 if held else None,
                    "postal_code": held.postal_code if held else None,
                }
            )
            address = None if merged == Address() else merged
        return local.model_copy(
            update={"name": remote.name, "phone": remote.phone, "address": address}
        )

    # -- webhooks --------------------------------------------------------------------------

    def parse_webhook(
        self,
        payload: bytes,
        headers: Mapping[str, str],
        *,
        query: Mapping[str, str] | None = None,
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
        WebhookPayloadError.
        """
        if self._webhook_secret is None:
            raise QZPayError(
                "MercadoPagoProvider was created without webhook_secret; it cannot verify webhooks",
                code="configuration_error",
            )
        signature = _header(headers, _SIGNATURE_HEADER)
        if not signature:
            raise WebhookSignatureError("the x-signature header is missing")
        ts, v1 = _parse_signature(signature)
        data_id = _blank_to_none((query or {}).get("data.id"))
        request_id = _blank_to_none(_header(headers, _REQUEST_ID_HEADER))
        try:
            expected = sign_manifest(
                self._webhook_secret, data_id=data_id, request_id=request_id, ts=ts
            )
        except UnicodeEncodeError as exc:  # a lone surrogate in data.id or x-request-id
            raise WebhookSignatureError("data.id or x-request-id is not valid text") from exc
        if not hmac.compare_digest(expected, v1.lower()):
            raise WebhookSignatureError("invalid MercadoPago signature")
        if self._webhook_tolerance is not None:
            signed_at = int(ts) / (1000 if len(ts) > 11 else 1)  # documented as ms, sent as s
            if abs(time.time() - signed_at) > self._webhook_tolerance:
                raise WebhookSignatureError("the MercadoPago signature is outside the tolerance")
        try:
            raw = json.loads(payload.decode("utf-8"))
        except RecursionError as exc:
            raise WebhookPayloadError("the notification body is nested too deeply") from exc
        except ValueError as exc:  # UnicodeDecodeError included
            raise WebhookPayloadError("the notification body is not UTF-8 JSON") from exc
        return _event(raw, data_id)

    async def close(self) -> None:
        """Stop the thread pool, letting requests in flight finish (their timeouts bound it)."""
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)

    # -- internals -------------------------------------------------------------------------

    async def _run(self, operation: str, call: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call)
        except (requests.RequestException, _UnreadableAnswer) as exc:
            raise self._transport_error(operation, exc) from exc

    async def _retrieve(self, operation: str, provider_customer_id: str) -> ProviderCustomer | None:
        answer = await self._run(operation, lambda: self._customers.get(provider_customer_id))
        if answer.status == 404:
            return None
        if not answer.ok:
            raise self._status_error(operation, answer)
        return self._parsed(operation, answer)

    async def _search(
        self, operation: str, *, email: str | None = None
    ) -> AsyncIterator[tuple[tuple[str, str], ProviderCustomer]]:
        """Matching customers with a sort key (date_created, id), one page request at a time."""
        offset = 0
        while True:
            filters: dict[str, Any] = {"limit": self._page_size, "offset": offset}
            if email is not None:
                filters["email"] = email
            answer = await self._run(operation, functools.partial(self._customers.search, filters))
            page = answer.object
            results = page.get("results") if page is not None else None
            if not answer.ok or not isinstance(results, list):
                raise self._status_error(operation, answer)
            for item in results:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    created = item.get("date_created")
                    sort_key = (created if isinstance(created, str) else "", item["id"])
                    yield sort_key, _provider_customer(item)
            offset += len(results)
            paging = page.get("paging") if page is not None else None
            total = paging.get("total") if isinstance(paging, dict) else None
            if not results or (isinstance(total, int) and offset >= total):
                return

    async def _resolve_taken_email(self, customer: Customer) -> ProviderCustomer:
        """After "customer already exists": return ours, or raise MercadoPagoEmailTaken."""
        wanted = customer.email.casefold()
        try:
            holders = [
                found
                async for found in self._search("create_customer", email=customer.email)
                if (found[1].email or "").casefold() == wanted
            ]
        except ProviderSyncError as failure:
            # The email is taken, perhaps by our own earlier attempt: the caller must look.
            raise ProviderSyncError(
                f"mercadopago create_customer: the email of {customer.id} is taken and the "
                f"search for its holder failed ({failure.message}); it may be ours",
                provider=self.name,
                operation="create_customer",
                cause=failure,
                ambiguous=True,
            ) from failure
        mine = [found for found in holders if found[1].qzpay_customer_id == customer.id]
        if mine:
            return min(mine, key=lambda match: match[0])[1]
        existing = min(holders, key=lambda match: match[0])[1] if holders else None
        if existing is None:
            whose = "a customer its search does not return"
        elif existing.qzpay_customer_id is None:
            whose = f"customer {existing.id}, which qzpay did not create (link it explicitly)"
        else:
            whose = f"customer {existing.id} of qzpay customer {existing.qzpay_customer_id}"
        raise MercadoPagoEmailTaken(
            f"mercadopago already has {whose} with the email of {customer.id}; "
            "it allows one customer per email",
            existing=existing,
        )

    def _parsed(self, operation: str, answer: _Answer) -> ProviderCustomer:
        data = answer.object
        if data is None or not isinstance(data.get("id"), str):
            # A success whose body we cannot read: applied, but the outcome is unknown.
            raise ProviderSyncError(
                f"mercadopago {operation} answered HTTP {answer.status} without a customer; "
                "it may or may not have been applied",
                provider=self.name,
                operation=operation,
                ambiguous=True,
            )
        return _provider_customer(data)

    def _missing(self, operation: str, provider_customer_id: str) -> ProviderSyncError:
        return ProviderSyncError(
            f"mercadopago customer {provider_customer_id} does not exist",
            provider=self.name,
            operation=operation,
        )

    def _status_error(self, operation: str, answer: _Answer) -> ProviderSyncError:
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
        outcome = "; it may or may not have been applied" if ambiguous else ""
        return ProviderSyncError(
            f"mercadopago {operation} failed: {message} (HTTP {answer.status}"
            f"{'; ' + causes if causes else ''}){outcome}",
            provider=self.name,
            operation=operation,
            cause=_AnswerError(answer.status, data),
            ambiguous=ambiguous,
        )

    def _transport_error(self, operation: str, exc: BaseException) -> ProviderSyncError:
        ambiguous = not _never_sent(exc)
        text = str(exc)
        outcome = "; it may or may not have been applied" if ambiguous else ""
        return ProviderSyncError(
            f"mercadopago {operation} failed: network error: {type(exc).__name__}"
            f"{': ' + text if text else ''}{outcome}",
            provider=self.name,
            operation=operation,
            cause=exc,
            ambiguous=ambiguous,
        )


class _AnswerError(Exception):
    """The HTTP error MercadoPago answered, kept as ``ProviderSyncError.cause``."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {json.dumps(body, default=str)[:500]}")
        self.status = status
        self.body = dict(body)


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


def _key(operation: str, subject: str, caller_key: str) -> str:
    return idempotency_key(operation, subject, caller_key)


def _cause_codes(answer: _Answer) -> set[str]:
    causes = (answer.object or {}).get("cause")
    if not isinstance(causes, list):
        return set()
    return {str(cause.get("code")) for cause in causes if isinstance(cause, dict)}


# -- mapping ---------------------------------------------------------------------------------


def _create_body(customer: Customer) -> dict[str, Any]:
    """Only the set fields: an absent field is simply unset on a new customer."""
    body: dict[str, Any] = {
        "email": customer.email,
        "description": DESCRIPTION_PREFIX + customer.id,
    }
    if customer.name is not None:
        first, last = split_name(customer.name)
        body["first_name"] = first
        if last:
            body["last_name"] = last
    if customer.phone is not None:
        body["phone"] = _phone_body(customer.phone)
    address = _address_body(customer.address, clear=False)
    if address:
        body["address"] = address
    return body


def _adopt_body(customer: Customer) -> dict[str, Any]:
    """Our id and every held field, unset ones as ``""`` (the customer had values of its own)."""
    first, last = split_name(customer.name) if customer.name is not None else ("", "")
    return {
        "description": DESCRIPTION_PREFIX + customer.id,
        "first_name": first,
        "last_name": last,
        "phone": (
            _phone_body(customer.phone)
            if customer.phone is not None
            else {"area_code": "", "number": ""}
        ),
        "address": _address_body(customer.address, clear=True),
    }


def _update_body(before: Customer, after: Customer) -> dict[str, Any]:
    """The changed fields MercadoPago holds; ``""`` clears a field (name parts together).

    An email change is not sent: MercadoPago refuses to change an email once set (cause 126),
    so the customer keeps the email it was created with there, and the new one lives in qzpay.
    """
    body: dict[str, Any] = {}
    if before.name != after.name:
        first, last = split_name(after.name) if after.name is not None else ("", "")
        body["first_name"] = first
        body["last_name"] = last
    if before.phone != after.phone:
        body["phone"] = (
            _phone_body(after.phone) if after.phone is not None else {"area_code": "", "number": ""}
        )
    if _held_address(before.address) != _held_address(after.address):
        body["address"] = _address_body(after.address, clear=True)
    return body


def _phone_body(phone: str) -> dict[str, str]:
    parsed = phonenumbers.parse(phone, None)
    return {
        "area_code": str(parsed.country_code),
        "number": phonenumbers.national_significant_number(parsed),
    }


def _address_body(address: Address | None, *, clear: bool) -> dict[str, str]:
    """``street_name`` and ``zip_code``; with ``clear``, unset ones as ``""`` too."""
    fields = {
        "street_name": address.line1 if address is not None else None,
        "zip_code": address.postal_code if address is not None else None,
    }
    if clear:
        return {k: v or "" for k, v in fields.items()}
    return {k: v for k, v in fields.items() if v}


def _held_address(address: Address | None) -> Address | None:
    if address is None or (address.line1 is None and address.postal_code is None):
        return None
    return Address(line1=address.line1, postal_code=address.postal_code)


def _text(value: object) -> str | None:
    """Blank (``""``, whitespace or missing) reads as unset, as clearing writes ``""``."""
    return value if isinstance(value, str) and value.strip() else None


def _blank_to_none(value: str | None) -> str | None:
    return value.strip() if value is not None and value.strip() else None


def _read_name(first: str | None, last: str | None) -> str | None:
    if first and last:
        return f"{first} {last}"
    return first or last


def _read_phone(raw: object) -> str | None:
    if not isinstance(raw, Mapping):
        return None
    area = _text(raw.get("area_code"))
    number = _text(raw.get("number"))
    if area is None and number is None:
        return None
    if area is not None and number is not None and area.isdigit() and number.isdigit():
        candidate = f"+{area}{number}"
        try:
            parsed = phonenumbers.parse(candidate, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if (
            parsed is not None
            and phonenumbers.is_valid_number(parsed)
            and phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == candidate
        ):
            return candidate
    return " ".join(part for part in (area, number) if part)  # another convention: as stored


def _read_address(raw: object) -> Address | None:
    if not isinstance(raw, Mapping):
        return None
    line1 = _text(raw.get("street_name"))
    postal_code = _text(raw.get("zip_code"))
    if line1 is None and postal_code is None:
        return None
    return Address(line1=line1, postal_code=postal_code)


def _provider_customer(data: Mapping[str, Any]) -> ProviderCustomer:
    description = _text(data.get("description"))
    qzpay_id = None
    if description is not None and description.startswith(DESCRIPTION_PREFIX):
        qzpay_id = description[len(DESCRIPTION_PREFIX) :] or None
    return ProviderCustomer(
        id=str(data["id"]),
        email=_text(data.get("email")),
        name=_read_name(_text(data.get("first_name")), _text(data.get("last_name"))),
        phone=_read_phone(data.get("phone")),
        address=_read_address(data.get("address")),
        metadata={QZPAY_CUSTOMER_ID_KEY: qzpay_id} if qzpay_id is not None else {},
        qzpay_customer_id=qzpay_id,
        deleted=False,  # MercadoPago answers a deleted customer with 404
    )


# -- webhooks --------------------------------------------------------------------------------


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


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def _parse_signature(header: str) -> tuple[str, str]:
    """``(ts, v1)`` from ``ts=<digits>,v1=<hex>`` (parts in any order, spaces allowed).

    Printable ASCII only (``hmac.compare_digest`` raises TypeError on other text), each of
    ``ts`` and ``v1`` once, ``ts`` ASCII digits (``int`` would read other scripts' digits).
    """
    malformed = "the x-signature header is not ts=...,v1=..."
    if len(header) > _MAX_SIGNATURE_HEADER or not header.isascii() or not header.isprintable():
        raise WebhookSignatureError(malformed)
    values: dict[str, str] = {}
    for part in header.split(","):
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
    customer_id = _text(data.get("customer_id"))
    if customer_id is None and kind.split(".")[0] == "customer" and body_data_id is not None:
        customer_id = str(body_data_id)
    return ProviderEvent(id=str(event_id), type=kind, provider_customer_id=customer_id, raw=raw)
