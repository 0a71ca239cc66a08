"""A loopback fake of MercadoPago's Customers API and of its webhook signing, for the tests.

No public fake MercadoPago server exists. This one implements what MercadoPago's public
documentation describes for the calls qzpay makes, is driven through the official SDK, and
listens on 127.0.0.1 only. It keeps everything in memory and answers from a background
thread, so it serves any test's event loop (and the blocking SDK) alike.

Documentation followed (MercadoPago Developers; the API reference is also published as
OpenAPI files in https://github.com/mercadopago/devsite-docs, ``reference/api/customers.yaml``
and ``reference/api-json/customers.json``):

* Create customer, ``POST /v1/customers``: body fields ``email`` (required), ``first_name``,
  ``last_name``, ``phone{area_code, number}``, ``identification{type, number}``,
  ``default_address``, ``address{id, zip_code, street_name, street_number}``,
  ``date_registered``, ``description``, ``default_card``; answer 200 with the customer.
  https://www.mercadopago.com.mx/developers/en/reference/customers/_customers/post
* Get / update customer, ``GET|PUT /v1/customers/{id}``; search, ``GET /v1/customers/search``
  by ``email`` with ``results`` and ``paging{limit, offset, total}``.
  https://www.mercadopago.com.mx/developers/en/reference/online-payments/automatic-payments/customers/search-customer/get
  https://www.mercadopago.com.br/developers/en/docs/checkout-api/cards-and-customers-management/search-customers
* Error codes of the customers API (400): 101 "the customer already exist.", 103 "parameter
  must be an object", 106 email,
  107 first_name, 108 last_name, 109 phone.area_code, 110 phone.number, 113 address.zip_code,
  114 address.street_name, 116 description, 118 "the body must be a Json Object.",
  125 "invalid parameters.", 126 "invalid parameter. You cannot update the email."; 401
  ``unauthorized``; 404 ``not_found`` (same reference pages).
* "The email field can only be updated if the customer does not have an email yet":
  https://www.mercadopago.com.br/developers/pt/docs/checkout-api/cards-and-customers-management/modify-customer
* One customer per email per integrator (owner): MercadoPago's documentation team in
  https://github.com/mercadopago/devsite-docs/pull/1314 (review of 2021-09-22).
* Error body shape ``{"message", "error", "status", "cause": [{"code", "description"}]}``, as
  returned by the API: https://github.com/mercadopago/devsite-docs/issues/745 and
  https://github.com/mercadopago/sdk-ruby/issues/58.
* ``X-Idempotency-Key``: a repeated key returns the first result instead of acting again
  https://www.mercadopago.com.mx/developers/en/docs/wallet-connect/payment-flow/idempotency
  (documented for payments; off by default here, see below).
* Webhooks, "Validate notification origin": the ``x-signature`` header is ``ts=<ts>,v1=<hash>``;
  ``v1`` is the hex HMAC-SHA256, keyed with the application's secret signature, of the manifest
  ``id:[data.id_url];request-id:[x-request-id_header];ts:[ts_header];`` where ``data.id`` comes
  from the notification URL's query string and absent values are removed from the template;
  the body is the notification ``{id, live_mode, type, date_created, user_id, api_version,
  action, data{id}}``.
  https://www.mercadopago.com.mx/developers/en/docs/your-integrations/notifications/webhooks
  (``guides/additional-content/your-integrations/webhooks.en.md`` in devsite-docs)
* The only customer-scoped notification documented, Card Updater's ``card.updated``
  (``type`` ``automatic-payments``, ``data{customer_id, new_card_id, old_card_id}``, no
  ``data.id``):
  https://www.mercadopago.com.br/developers/en/docs/checkout-api/additional-content/your-integrations/notifications/additional-info

* Subscription plans (``/preapproval_plan``): see :mod:`tests.support.fake_mercadopago_plans`,
  which this fake routes them to (same authorization, fault proxy and idempotency handling).
* Subscriptions (``/preapproval``): see :mod:`tests.support.fake_mercadopago_preapproval`, routed
  the same way; its test hooks (``/_test/…``, and ``/_checkout/…`` where ``init_point`` points)
  need no authorization. The fake delivers no notification by itself (nothing here does):
  :meth:`FakeMercadoPago.preapproval_notifications` builds, signed, the ``subscription_preapproval``
  notifications MercadoPago would have sent for the changes so far, for :meth:`deliver`.

Assumptions, where the documentation is silent (each pinned by a test of the fake):

* ``DELETE /v1/customers/{id}`` (exposed by every official SDK, absent from the reference)
  answers 200 with the deleted customer; a deleted customer is then 404 everywhere.
* Emails are unique and searched case-insensitively; stored as sent.
* ``""`` clears a field on update; ``phone`` and ``address`` objects merge the keys sent.
* Search without ``email`` lists every customer, oldest first; ``limit`` is 1..100 (default
  10), ``offset`` at least 0.
* Fields the reference does not list are refused (125), so nothing can depend on them.
* Phone parts must be digit strings (or ``""``).
* Idempotency keys are honoured only with ``honour_idempotency=True``: MercadoPago documents
  the header for payments, not for customers, so the provider must be correct either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

from tests.support.fake_mercadopago_plans import APPLICATION_ID, PlanRefusal, PreapprovalPlans
from tests.support.fake_mercadopago_preapproval import Preapprovals

ACCESS_TOKEN = "TEST-qzpay-fake-mercadopago-token"
WEBHOOK_SECRET = "qzpay-fake-mercadopago-webhook-secret"
USER_ID = 1234567890
"""The integrator's MercadoPago user id: customer ids start with it, as real ones do."""

_CREATE_FIELDS = frozenset(
    {
        "email",
        "first_name",
        "last_name",
        "phone",
        "identification",
        "default_address",
        "address",
        "date_registered",
        "description",
        "default_card",
    }
)
_PHONE_FIELDS = frozenset({"area_code", "number"})
_ADDRESS_FIELDS = frozenset({"id", "zip_code", "street_name", "street_number", "city"})
_IDENTIFICATION_FIELDS = frozenset({"type", "number"})
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CUSTOMER_PATH = re.compile(r"/v1/customers/([^/]+)")
_MAX_LIMIT = 100

_ERRORS = {
    "101": "the customer already exist.",
    "103": "parameter must be an object",
    "106": "the email format is invalid.",
    "107": "the first_name is invalid.",
    "108": "the last_name is invalid.",
    "109": "the phone.area_code is invalid.",
    "110": "the phone.number is invalid.",
    "111": "the identification.type is invalid.",
    "112": "the identification.number is invalid.",
    "113": "the address.zip_code is invalid.",
    "114": "the address.street_name is invalid.",
    "116": "the description is invalid.",
    "118": "the body must be a Json Object.",
    "125": "invalid parameters.",
    "126": "invalid parameter. You cannot update the email.",
}


class _Refusal(Exception):
    """An error answer: HTTP status and MercadoPago's error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


def _bad_request(code: str, data: str | None = None) -> _Refusal:
    cause: dict[str, Any] = {"code": code, "description": _ERRORS[code]}
    if data is not None:
        cause["data"] = data
    return _Refusal(
        400, {"message": _ERRORS[code], "error": "bad_request", "status": 400, "cause": [cause]}
    )


def _not_found(message: str = "not_found") -> _Refusal:
    return _Refusal(404, {"message": message, "error": "not_found", "status": 404, "cause": []})


def _unauthorized() -> _Refusal:
    return _Refusal(
        401, {"message": "unauthorized", "error": "unauthorized", "status": 401, "cause": []}
    )


@dataclass(frozen=True, slots=True)
class FakeRequest:
    """One API request as the fake received it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True, slots=True)
class Notification:
    """A signed webhook delivery: what MercadoPago would POST, and the query it would add."""

    body: bytes
    headers: dict[str, str]
    query: dict[str, str]


def sign(secret: str, *, data_id: str | None, request_id: str | None, ts: int | str) -> str:
    """An ``x-signature`` value, computed from the documented template (not from qzpay)."""
    template = ""
    if data_id is not None:
        template += f"id:{data_id};"
    if request_id is not None:
        template += f"request-id:{request_id};"
    template += f"ts:{ts};"
    digest = hmac.new(secret.encode(), template.encode(), hashlib.sha256).hexdigest()
    return f"ts={ts},v1={digest}"


@dataclass
class FakeMercadoPago:
    """The fake server; ``start()`` it (or use ``with``), ``url`` is its API base."""

    access_token: str = ACCESS_TOKEN
    webhook_secret: str = WEBHOOK_SECRET
    honour_idempotency: bool = False
    site_currency: str = "BRL"
    """The one currency this account's site charges subscription plans in."""
    requests: list[FakeRequest] = field(default_factory=list)
    _customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    _replies: dict[tuple[str, str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _plans: PreapprovalPlans | None = None
    _preapprovals: Preapprovals | None = None

    def __post_init__(self) -> None:
        self._plans = PreapprovalPlans(collector_id=USER_ID, site_currency=self.site_currency)
        self._preapprovals = Preapprovals(
            collector_id=USER_ID, plans=self._plans, site_currency=self.site_currency
        )

    @property
    def plans(self) -> PreapprovalPlans:
        """The account's subscription plans; read them with :meth:`preapproval_plans`."""
        assert self._plans is not None
        return self._plans

    @property
    def subscriptions(self) -> Preapprovals:
        """The account's subscriptions (``preapproval``); read them with :meth:`preapprovals`."""
        assert self._preapprovals is not None
        return self._preapprovals

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.subscriptions.base_url = self.url
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # how long stop() waits for the loop to notice
            name="fake-mercadopago",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FakeMercadoPago:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- inspection and setup (bypassing HTTP) ---------------------------------------------

    def customers(self, email: str | None = None) -> list[dict[str, Any]]:
        """Live customers (copies), oldest first, optionally those with this email."""
        with self._lock:
            found = [c for c in self._customers.values() if _same_email(c["email"], email)]
            return copy.deepcopy(found)

    def get(self, customer_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._customers.get(customer_id)
            return copy.deepcopy(found) if found is not None else None

    def add_customer(self, **fields: Any) -> dict[str, Any]:
        """Create a customer as another system would (through the same rules as the API)."""
        with self._lock:
            return copy.deepcopy(self._create(fields))

    def preapproval_plans(self, external_reference: str | None = None) -> list[dict[str, Any]]:
        """Subscription plans (copies), oldest first, optionally those with this reference."""
        with self._lock:
            return self.plans.all(external_reference)

    def preapproval_plan(self, plan_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self.plans.get(plan_id)

    def preapprovals(self, external_reference: str | None = None) -> list[dict[str, Any]]:
        """Subscriptions (copies), oldest first, optionally those with this reference."""
        with self._lock:
            return self.subscriptions.all(external_reference)

    def preapproval(self, preapproval_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self.subscriptions.get(preapproval_id)

    def authorize_preapproval(
        self, preapproval_id: str, *, payment_method_id: str = "visa"
    ) -> dict[str, Any]:
        """The payer authorises the subscription at its ``init_point`` (see the hooks)."""
        with self._lock:
            return self.subscriptions.authorize(preapproval_id, payment_method_id=payment_method_id)

    def charge_preapproval(self, preapproval_id: str) -> dict[str, Any]:
        """The renewal due at ``next_payment_date`` happens now (see the hooks)."""
        with self._lock:
            return self.subscriptions.charge(preapproval_id)

    def matching(self, method: str, path: str) -> list[FakeRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def key_reuses(self) -> dict[str, list[tuple[str, str, str]]]:
        """The ``x-idempotency-key`` values received with more than one different request,
        each with those requests as (method, path with query, JSON body in canonical form);
        empty when every key named one request."""
        seen: dict[str, list[tuple[str, str, str]]] = {}
        for request in list(self.requests):
            key = request.headers.get("x-idempotency-key")
            if key is None:
                continue
            target = f"{request.path}?{urlencode(sorted(request.query.items()))}"
            try:
                content = json.dumps(request.json(), sort_keys=True)
            except ValueError:
                content = request.body.decode("utf-8", "replace")
            identities = seen.setdefault(key, [])
            if (request.method, target, content) not in identities:
                identities.append((request.method, target, content))
        return {key: found for key, found in seen.items() if len(found) > 1}

    # -- webhooks --------------------------------------------------------------------------

    def notification(
        self,
        *,
        action: str,
        type: str,
        data: Mapping[str, Any],
        notification_id: str | int | None = None,
        request_id: str | None = None,
        ts: int | None = None,
        secret: str | None = None,
    ) -> Notification:
        """A notification as MercadoPago signs it: ``data.id`` (when the data has an ``id``)
        and ``type`` go in the query string; ``x-request-id`` is fresh unless given."""
        request_id = str(uuid.uuid4()) if request_id is None else request_id
        ts = int(time.time()) if ts is None else ts
        body = {
            "id": secrets.randbelow(10**12) if notification_id is None else notification_id,
            "live_mode": False,
            "type": type,
            "date_created": _now(),
            "user_id": USER_ID,
            "api_version": "v1",
            "action": action,
            "data": dict(data),
        }
        query = {"type": type}
        data_id = None
        if "id" in data:
            data_id = str(data["id"])
            query["data.id"] = data_id
        signature = sign(
            self.webhook_secret if secret is None else secret,
            data_id=data_id,
            request_id=request_id,
            ts=ts,
        )
        headers = {
            "Content-Type": "application/json",
            "x-signature": signature,
            "x-request-id": request_id,
        }
        return Notification(json.dumps(body).encode(), headers, query)

    def preapproval_notification(
        self,
        preapproval_id: str,
        *,
        action: str = "updated",
        version: int = 0,
        request_id: str | None = None,
        ts: int | None = None,
    ) -> Notification:
        """A ``subscription_preapproval`` notification, signed as :meth:`notification` signs.

        Its body has the shape MercadoPago sends for subscriptions (not the payments one):
        ``{action: created|updated, application_id, data{id}, date, entity: "preapproval",
        id, type: "subscription_preapproval", version}``; ``data.id`` and ``type`` go in the
        query string. (Shape as observed from MercadoPago's notification simulator and
        deliveries; the reference documents only the topic's name.)
        """
        request_id = str(uuid.uuid4()) if request_id is None else request_id
        ts = int(time.time()) if ts is None else ts
        body = {
            "action": action,
            "application_id": APPLICATION_ID,
            "data": {"id": preapproval_id},
            "date": _now(),
            "entity": "preapproval",
            "id": secrets.randbelow(10**12),
            "type": "subscription_preapproval",
            "version": version,
        }
        signature = sign(self.webhook_secret, data_id=preapproval_id, request_id=request_id, ts=ts)
        headers = {
            "Content-Type": "application/json",
            "x-signature": signature,
            "x-request-id": request_id,
        }
        query = {"data.id": preapproval_id, "type": "subscription_preapproval"}
        return Notification(json.dumps(body).encode(), headers, query)

    def preapproval_notifications(self) -> list[Notification]:
        """The notifications MercadoPago would have sent for the subscription changes since the
        last call (``created`` for a create, ``updated`` for every later change), oldest first."""
        with self._lock:
            changes = list(self.subscriptions.changes)
            self.subscriptions.changes.clear()
        return [
            self.preapproval_notification(preapproval_id, action=action, version=version)
            for action, preapproval_id, version in changes
        ]

    async def deliver(self, url: str, notification: Notification) -> int:
        """POST ``notification`` to a loopback ``url`` (query appended); the HTTP status."""
        host = urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the fake only delivers to loopback addresses, not {host!r}")
        separator = "&" if "?" in url else "?"
        target = url + separator + urlencode(notification.query)
        return await asyncio.to_thread(_post, target, notification.body, notification.headers)

    # -- the API (called on the server's threads) ------------------------------------------

    def handle(self, request: FakeRequest) -> tuple[int, dict[str, Any]]:
        self.requests.append(request)
        if request.path.startswith(("/_test/", "/_checkout/")):  # the payer's and our side
            body = _json_object(request.body) if request.body else None
            with self._lock:
                try:
                    return self.subscriptions.route_hook(request.method, request.path, body)
                except PlanRefusal as refusal:
                    raise _Refusal(refusal.status, refusal.body) from None
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            raise _unauthorized()
        key = request.headers.get("x-idempotency-key")
        replay_key = (request.method, request.path, key or "")
        with self._lock:
            if self.honour_idempotency and key and replay_key in self._replies:
                status, body = self._replies[replay_key]
                return status, copy.deepcopy(body)
            status, body = self._route(request)
            if self.honour_idempotency and key and request.method != "GET":
                self._replies[replay_key] = (status, copy.deepcopy(body))
            return status, body

    def _route(self, request: FakeRequest) -> tuple[int, dict[str, Any]]:
        if request.path.startswith("/preapproval_plan"):
            body = _json_object(request.body) if request.method in ("POST", "PUT") else None
            try:
                return self.plans.route(request.method, request.path, request.query, body)
            except PlanRefusal as refusal:
                raise _Refusal(refusal.status, refusal.body) from None
        if request.path == "/preapproval" or request.path.startswith("/preapproval/"):
            body = _json_object(request.body) if request.method in ("POST", "PUT") else None
            try:
                return self.subscriptions.route(request.method, request.path, request.query, body)
            except PlanRefusal as refusal:
                raise _Refusal(refusal.status, refusal.body) from None
        if request.path == "/v1/customers/search" and request.method == "GET":
            return 200, self._search(request.query)
        if request.path == "/v1/customers" and request.method == "POST":
            return 200, copy.deepcopy(self._create(_json_object(request.body)))
        match = _CUSTOMER_PATH.fullmatch(request.path)
        if match is None:
            raise _not_found("resource not found")
        customer = self._customers.get(match.group(1))
        if customer is None:
            raise _not_found()
        if request.method == "GET":
            return 200, copy.deepcopy(customer)
        if request.method == "PUT":
            self._update(customer, _json_object(request.body))
            return 200, copy.deepcopy(customer)
        if request.method == "DELETE":
            del self._customers[customer["id"]]
            return 200, copy.deepcopy(customer)
        raise _not_found("resource not found")

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        _check_fields(body, create=True)
        email = body["email"]
        if any(_same_email(c["email"], email) for c in self._customers.values()):
            raise _bad_request("101", f"email {email}")
        now = _now()
        customer: dict[str, Any] = {
            "id": f"{USER_ID}-{secrets.token_urlsafe(10).replace('-', 'x').replace('_', 'y')}",
            "email": email,
            "first_name": None,
            "last_name": None,
            "phone": {"area_code": None, "number": None},
            "identification": {"type": None, "number": None},
            "address": {"id": None, "zip_code": None, "street_name": None, "street_number": None},
            "addresses": [],
            "cards": [],
            "date_created": now,
            "date_last_updated": now,
            "date_registered": None,
            "default_address": None,
            "default_card": None,
            "description": None,
            "live_mode": False,
            "metadata": {"source_sync": "source_ws"},
        }
        _apply(customer, body)
        self._customers[customer["id"]] = customer
        return customer

    def _update(self, customer: dict[str, Any], body: dict[str, Any]) -> None:
        _check_fields(body, create=False)
        email = body.get("email")
        if email is not None and customer["email"] and email != customer["email"]:
            raise _bad_request("126")
        _apply(customer, body)
        customer["date_last_updated"] = _now()

    def _search(self, query: Mapping[str, str]) -> dict[str, Any]:
        try:
            limit = int(query.get("limit", "10"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            raise _bad_request("125") from None
        if not 1 <= limit <= _MAX_LIMIT or offset < 0:
            raise _bad_request("125")
        email = query.get("email")
        found = [c for c in self._customers.values() if _same_email(c["email"], email)]
        return {
            "paging": {"limit": limit, "offset": offset, "total": len(found)},
            "results": copy.deepcopy(found[offset : offset + limit]),
        }


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeMercadoPago
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        request = FakeRequest(
            method=self.command,
            path=path,
            query=dict(parse_qsl(query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            status, answer = self.server_fake.handle(request)
        except _Refusal as refusal:
            status, answer = refusal.status, refusal.body
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-request-id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests inspect ``FakeMercadoPago.requests`` instead."""


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _bad_request("118")
    return parsed


def _check_fields(body: Mapping[str, Any], *, create: bool) -> None:
    unknown = set(body) - _CREATE_FIELDS
    if unknown:
        raise _bad_request("125", ", ".join(sorted(unknown)))
    if create or "email" in body:
        email = body.get("email")
        if not isinstance(email, str) or not _EMAIL.fullmatch(email):
            raise _bad_request("106")
    for name, code in (("first_name", "107"), ("last_name", "108"), ("description", "116")):
        if name in body and not isinstance(body[name], str | None):
            raise _bad_request(code)
    _check_object(body, "phone", _PHONE_FIELDS, {"area_code": "109", "number": "110"}, digits=True)
    _check_object(body, "address", _ADDRESS_FIELDS, {"zip_code": "113", "street_name": "114"})
    _check_object(body, "identification", _IDENTIFICATION_FIELDS, {"type": "111", "number": "112"})
    address = body.get("address")
    if isinstance(address, dict) and not isinstance(
        address.get("street_number"), int | float | None
    ):
        raise _bad_request("125", "address.street_number")


def _check_object(
    body: Mapping[str, Any],
    name: str,
    allowed: frozenset[str],
    codes: Mapping[str, str],
    *,
    digits: bool = False,
) -> None:
    if name not in body:
        return
    value = body[name]
    if not isinstance(value, dict):
        raise _bad_request("103", name)
    unknown = set(value) - allowed
    if unknown:
        raise _bad_request("125", ", ".join(f"{name}.{k}" for k in sorted(unknown)))
    for key, code in codes.items():
        if key in value:
            item = value[key]
            if not isinstance(item, str | None) or (digits and item and not item.isdigit()):
                raise _bad_request(code)


def _apply(customer: dict[str, Any], body: Mapping[str, Any]) -> None:
    for key, value in body.items():
        if isinstance(value, dict) and isinstance(customer.get(key), dict):
            customer[key].update(value)
        else:
            customer[key] = value


def _same_email(stored: object, wanted: str | None) -> bool:
    return wanted is None or (isinstance(stored, str) and stored.casefold() == wanted.casefold())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# -- a receiver for deliveries -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceivedNotification:
    body: bytes
    headers: dict[str, str]  # names as sent
    query: dict[str, str]


@dataclass
class NotificationReceiver:
    """A loopback endpoint keeping each POST's raw body, headers and query string (the query
    carries the signed ``data.id``). Use as ``async with NotificationReceiver() as r``."""

    received: list[ReceivedNotification] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    _port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/webhooks/mercadopago"

    async def __aenter__(self) -> NotificationReceiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = site.port
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def next(self) -> ReceivedNotification:
        """The oldest delivery not yet taken; bound the wait with ``asyncio.timeout``."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: bool(self.received))
            return self.received.pop(0)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self._arrived:
            self.received.append(
                ReceivedNotification(body, dict(request.headers), dict(request.query))
            )
            self._arrived.notify_all()
        return web.Response(text="ok")


def unique_email(label: str = "customer") -> str:
    """An address no other test uses (a shared fake allows one customer per email)."""
    return f"{label}.{secrets.token_hex(6)}@example.com"


@contextlib.contextmanager
def running(**options: Any) -> Iterator[FakeMercadoPago]:
    """A started fake, stopped on exit."""
    fake = FakeMercadoPago(**options)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
