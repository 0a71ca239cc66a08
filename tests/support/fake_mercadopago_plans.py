"""The fake MercadoPago's subscription plans (``preapproval_plan``): create, get, update, search.

Used by :class:`tests.support.fake_mercadopago.FakeMercadoPago`, which routes
``/preapproval_plan…`` here under its lock, after its own authorization check and
idempotency-key handling (so the same fault proxy, ``honour_idempotency`` and ``key_reuses()``
apply as for customers).

Documentation followed (MercadoPago Developers, "Subscriptions" API reference; also published
as OpenAPI in https://github.com/mercadopago/devsite-docs, ``reference/api/subscriptions.yaml``):

* Create, ``POST /preapproval_plan``: ``reason`` (required), ``auto_recurring{frequency,
  frequency_type: days|months, repetitions, billing_day (1-28), billing_day_proportional,
  free_trial{frequency, frequency_type}, transaction_amount, currency_id}`` (``frequency``,
  ``frequency_type`` and ``currency_id`` required), ``payment_methods_allowed``, ``back_url``
  (required); answer 200 with the plan: ``id`` (32 hex characters), ``application_id``,
  ``collector_id``, ``reason``, ``auto_recurring``, ``payment_methods_allowed``, ``back_url``,
  ``external_reference``, ``init_point``, ``date_created``, ``last_modified``, ``status``
  (``active`` — available to create subscriptions — or ``cancelled``).
  https://www.mercadopago.com.br/developers/en/reference/subscriptions/_preapproval_plan/post
* Its documented 400 answers used here: "Parameter reason is required", "Parameter back_url is
  required", "Invalid value for back_url. Must be a valid URL", "Parameter auto_recurring is
  required", "Parameters frequency and frequency_type are required in the recurring payments
  scheme", "Invalid value for frequency, must be a positive integer", "Invalid value for
  frequency_type, valid ones are days or months", "Invalid value for transaction_amount, must be
  a positive number", "… must be a positive integer", "… only two decimals are allowed",
  "Field currency_id is required", "Invalid value for currency_id", "Cannot operate with this
  currency_id in this site", "Parameter external_reference has unsupported characters",
  "Invalid value for status. Valid ones ar active, inactive, cancelled." (sic).
* Get / update, ``GET|PUT /preapproval_plan/{id}``: update body ``reason``, ``auto_recurring``,
  ``payment_methods_allowed``, ``back_url``; 404 "The template with id {id} does not exist".
  https://www.mercadopago.com.br/developers/en/reference/subscriptions/_preapproval_plan_id/put
* Search, ``GET /preapproval_plan/search``: ``status`` (``active``/``cancelled``, else 400
  "Invalid status value. Valid status are active, cancelled"), ``q`` (free text), ``sort``,
  ``criteria`` (``asc``/``desc``), ``offset``, ``limit``; answer ``{paging{offset, limit,
  total}, results}``.
  https://www.mercadopago.com.mx/developers/en/reference/subscriptions/_preapproval_plan_search/get
* The subscription currencies: ARS, BRL, CLP, MXN, COP, PEN, UYU (the ``currency_id`` enum of
  the same pages); an account charges its site's one.

Assumptions, where the documentation is silent (each pinned by a test of the fake):

* ``external_reference`` is accepted on create (the plan object documents it, "Reference to
  sync with your system", and the create errors list "Parameter external_reference has
  unsupported characters"); at most 255 characters of letters, digits, ``_``, ``-``, ``:``,
  ``.``; it cannot be changed by an update.
* ``status`` can be set by an update to ``active`` or ``cancelled`` (the status enum of the
  plan object and the create error above; the update body documents no status).
* The error body has the customers API's shape ``{message, error, status, cause: []}``.
* ``q`` matches case-insensitively within ``reason`` and ``external_reference``; results are
  oldest first unless ``criteria=desc``; ``limit`` is 1..100 (default 20).
* The account's site charges ``site_currency`` only (BRL unless configured); an amount in a
  currency without decimals (CLP) must be a whole number.
* Fields the reference does not list are refused ("Check the parameters of the body").
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

APPLICATION_ID = 8010100000000001
"""The fake integration's application id, as plans report it."""
SUBSCRIPTION_CURRENCIES = frozenset({"ARS", "BRL", "CLP", "MXN", "COP", "PEN", "UYU"})
_WHOLE_CURRENCIES = frozenset({"CLP"})
_CREATE_FIELDS = frozenset(
    {"reason", "auto_recurring", "payment_methods_allowed", "back_url", "external_reference"}
)
_UPDATE_FIELDS = frozenset(
    {"reason", "auto_recurring", "payment_methods_allowed", "back_url", "status"}
)
_RECURRING_FIELDS = frozenset(
    {
        "frequency",
        "frequency_type",
        "repetitions",
        "billing_day",
        "billing_day_proportional",
        "free_trial",
        "transaction_amount",
        "currency_id",
    }
)
_PLAN_PATH = re.compile(r"/preapproval_plan/([0-9a-f]{32})")
_REFERENCE = re.compile(r"[A-Za-z0-9_.:-]{1,255}")
_URL = re.compile(r"https?://[^\s/]+(/\S*)?")


class PlanRefusal(Exception):
    """An error answer of the plans API (the fake turns it into its HTTP answer)."""

    def __init__(self, status: int, message: str, error: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"message": message, "error": error, "status": status, "cause": []}


def _bad(message: str) -> PlanRefusal:
    return PlanRefusal(400, message, "bad_request")


@dataclass
class PreapprovalPlans:
    """The plans one fake account holds; every method runs under the fake's lock."""

    collector_id: int
    site_currency: str = "BRL"
    _plans: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- inspection (bypassing HTTP) -------------------------------------------------------

    def all(self, external_reference: str | None = None) -> list[dict[str, Any]]:
        found = [
            p
            for p in self._plans.values()
            if external_reference is None or p.get("external_reference") == external_reference
        ]
        return copy.deepcopy(found)

    def get(self, plan_id: str) -> dict[str, Any] | None:
        found = self._plans.get(plan_id)
        return copy.deepcopy(found) if found is not None else None

    # -- the API ---------------------------------------------------------------------------

    def route(
        self, method: str, path: str, query: Mapping[str, str], body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        if path.rstrip("/") == "/preapproval_plan" and method == "POST":
            return 200, copy.deepcopy(self.create(_object(body)))
        if path == "/preapproval_plan/search" and method == "GET":
            return 200, self._search(query)
        match = _PLAN_PATH.fullmatch(path)
        if match is None:
            raise PlanRefusal(404, "resource not found", "not_found")
        plan = self._plans.get(match.group(1))
        if plan is None:
            raise PlanRefusal(
                404, f"The template with id {match.group(1)} does not exist", "not_found"
            )
        if method == "GET":
            return 200, copy.deepcopy(plan)
        if method == "PUT":
            self._update(plan, _object(body))
            return 200, copy.deepcopy(plan)
        raise PlanRefusal(405, "method not allowed", "method_not_allowed")

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - _CREATE_FIELDS
        if unknown:
            raise _bad("Check the parameters of the body")
        if not isinstance(body.get("reason"), str) or not body["reason"].strip():
            raise _bad("Parameter reason is required")
        if "back_url" not in body:
            raise _bad("Parameter back_url is required")
        _check_url(body["back_url"])
        if "auto_recurring" not in body:
            raise _bad("Parameter auto_recurring is required")
        recurring = self._recurring(body["auto_recurring"])
        reference = body.get("external_reference")
        if reference is not None and (
            not isinstance(reference, str) or not _REFERENCE.fullmatch(reference)
        ):
            raise _bad("Parameter external_reference has unsupported characters")
        now = _now()
        plan_id = secrets.token_hex(16)
        plan: dict[str, Any] = {
            "id": plan_id,
            "application_id": APPLICATION_ID,
            "collector_id": self.collector_id,
            "reason": body["reason"],
            "auto_recurring": recurring,
            "payment_methods_allowed": body.get("payment_methods_allowed")
            or {"payment_types": [{}], "payment_methods": [{}]},
            "back_url": body["back_url"],
            "external_reference": reference,
            "init_point": "https://www.mercadopago.com.br/subscriptions/checkout"
            f"?preapproval_plan_id={plan_id}",
            "date_created": now,
            "last_modified": now,
            "status": "active",
        }
        self._plans[plan_id] = plan
        return plan

    def _update(self, plan: dict[str, Any], body: dict[str, Any]) -> None:
        if set(body) - _UPDATE_FIELDS:
            raise _bad("Check the parameters of the body")
        if "reason" in body and (not isinstance(body["reason"], str) or not body["reason"]):
            raise _bad("Check the parameters of the body")
        if "back_url" in body:
            _check_url(body["back_url"])
        status = body.get("status", plan["status"])
        if status not in ("active", "cancelled"):
            raise _bad("Invalid value for status. Valid ones ar active, inactive, cancelled.")
        recurring = plan["auto_recurring"]
        if "auto_recurring" in body:
            given = body["auto_recurring"]
            if not isinstance(given, dict):
                raise _bad("Check the parameters of the body")
            recurring = self._recurring({**recurring, **given})
        for key in ("reason", "back_url", "payment_methods_allowed"):
            if key in body:
                plan[key] = body[key]
        plan["auto_recurring"] = recurring
        plan["status"] = status
        plan["last_modified"] = _now()

    def _recurring(self, given: object) -> dict[str, Any]:
        if not isinstance(given, dict) or set(given) - _RECURRING_FIELDS:
            raise _bad("Check the parameters of the body")
        if "frequency" not in given or "frequency_type" not in given:
            raise _bad(
                "Parameters frequency and frequency_type are required in the recurring "
                "payments scheme"
            )
        frequency = given["frequency"]
        if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
            raise _bad("Invalid value for frequency, must be a positive integer")
        if given["frequency_type"] not in ("days", "months"):
            raise _bad("Invalid value for frequency_type, valid ones are days or months")
        currency = given.get("currency_id")
        if currency is None:
            raise _bad("Field currency_id is required")
        if currency not in SUBSCRIPTION_CURRENCIES:
            raise _bad("Invalid value for currency_id")
        if currency != self.site_currency:
            raise _bad("Cannot operate with this currency_id in this site")
        amount = given.get("transaction_amount")
        if amount is not None:
            _check_amount(amount, whole=currency in _WHOLE_CURRENCIES)
        trial = given.get("free_trial")
        if trial is not None:
            if not isinstance(trial, dict) or set(trial) - {"frequency", "frequency_type"}:
                raise _bad("Check the parameters of the body")
            trial_frequency = trial.get("frequency")
            if (
                isinstance(trial_frequency, bool)
                or not isinstance(trial_frequency, int)
                or trial_frequency < 1
            ):
                raise _bad("Invalid value for frequency, must be a positive integer")
            if trial.get("frequency_type") not in ("days", "months"):
                raise _bad("Invalid value for frequency_type, valid ones are days or months")
        return copy.deepcopy(given)

    def _search(self, query: Mapping[str, str]) -> dict[str, Any]:
        try:
            limit = int(query.get("limit", "20"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            raise _bad("Binding exception, parameters passed are invalid") from None
        if not 1 <= limit <= 100 or offset < 0:
            raise _bad("Binding exception, parameters passed are invalid")
        status = query.get("status")
        if status is not None and status not in ("active", "cancelled"):
            raise _bad("Invalid status value. Valid status are active, cancelled")
        text = query.get("q", "").casefold()
        found = [
            p
            for p in self._plans.values()
            if (status is None or p["status"] == status)
            and (
                not text
                or text in p["reason"].casefold()
                or text in (p.get("external_reference") or "").casefold()
            )
        ]
        if query.get("criteria") == "desc":
            found.reverse()
        return {
            "paging": {"offset": offset, "limit": limit, "total": len(found)},
            "results": copy.deepcopy(found[offset : offset + limit]),
        }


def _object(body: dict[str, Any] | None) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad("Check the parameters of the body")
    return body


def _check_url(url: object) -> None:
    if not isinstance(url, str) or not _URL.fullmatch(url):
        raise _bad("Invalid value for back_url. Must be a valid URL")


def _check_amount(amount: object, *, whole: bool) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
        raise _bad("Invalid value for transaction_amount, must be a positive number")
    exponent = Decimal(repr(amount)).as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if whole and decimals:
        raise _bad("Invalid value for transaction_amount, must be a positive integer")
    if decimals > 2:
        raise _bad("Invalid value for transaction_amount, only two decimals are allowed")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
