"""The fake MercadoPago's subscriptions (``preapproval``): create, get, update, search, plus the
payer's side (authorising at ``init_point``) and the passing of time (a renewal charge) as test
hooks.

Used by :class:`tests.support.fake_mercadopago.FakeMercadoPago`, which routes ``/preapproval``
and ``/preapproval/…`` here (``/preapproval_plan…`` still goes to the plans) under its lock,
after its own authorization check and idempotency-key handling, so the fault proxy,
``honour_idempotency`` and ``key_reuses()`` apply as for customers and plans.

Documentation followed (MercadoPago Developers, "Subscriptions" API reference; OpenAPI in
https://github.com/mercadopago/devsite-docs, ``reference/api/subscriptions.yaml``; and the guides
"Subscriptions without associated plan" with pending / authorized payment):

* Create, ``POST /preapproval``: ``preapproval_plan_id``, ``reason``, ``external_reference``,
  ``payer_email`` (required), ``card_token_id``, ``auto_recurring{frequency, frequency_type:
  days|months, start_date, end_date, transaction_amount, currency_id}``, ``back_url``
  (required), ``status`` (``pending``: no payment method yet, the payer adds one at
  ``init_point``; ``authorized``: needs a payment method). With a plan, its recurrence is used
  and a card token is required.
* The object: ``id`` (32 hex), ``version``, ``application_id``, ``collector_id``,
  ``preapproval_plan_id``, ``reason``, ``external_reference``, ``back_url``, ``init_point``,
  ``auto_recurring{…, free_trial}``, ``first_invoice_offset``, ``payer_id``, ``card_id``,
  ``payment_method_id``, ``next_payment_date``, ``date_created``, ``last_modified``,
  ``summarized{quotas, charged_quantity, charged_amount, pending_charge_quantity,
  pending_charge_amount, last_charged_date, last_charged_amount, semaphore}``, ``status``
  (``pending``, ``authorized``, ``paused``, ``cancelled`` — "an irreversible state").
* Update, ``PUT /preapproval/{id}``: ``reason``, ``external_reference``, ``back_url``,
  ``auto_recurring{transaction_amount, currency_id}``, ``card_token_id``, ``status``.
* Search, ``GET /preapproval/search``: ``q``, ``payer_id``, ``payer_email``,
  ``preapproval_plan_id``, ``transaction_amount``, ``semaphore``, ``status`` (one or several,
  comma-separated), ``sort`` (``field:asc|desc``), ``offset``, ``limit``; answer ``{paging{offset,
  limit, total}, results}``.
* Every refusal message below is one the reference documents for these endpoints (400: create
  validation such as "Field payer_email is required", "Invalid value for
  auto_recurring.frequency_type, valid ones are days, months", "You cannot create a preapproval
  with payment_method in status pending", "Card token was used, please generate new"; update:
  "Invalid transition from cancelled to authorized", "You can not modify a cancelled
  preapproval.", "You can not modify a paused subscription.", "You must provide a card_id"; get:
  "Invalid value {id}, Field 'id' must match this pattern '[a-f0-9-]+'"; search: "Binding
  exception, parameters passed are invalid"; 404 "The preapproval with id {id} does not
  exist"), except those listed as assumptions below.

Assumptions, where the documentation is silent (each pinned by a test of the fake):

* ``auto_recurring.free_trial`` is accepted on create (the reference shows it in the answer and
  on plans only). ``start_date`` defaults to the creation time; the schedule is anchored there:
  the first charge is due at ``start_date`` + free trial, then every period.
* Update accepts ``auto_recurring.end_date`` too (the reference lists only ``transaction_amount``
  and ``currency_id``), ``null`` clearing it; when a renewal comes due at or after ``end_date``
  the preapproval is not charged and ends ``cancelled``. ``frequency``, ``frequency_type``,
  ``start_date`` and ``free_trial`` cannot be updated ("Invalid request data", with a cause).
* A paused preapproval takes only a status change; a pending one becomes ``authorized`` when a
  card token is added; ``pending`` and ``paused`` do not go to each other ("Invalid transition
  from … to …", the documented wording); an unknown status is "Invalid request data".
* Missing ``reason`` (without a plan) is "Field reason is required"; a currency of another site
  is "Cannot operate with this currency_id in this site" (the plans' wording); amounts in CLP
  must be whole ("Invalid value for transaction amount, must be a positive integer").
* Search also filters on ``external_reference`` (exact), unless ``filter_by_reference`` is
  turned off (integrators report MercadoPago ignoring it at times); unknown parameters are a
  binding exception; ``limit`` is 1..100 (default 20); the default order is ``date_created:asc``.
* Dates are answered at UTC-04:00, as the reference's examples are; no two preapprovals have the
  same ``date_created`` (milliseconds).

Test hooks (no authorization header needed: they stand for the payer and for MercadoPago):

* ``GET /_checkout/preapproval/{id}``: what ``init_point`` points at; a small JSON page.
* ``POST /_test/preapproval/{id}/authorize`` (body optional: ``{"payment_method_id": "visa"}``):
  the payer authorises a pending preapproval: ``authorized``, a card, and the first charge now
  unless a free trial or a later start date defers it (``next_payment_date``).
* ``POST /_test/preapproval/{id}/charge``: the renewal due at ``next_payment_date`` happens now
  (charged, ``summarized`` counts it, ``next_payment_date`` moves one period), or the
  preapproval ends if ``end_date`` is reached.
* Notifications: every create is recorded as a ``created`` change and every later change as
  ``updated``; ``FakeMercadoPago.preapproval_notifications()`` turns the recorded changes into
  signed ``subscription_preapproval`` notifications, to ``deliver()`` where a test wants them.
"""

from __future__ import annotations

import copy
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from tests.support.fake_mercadopago_plans import (
    APPLICATION_ID,
    SUBSCRIPTION_CURRENCIES,
    PlanRefusal,
    PreapprovalPlans,
)


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


STATUSES = ("pending", "authorized", "paused", "cancelled")
_ANSWER_ZONE = timezone(timedelta(hours=-4))
_WHOLE_CURRENCIES = frozenset({"CLP"})
_CREATE_FIELDS = _names(
    "preapproval_plan_id reason external_reference payer_email card_token_id auto_recurring "
    "back_url status"
)
_UPDATE_FIELDS = _names("reason external_reference back_url auto_recurring card_token_id status")
_CREATE_RECURRING = _names(
    "frequency frequency_type start_date end_date transaction_amount currency_id free_trial"
)
_UPDATE_RECURRING = frozenset({"transaction_amount", "currency_id", "end_date"})
_SEARCH_PARAMS = _names(
    "q payer_id payer_email preapproval_plan_id transaction_amount semaphore status sort offset "
    "limit external_reference"
)
_SORTABLE = frozenset({"date_created", "last_modified", "payer_id", "next_payment_date"})
_PATH = re.compile(r"/preapproval/([^/]+)")
_VALID_ID = re.compile(r"[a-f0-9-]+")
_TEST_PATH = re.compile(r"/_test/preapproval/([^/]+)/(authorize|charge)")
_CHECKOUT_PATH = re.compile(r"/_checkout/preapproval/([^/]+)")
_REFERENCE = re.compile(r"[A-Za-z0-9_.:-]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_URL = re.compile(r"https?://[^\s/]+(/\S*)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BINDING = "Binding exception, parameters passed are invalid"


def _bad(message: str, cause: str | None = None) -> PlanRefusal:
    refusal = PlanRefusal(400, message, "bad_request")
    if cause is not None:
        refusal.body["cause"] = [{"code": "invalid_parameter", "description": cause}]
    return refusal


def _not_found(preapproval_id: str) -> PlanRefusal:
    return PlanRefusal(404, f"The preapproval with id {preapproval_id} does not exist", "not_found")


@dataclass
class Preapprovals:
    """The subscriptions one fake account holds; every method runs under the fake's lock."""

    collector_id: int
    plans: PreapprovalPlans
    site_currency: str = "BRL"
    base_url: str = "http://127.0.0.1"
    """Where ``init_point`` links point (the fake sets its own URL when it starts)."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    filter_by_reference: bool = True
    """False: the search ignores ``external_reference``, as integrators report MercadoPago
    doing at times (the reference lists no such filter)."""
    changes: list[tuple[str, str, int]] = field(default_factory=list)
    """``(action, preapproval id, version)`` per change not yet turned into a notification."""
    _items: dict[str, dict[str, Any]] = field(default_factory=dict)
    _used_tokens: set[str] = field(default_factory=set)
    _last_created: datetime = _EPOCH

    # -- inspection (bypassing HTTP) -------------------------------------------------------

    def all(self, external_reference: str | None = None) -> list[dict[str, Any]]:
        found = [
            p
            for p in self._items.values()
            if external_reference is None or p.get("external_reference") == external_reference
        ]
        return copy.deepcopy(found)

    def get(self, preapproval_id: str) -> dict[str, Any] | None:
        found = self._items.get(preapproval_id)
        return copy.deepcopy(found) if found is not None else None

    # -- the API ---------------------------------------------------------------------------

    def route(
        self, method: str, path: str, query: Mapping[str, str], body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        if path in ("/preapproval", "/preapproval/") and method == "POST":
            return 200, copy.deepcopy(self.create(_object(body)))
        if path == "/preapproval/search" and method == "GET":
            return 200, self._search(query)
        match = _PATH.fullmatch(path)
        if match is None:
            raise PlanRefusal(404, "resource not found", "not_found")
        item = self._item(match.group(1))
        if method == "GET":
            return 200, copy.deepcopy(item)
        if method == "PUT":
            self._update(item, _object(body))
            return 200, copy.deepcopy(item)
        raise PlanRefusal(405, "method not allowed", "method_not_allowed")

    def route_hook(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        """The test hooks of the module docstring."""
        checkout = _CHECKOUT_PATH.fullmatch(path)
        if checkout is not None and method == "GET":
            item = self._item(checkout.group(1))
            return 200, {"checkout": "preapproval", "id": item["id"], "status": item["status"]}
        hook = _TEST_PATH.fullmatch(path)
        if hook is None or method != "POST":
            raise PlanRefusal(404, "resource not found", "not_found")
        if hook.group(2) == "authorize":
            method_id = (body or {}).get("payment_method_id", "visa")
            return 200, self.authorize(hook.group(1), payment_method_id=str(method_id))
        return 200, self.charge(hook.group(1))

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - _CREATE_FIELDS
        if unknown:
            raise _bad("Invalid request data", ", ".join(sorted(unknown)))
        email = body.get("payer_email")
        if email is None:
            raise _bad("Field payer_email is required")
        if not isinstance(email, str) or not _EMAIL.fullmatch(email):
            raise _bad("Invalid value for payer_email, must be a valid email address")
        _check_url(body.get("back_url"))
        status, card = body.get("status"), body.get("card_token_id")
        if status not in (None, "pending", "authorized"):
            raise _bad("Invalid request data", "status")
        if status == "pending" and card is not None:
            raise _bad("You cannot create a preapproval with payment_method in status pending")
        plan_id = body.get("preapproval_plan_id")
        if plan_id is not None:
            reason, recurring = self._from_plan(plan_id, body)
            if not card:
                raise _bad("Field card_token_id is required")
        else:
            if "reason" not in body:
                raise _bad("Field reason is required")
            reason = body["reason"]
            if "auto_recurring" not in body:
                raise _bad("Field auto_recurring.frequency is required")
            recurring = self._recurring(body["auto_recurring"], create=True)
            self._check_dates(recurring, None)
            if status == "authorized" and not card:
                raise _bad("Field card_token_id is required")
        _check_text("reason", reason)
        reference = body.get("external_reference")
        if reference is not None:
            _check_text("external_reference", reference, pattern=_REFERENCE)
        self._check_token(card)
        now = max(self.clock(), self._last_created + timedelta(milliseconds=1))
        self._last_created = now  # creation times never tie (they have milliseconds)
        recurring.setdefault("start_date", _iso(now))
        trial = recurring.get("free_trial")
        preapproval_id = secrets.token_hex(16)
        item: dict[str, Any] = {
            "id": preapproval_id,
            "version": 0,
            "application_id": APPLICATION_ID,
            "collector_id": self.collector_id,
            "preapproval_plan_id": plan_id,
            "reason": reason,
            "external_reference": reference,
            "back_url": body["back_url"],
            "init_point": f"{self.base_url}/_checkout/preapproval/{preapproval_id}",
            "auto_recurring": recurring,
            "first_invoice_offset": _trial_days(trial, _parse(recurring["start_date"])),
            "payer_id": _payer_id(email),
            "payer_email": email,
            "card_id": None,
            "payment_method_id": None,
            "next_payment_date": _iso(_first_due(recurring)),
            "date_created": _iso(now),
            "last_modified": _iso(now),
            "summarized": _summary(),
            "status": "pending",
        }
        if card:
            self._authorize(item, "visa")
        self._items[preapproval_id] = item
        self.changes.append(("created", preapproval_id, item["version"]))
        return item

    def authorize(self, preapproval_id: str, *, payment_method_id: str = "visa") -> dict[str, Any]:
        """The payer authorises at ``init_point`` (test hook)."""
        item = self._item(preapproval_id)
        if item["status"] != "pending":
            raise _bad(f"Invalid transition from {item['status']} to authorized")
        self._authorize(item, payment_method_id)
        self._touch(item)
        return copy.deepcopy(item)

    def charge(self, preapproval_id: str) -> dict[str, Any]:
        """The renewal due at ``next_payment_date`` happens now (test hook)."""
        item = self._item(preapproval_id)
        if item["status"] != "authorized" or item["next_payment_date"] is None:
            raise _bad("You can only charge an authorized preapproval")
        recurring = item["auto_recurring"]
        due = _parse(item["next_payment_date"])
        end = recurring.get("end_date")
        if end is not None and due >= _parse(end):
            item["status"], item["next_payment_date"] = "cancelled", None
        else:
            self._charged(item, self.clock())
            item["next_payment_date"] = _iso(_shift(due, recurring, 1))
        self._touch(item)
        return copy.deepcopy(item)

    # -- internals -------------------------------------------------------------------------

    def _item(self, preapproval_id: str) -> dict[str, Any]:
        if not _VALID_ID.fullmatch(preapproval_id):
            raise _bad(
                f"Invalid value {preapproval_id}, Field 'id' must match this pattern '[a-f0-9-]+'"
            )
        item = self._items.get(preapproval_id)
        if item is None:
            raise _not_found(preapproval_id)
        return item

    def _touch(self, item: dict[str, Any]) -> None:
        item["version"] += 1
        item["last_modified"] = _iso(self.clock())
        self.changes.append(("updated", item["id"], item["version"]))

    def _from_plan(self, plan_id: object, body: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        plan = self.plans.get(str(plan_id))
        if plan is None:
            raise PlanRefusal(404, f"The template with id {plan_id} does not exist", "not_found")
        if plan["status"] != "active":
            raise _bad("You cannot create a new preapproval from a cancelled or inactive template")
        kept = ("frequency", "frequency_type", "transaction_amount", "currency_id", "free_trial")
        recurring = {k: v for k, v in plan["auto_recurring"].items() if k in kept}
        given = body.get("auto_recurring") or {}
        if not isinstance(given, dict):
            raise _bad("Invalid request data", "auto_recurring")
        amount = given.get("transaction_amount")
        if amount is not None and amount != recurring.get("transaction_amount"):
            raise _bad("The transaction_amount must be the same as preapproval_plan")
        for key in ("start_date", "end_date"):
            if key in given:
                recurring[key] = given[key]
        self._check_dates(recurring, None)
        return body.get("reason", plan["reason"]), recurring

    def _recurring(self, given: object, *, create: bool) -> dict[str, Any]:
        allowed = _CREATE_RECURRING if create else _UPDATE_RECURRING
        if not isinstance(given, dict):
            raise _bad("Invalid request data", "auto_recurring")
        if set(given) - allowed:
            fields = ", ".join(f"auto_recurring.{k}" for k in sorted(set(given) - allowed))
            raise _bad("Invalid request data", f"{fields} cannot be set here")
        if create:
            for name in ("frequency", "frequency_type", "transaction_amount", "currency_id"):
                if given.get(name) is None:
                    raise _bad(f"Field auto_recurring.{name} is required")
            frequency = given["frequency"]
            if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
                raise _bad("Invalid value for auto_recurring.frequency, must be a positive integer")
            if given["frequency_type"] not in ("days", "months"):
                raise _bad(
                    "Invalid value for auto_recurring.frequency_type, valid ones are days, months"
                )
            _check_trial(given.get("free_trial"))
        if "currency_id" in given:
            self._check_currency(given["currency_id"])
        if "transaction_amount" in given:
            currency = given.get("currency_id", self.site_currency)
            _check_amount(given["transaction_amount"], whole=currency in _WHOLE_CURRENCIES)
        return copy.deepcopy(given)

    def _check_currency(self, currency: object) -> None:
        if currency not in SUBSCRIPTION_CURRENCIES:
            raise _bad("Invalid value for auto_recurring.currency_id")
        if currency != self.site_currency:
            raise _bad("Cannot operate with this currency_id in this site")

    def _check_dates(self, recurring: Mapping[str, Any], start: datetime | None) -> None:
        now = self.clock()
        parsed: dict[str, datetime | None] = {}
        for key in ("start_date", "end_date"):
            value = recurring.get(key)
            try:
                parsed[key] = _parse(value) if value is not None else None
            except (TypeError, ValueError):
                raise _bad(
                    "Invalid format in auto_recurring.start_date or auto_recurring.end_date"
                ) from None
        given_start, end = parsed["start_date"], parsed["end_date"]
        if given_start is not None and given_start.astimezone(UTC).date() < now.date():
            raise _bad("Invalid value for auto_recurring.start_date, the date must be after today")
        if end is not None and end <= now:
            raise _bad("Invalid value for auto_recurring.end_date, the date must be after today")
        start = given_start or start
        if end is not None and start is not None and end <= start:
            raise _bad("Field auto_recurring.end_date must be after auto_recurring.start_date")

    def _check_token(self, card: object) -> None:
        if card is None:
            return
        if not isinstance(card, str) or not card:
            raise _bad("Invalid request data", "card_token_id")
        if card in self._used_tokens:
            raise _bad("Card token was used, please generate new")
        self._used_tokens.add(card)

    def _update(self, item: dict[str, Any], body: dict[str, Any]) -> None:
        unknown = set(body) - _UPDATE_FIELDS
        if unknown:
            raise _bad("Invalid request data", ", ".join(sorted(unknown)))
        current = item["status"]
        status = body.get("status", current)
        if current == "cancelled":
            if status == "authorized" and "status" in body:
                raise _bad("Invalid transition from cancelled to authorized")
            raise _bad("You can not modify a cancelled preapproval.")
        if status not in STATUSES:
            raise _bad("Invalid request data", "status")
        if current == "paused" and set(body) - {"status"}:
            raise _bad("You can not modify a paused subscription.")
        card = body.get("card_token_id")
        if current == "pending" and card is not None and "status" not in body:
            status = "authorized"
        if status != current and (
            status == "pending" or {current, status} == {"pending", "paused"}
        ):
            raise _bad(f"Invalid transition from {current} to {status}")
        if current == "pending" and status == "authorized" and card is None:
            raise _bad("You must provide a card_id")
        if "reason" in body:
            _check_text("reason", body["reason"])
        if body.get("external_reference") is not None:
            _check_text("external_reference", body["external_reference"], pattern=_REFERENCE)
        if "back_url" in body:
            _check_url(body["back_url"])
        recurring = item["auto_recurring"]
        if "auto_recurring" in body:
            given = self._recurring(body["auto_recurring"], create=False)
            if given.get("end_date") is not None:
                self._check_dates({"end_date": given["end_date"]}, _parse(recurring["start_date"]))
            recurring = {**recurring, **given}
            if recurring.get("end_date") is None:
                recurring.pop("end_date", None)
        self._check_token(card)
        for key in ("reason", "external_reference", "back_url"):
            if key in body:
                item[key] = body[key]
        item["auto_recurring"] = recurring
        if current == "pending" and status == "authorized":
            self._authorize(item, "visa")
        elif card is not None:
            item["card_id"] = secrets.randbelow(10**10)
        item["status"] = status
        if current == "paused" and status == "authorized" and item["next_payment_date"]:
            due = _parse(item["next_payment_date"])
            while due <= self.clock():
                due = _shift(due, recurring, 1)
            item["next_payment_date"] = _iso(due)
        if status == "cancelled":
            item["next_payment_date"] = None
        self._touch(item)

    def _authorize(self, item: dict[str, Any], payment_method_id: str) -> None:
        """Add a payment method; charge the first period now if it is already due."""
        item["status"] = "authorized"
        item["card_id"] = secrets.randbelow(10**10)
        item["payment_method_id"] = payment_method_id
        recurring = item["auto_recurring"]
        due, now = _first_due(recurring), max(self.clock(), _parse(item["date_created"]))
        if due <= now:
            self._charged(item, now)
            while due <= now:
                due = _shift(due, recurring, 1)
        item["next_payment_date"] = _iso(due)

    def _charged(self, item: dict[str, Any], when: datetime) -> None:
        amount = item["auto_recurring"]["transaction_amount"]
        summary = item["summarized"]
        summary["charged_quantity"] += 1
        total = Decimal(repr(summary["charged_amount"])) + Decimal(repr(amount))
        summary["charged_amount"] = float(total)
        summary["last_charged_date"] = _iso(when)
        summary["last_charged_amount"] = amount
        summary["semaphore"] = "green"

    def _search(self, query: Mapping[str, str]) -> dict[str, Any]:
        if set(query) - _SEARCH_PARAMS:
            raise _bad(_BINDING)
        try:
            limit = int(query.get("limit", "20"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            raise _bad(_BINDING) from None
        if not 1 <= limit <= 100 or offset < 0:
            raise _bad(_BINDING)
        statuses = query["status"].split(",") if "status" in query else list(STATUSES)
        if set(statuses) - set(STATUSES):
            raise _bad(_BINDING)
        sort_field, _, criteria = query.get("sort", "date_created:asc").partition(":")
        if sort_field not in _SORTABLE or criteria not in ("asc", "desc"):
            raise _bad(_BINDING)
        found = [
            p
            for p in self._items.values()
            if p["status"] in statuses and _matches(p, query, by_reference=self.filter_by_reference)
        ]
        found.sort(key=lambda p: str(p.get(sort_field) or ""))  # stable: ties in creation order
        if criteria == "desc":
            found.reverse()
        return {
            "paging": {"offset": offset, "limit": limit, "total": len(found)},
            "results": copy.deepcopy(found[offset : offset + limit]),
        }


def _matches(item: Mapping[str, Any], query: Mapping[str, str], *, by_reference: bool) -> bool:
    """The search's filters other than ``status`` (``q``: free text, case-insensitive)."""
    values = {
        "external_reference": item["external_reference"],
        "preapproval_plan_id": item["preapproval_plan_id"],
        "semaphore": item["summarized"]["semaphore"],
        "payer_id": item["payer_id"],
        "payer_email": item["payer_email"].casefold(),
        "transaction_amount": item["auto_recurring"]["transaction_amount"],
    }
    if not by_reference:
        del values["external_reference"]
    for key, value in values.items():
        wanted = query.get(key)
        if wanted is not None and str(value) != (
            wanted.casefold() if key == "payer_email" else wanted
        ):
            return False
    text = query.get("q", "").casefold()
    fields = (item["reason"], item["external_reference"], item["payer_email"], item["id"])
    return not text or any(text in str(f or "").casefold() for f in fields)


def _object(body: dict[str, Any] | None) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad("Invalid request data")
    return body


def _check_url(url: object) -> None:
    if not isinstance(url, str) or not _URL.fullmatch(url):
        raise _bad("Invalid value for back_url, must be a valid URL")


def _check_text(name: str, value: object, *, pattern: re.Pattern[str] | None = None) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"Field {name} is required")
    if len(value) > 255:
        raise _bad(f"Field {name} has more than 255 characters")
    if (pattern is not None and not pattern.fullmatch(value)) or not value.isprintable():
        raise _bad(f"Field {name} has unsupported characters")


def _check_trial(trial: object) -> None:
    if trial is None:
        return
    if not isinstance(trial, dict) or set(trial) != {"frequency", "frequency_type"}:
        raise _bad("Invalid request data", "auto_recurring.free_trial")
    frequency = trial["frequency"]
    if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
        raise _bad("Invalid request data", "auto_recurring.free_trial.frequency")
    if trial["frequency_type"] not in ("days", "months"):
        raise _bad("Invalid request data", "auto_recurring.free_trial.frequency_type")


def _check_amount(amount: object, *, whole: bool) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
        raise _bad("Invalid value for transaction amount, must be a positive number")
    exponent = Decimal(repr(amount)).as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if whole and decimals:
        raise _bad("Invalid value for transaction amount, must be a positive integer")
    if decimals > 2:
        raise _bad("Invalid value for transaction amount, only two decimals are allowed")


def _summary() -> dict[str, Any]:
    return {
        "quotas": None,
        "charged_quantity": 0,
        "charged_amount": 0,
        "pending_charge_quantity": 0,
        "pending_charge_amount": 0,
        "last_charged_date": None,
        "last_charged_amount": None,
        "semaphore": None,
    }


def _payer_id(email: str) -> int:
    """The payer's MercadoPago user id, the same for one email (case-insensitively)."""
    return 10**9 + int(hashlib.sha256(email.casefold().encode()).hexdigest()[:8], 16)


def _parse(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError("a date is text")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a date has a time zone")
    return moment


def _iso(moment: datetime) -> str:
    return moment.astimezone(_ANSWER_ZONE).isoformat(timespec="milliseconds")


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` moved by whole months, the day clamped to the target month's length."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    next_month = datetime(year + month // 12, month % 12 + 1, 1)
    last_day = (next_month - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def _shift(moment: datetime, period: Mapping[str, Any], times: int) -> datetime:
    count = int(period["frequency"]) * times
    if period["frequency_type"] == "months":
        return add_months(moment, count)
    return moment + timedelta(days=count)


def _first_due(recurring: Mapping[str, Any]) -> datetime:
    start = _parse(recurring["start_date"])
    trial = recurring.get("free_trial")
    return _shift(start, trial, 1) if trial else start


def _trial_days(trial: object, start: datetime) -> int | None:
    if not isinstance(trial, dict):
        return None
    return (_shift(start, trial, 1) - start).days
