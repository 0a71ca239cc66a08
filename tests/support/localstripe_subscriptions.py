"""Price-based Stripe subscriptions for localstripe, loaded by the launcher.

localstripe (1.x) bills Plan-based subscriptions only. :func:`install` points its
``Subscription`` class methods at :class:`Subscription` (a ``StripeObject`` in its store, in
its style), so its own routes, ``expand`` and ``customer.subscriptions`` reach it; invoices are
in :mod:`tests.support.localstripe_invoices`; ``Idempotency-Key`` is honoured on writes under
``/v1/subscriptions`` (:mod:`tests.support.localstripe_idempotency`). site-packages is not
modified. From Stripe's API reference (https://docs.stripe.com/api/subscriptions):

* ``POST /v1/subscriptions``: ``customer``, ``items[0][price]`` (an active recurring price),
  ``items[0][quantity]``, ``items[0][metadata]``, ``metadata``, ``trial_period_days`` (0 to
  730), ``payment_behavior`` (``allow_incomplete`` by default, ``default_incomplete``,
  ``error_if_incomplete``), ``proration_behavior``, ``description``, ``off_session``,
  ``expand[]``; one item only (more: 400 naming this server). The first invoice is charged
  to the customer's default payment method (``invoice_settings.default_payment_method``,
  else ``default_source``): paid → ``active``; none, declined or needing authentication →
  ``incomplete``, the invoice ``open`` with its ``hosted_invoice_url``. ``error_if_incomplete``
  refuses those instead (402 ``card_declined``/``authentication_required``; 400 without a
  payment method) and creates nothing; ``default_incomplete`` never charges. A trial is
  ``trialing`` at once (``trial_start``, ``trial_end``), its first invoice paid at 0.
* ``GET /v1/subscriptions/{id}``; ``GET /v1/subscriptions`` (newest first) with ``customer``,
  ``price``, ``status`` (default: all but ``canceled``; ``all``, ``ended`` or one status),
  ``limit``, ``starting_after``.
* ``POST /v1/subscriptions/{id}``: ``cancel_at_period_end`` (true also sets ``cancel_at`` and
  ``canceled_at``, as at Stripe), ``items[0][id|price|quantity|metadata]`` (the item keeps
  its id; another currency is refused), ``proration_behavior`` (``create_prorations``:
  pending invoice items for the rest of the period, billed with the next invoice;
  ``always_invoice``: billed now; ``none``; amounts pro rata by the second, no finer),
  ``pause_collection[behavior]`` (``void``, ``keep_as_draft``; ``mark_uncollectible`` is
  refused by this server), ``pause_collection=""`` (resume), ``payment_behavior`` (accepted,
  not modelled), ``metadata`` (``""`` removes a key), ``description``,
  ``cancellation_details``. Another billing interval restarts the period now and bills it at
  once, as at Stripe. A canceled subscription only updates ``cancellation_details`` and
  ``metadata`` (Stripe's 400 otherwise).
* ``DELETE /v1/subscriptions/{id}`` cancels now (``canceled``, ``canceled_at``, ``ended_at``);
  an ended subscription is "No such subscription" (404) there, as at Stripe. Deleting a
  customer cancels its subscriptions, as at Stripe.
* ``current_period_start``/``current_period_end`` are on the item (API versions since
  2025-03-31) and on the subscription (older ones); ``latest_invoice`` expands.
* Events: ``customer.subscription.created``, ``.updated`` (with ``previous_attributes``),
  ``.deleted``.

Test hooks (no API key, like all of ``/_config/``):

* ``POST /_config/subscriptions/{id}/advance`` [``decline=true``]: the current period ends;
  the next starts exactly at the old end and its invoice (with pending prorations) is
  charged to the customer's default payment method, or declined with ``decline=true``: paid
  → ``active`` (a trial ends so), failed → ``past_due`` with ``invoice.payment_failed``. Set
  to cancel at period end: canceled instead (``ended_at`` = the old end). ``incomplete``:
  expires (``incomplete_expired``, its invoice void). Paused collection voids the new invoice
  (or keeps it draft). Only the subscription's periods move; the server's clock does not.
* ``POST /_config/hosted_invoices/{id}/pay`` [``payment_method``]: the Pay button of the
  hosted invoice page. Paying the open invoice of an ``incomplete`` or ``past_due``
  subscription makes it ``active`` (``invoice.paid``, ``customer.subscription.updated``).

Not modelled: retries and dunning (``past_due`` lasts until an invoice is paid), ``unpaid``,
schedules, several items, discounts, taxes, customer balances, test clocks.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from aiohttp import web
from localstripe import resources  # type: ignore[import-untyped]
from localstripe.errors import UserError  # type: ignore[import-untyped]
from localstripe.resources import (  # type: ignore[import-untyped]
    Customer,
    List,
    StripeObject,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)

from tests.support import localstripe_idempotency as idempotency
from tests.support import localstripe_invoices as invoices
from tests.support.localstripe_invoices import bad, notify
from tests.support.localstripe_prices import Price, _apply_metadata

_ENDED = ("canceled", "incomplete_expired")
_LIST_STATUSES = (
    *("active", "all", "canceled", "ended", "incomplete", "incomplete_expired"),
    *("past_due", "paused", "trialing", "unpaid"),
)
_PAYMENT_BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete")
_UPDATE_PAYMENT_BEHAVIORS = (*_PAYMENT_BEHAVIORS, "pending_if_incomplete")
_PRORATIONS = ("create_prorations", "none", "always_invoice")
_UPDATABLE = frozenset(
    {"cancel_at_period_end", "items", "proration_behavior", "pause_collection", "metadata"}
    | {"payment_behavior", "description", "cancellation_details", "off_session"}
)
_MAX_TRIAL_DAYS = 730
_FIXED: dict[str, Any] = {  # fields this server never changes
    **dict.fromkeys(("application", "default_payment_method", "default_source", "schedule")),
    **dict.fromkeys(("pending_setup_intent", "pending_update", "test_clock")),
    "automatic_tax": {"enabled": False, "liability": None},
    "collection_method": "charge_automatically",
    "default_tax_rates": [],
    "discounts": [],
    "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
}


def _missing(subscription_id: str) -> UserError:
    contents = {"code": "resource_missing", "param": "id"}
    return UserError(404, f"No such subscription: '{subscription_id}'", contents)


def _referenced(cls: Any, object_id: Any, param: str, noun: str) -> Any:
    """The object a parameter names; a missing one is Stripe's 400 ``resource_missing``."""
    if not isinstance(object_id, str) or not object_id:
        raise bad(f"Missing required param: {param}.", param)
    try:
        return cls._api_retrieve(object_id)
    except UserError:
        raise bad(f"No such {noun}: '{object_id}'", param, "resource_missing") from None


def _item_params(items: Any, current: Any = None) -> tuple[Any, int, Any]:
    """The price, quantity and metadata ``items`` asks for: the one item of a new
    subscription, or the replacement of ``current``, which it must name by id."""
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise bad("Invalid array", "items")
    if len(items) != 1 or (current is not None and items[0].get("id") is None):
        raise bad("This test server supports subscriptions of exactly one item.", "items")
    [item] = items
    unknown = set(item) - {"id", "price", "quantity", "metadata"}
    if unknown or (current is None and "id" in item):
        raise bad(f"Received unknown parameter: items[0][{min(unknown or {'id'})}]")
    if current is not None and item["id"] != current.id:
        message = f"No such subscription item: '{item['id']}'"
        raise bad(message, "items[0][id]", "resource_missing")
    price_id = item.get("price", current.price.id if current is not None else None)
    price = _referenced(Price, price_id, "items[0][price]", "price")
    if price.type != "recurring":
        message = "The price specified is set to `type=one_time` but this field only accepts "
        raise bad(message + "prices with `type=recurring`.", "items[0][price]")
    if not price.active and (current is None or price is not current.price):
        message = "The price specified is inactive. This field only accepts active prices."
        raise bad(message, "items[0][price]")
    quantity = try_convert_to_int(item.get("quantity", current.quantity if current else 1))
    if type(quantity) is not int or quantity < 0:
        raise bad("Invalid non-negative integer", "items[0][quantity]")
    metadata = _apply_metadata(current.metadata if current else {}, item.get("metadata", {}))
    return price, quantity, metadata


class SubscriptionItem(StripeObject):  # type: ignore[misc]  # localstripe is untyped
    object = "subscription_item"
    _id_prefix = "si_"

    def __init__(self, subscription: str, price: Any, quantity: int, metadata: Any) -> None:
        super().__init__()
        self.billing_thresholds = None
        self.current_period_start = 0
        self.current_period_end = 0
        self.discounts: list[Any] = []
        self.metadata = metadata
        self.price = price
        self.quantity = quantity
        self.subscription = subscription
        self.tax_rates: list[Any] = []


class Subscription(StripeObject):  # type: ignore[misc]  # localstripe is untyped
    object = "subscription"
    _id_prefix = "sub_"

    def __init__(
        self,
        customer: Any = None,
        items: Any = None,
        metadata: Any = None,
        trial_period_days: Any = None,
        payment_behavior: Any = "allow_incomplete",
        proration_behavior: Any = None,
        description: Any = None,
        off_session: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise bad("Received unknown parameter: " + ", ".join(sorted(kwargs)))
        owner = _referenced(Customer, customer, "customer", "customer")
        price, quantity, item_metadata = _item_params(items)
        trial_days = try_convert_to_int(trial_period_days)
        if trial_days is not None and (
            type(trial_days) is not int or not 0 <= trial_days <= _MAX_TRIAL_DAYS
        ):
            raise bad("Invalid trial_period_days: must be from 0 to 730", "trial_period_days")
        if payment_behavior not in _PAYMENT_BEHAVIORS:
            raise bad("Invalid payment_behavior", "payment_behavior")
        if proration_behavior is not None and proration_behavior not in _PRORATIONS:
            raise bad("Invalid proration_behavior", "proration_behavior")
        if description is not None and not isinstance(description, str):
            raise bad("Invalid string", "description")
        metadata = _apply_metadata({}, metadata if metadata is not None else {})
        payment_method = owner._get_default_payment_method_or_source()
        due = 0 if trial_days else price.unit_amount * quantity
        refusal = invoices.refusal(payment_method) if due else None
        if payment_behavior == "error_if_incomplete" and refusal is not None:
            raise refusal

        # All exceptions must be raised before this point (the store is written below).
        super().__init__()
        now = self.created
        self.__dict__.update(copy.deepcopy(_FIXED))
        self._quiet = True  # one event for the whole creation
        self.billing_cycle_anchor = now + trial_days * 86400 if trial_days else now
        self.cancel_at: int | None = None
        self.cancel_at_period_end = False
        self.canceled_at: int | None = None
        self.cancellation_details: dict[str, Any] = dict.fromkeys(("comment", "feedback", "reason"))
        self.currency = price.currency
        self.customer = customer
        self.description: str | None = description
        self.ended_at: int | None = None
        self.latest_invoice: str | None = None
        self.metadata = metadata
        self.pause_collection: dict[str, Any] | None = None
        self.start_date = now
        self.status = "incomplete"
        self.trial_end = self.billing_cycle_anchor if trial_days else None
        self.trial_start = now if trial_days else None
        self.items = List("/v1/subscription_items?subscription=" + self.id)
        self.items._list = [SubscriptionItem(self.id, price, quantity, item_metadata)]
        self._cycle = -1 if trial_days else 0  # billing periods since the anchor (-1: trial)
        self._set_period()
        invoice = self._bill("subscription_create", trial=bool(trial_days))
        invoice._finalize()
        if payment_behavior != "default_incomplete":
            invoice._collect(payment_method)
        if trial_days:
            self.status = "trialing"
        elif invoice.status == "paid":
            self.status = "active"
        self._quiet = False
        notify("customer.subscription.created", self)

    @property
    def current_period_start(self) -> int:
        return int(self.items._list[0].current_period_start)

    @property
    def current_period_end(self) -> int:
        return int(self.items._list[0].current_period_end)

    def _set_period(self) -> None:
        item = self.items._list[0]
        if self._cycle < 0:
            item.current_period_start, item.current_period_end = self.start_date, self.trial_end
            return
        anchor = self.billing_cycle_anchor
        item.current_period_start = invoices.period_edge(anchor, item.price, self._cycle)
        item.current_period_end = invoices.period_edge(anchor, item.price, self._cycle + 1)

    def _bill(self, reason: str, *, trial: bool = False, period: bool = True) -> Any:
        invoice = invoices.SubscriptionInvoice(self, reason, trial=trial, period=period)
        self.latest_invoice = invoice.id
        return invoice

    def _charge(self, invoice: Any, *, decline: bool = False) -> None:
        """Finalize and charge an invoice made after creation, as collection stands."""
        behavior = (self.pause_collection or {}).get("behavior")
        if behavior is not None:  # collection paused: voided, or left a draft
            if behavior == "void":
                invoice._void()
            return
        invoice._finalize()
        owner = None if decline else store.get("customer:" + self.customer)
        payment_method = owner._get_default_payment_method_or_source() if owner else None
        if invoice._collect(payment_method, decline=decline) == "requires_payment_method":
            invoice._on_payment_failure_now()

    # -- what invoices report (see localstripe_invoices) ---------------------------------

    def _invoice_paid(self, invoice: Any) -> None:
        if self.status in ("incomplete", "past_due", "unpaid"):
            self._change_status("active")

    def _invoice_failed(self, invoice: Any) -> None:
        after_creation = invoice.billing_reason != "subscription_create"
        if self.status in ("active", "trialing") and after_creation:
            self._change_status("past_due")

    def _change_status(self, status: str) -> None:
        previous = {"status": self.status}
        self.status = status
        if not self._quiet:
            notify("customer.subscription.updated", self, previous)

    def _updated(self, before: dict[str, Any]) -> None:
        after = self._export()
        previous = {key: value for key, value in before.items() if after.get(key) != value}
        if previous:
            notify("customer.subscription.updated", self, previous)

    # -- the API ---------------------------------------------------------------------------

    @classmethod
    def _api_retrieve(cls, id: str) -> Subscription:
        found = store.get("subscription:" + id)
        if not isinstance(found, Subscription):
            raise _missing(id)
        return found

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> Subscription:
        obj = cls._api_retrieve(id)
        unknown = set(data) - _UPDATABLE
        if unknown:
            raise bad("Received unknown parameter: " + ", ".join(sorted(unknown)))
        if obj.status in _ENDED and set(data) - {"metadata", "cancellation_details"}:
            message = "A canceled subscription can only update its cancellation_details and "
            raise bad(message + "metadata.")
        obj._update_from(data)
        return obj

    def _update_from(self, data: dict[str, Any]) -> None:
        cancel = try_convert_to_bool(data.get("cancel_at_period_end"))
        if cancel is not None and type(cancel) is not bool:
            raise bad("Invalid boolean", "cancel_at_period_end")
        proration = data.get("proration_behavior", "create_prorations")
        if proration not in _PRORATIONS:
            raise bad("Invalid proration_behavior", "proration_behavior")
        if data.get("payment_behavior", "allow_incomplete") not in _UPDATE_PAYMENT_BEHAVIORS:
            raise bad("Invalid payment_behavior", "payment_behavior")
        pausing = "pause_collection" in data
        pause = invoices.pause_collection(data["pause_collection"]) if pausing else None
        metadata = _apply_metadata(self.metadata, data.get("metadata", {}))
        details = data.get("cancellation_details", {})
        if not isinstance(details, dict) or set(details) - {"comment", "feedback"}:
            raise bad("Invalid cancellation_details", "cancellation_details")
        description = data.get("description", self.description)
        if description is not None and not isinstance(description, str):
            raise bad("Invalid string", "description")
        item = self.items._list[0]
        change = _item_params(data["items"], item) if "items" in data else None
        if change is not None and change[0].currency != self.currency:
            message = f"The price specified is in {change[0].currency}, this subscription in "
            raise bad(f"{message}{self.currency}: its currency cannot change.", "items[0][price]")

        # All exceptions must be raised before this point.
        before = self._export()
        now = int(time.time())
        self.metadata = metadata
        self.description = description or None
        self.cancellation_details.update(details)
        if pausing:
            self.pause_collection = pause
        if cancel is not None and cancel != self.cancel_at_period_end:
            self.cancel_at_period_end = cancel
            self.cancel_at = self.current_period_end if cancel else None
            self.canceled_at = now if cancel else None
            self.cancellation_details["reason"] = "cancellation_requested" if cancel else None
        if change is not None:
            item.metadata = change[2]
            self._quiet = True
            self._change_item(change[0], change[1], proration, now)
            self._quiet = False
        self._updated(before)

    def _change_item(self, price: Any, quantity: int, proration: str, now: int) -> None:
        item = self.items._list[0]
        old_price, old_quantity = item.price, item.quantity
        if (price.id, quantity) == (old_price.id, old_quantity):
            return
        old_interval = (old_price.recurring["interval"], old_price.recurring["interval_count"])
        new_interval = (price.recurring["interval"], price.recurring["interval_count"])
        restart = new_interval != old_interval
        item.price, item.quantity = price, quantity
        if self.status == "trialing":
            return  # nothing is billed during a trial
        start, end = self.current_period_start, self.current_period_end
        if proration != "none" and end > now:
            rest = min(1.0, (end - now) / max(1, end - start))
            invoices.prorate(
                self, -old_price.unit_amount * old_quantity * rest, old_price, now, end
            )
            if not restart:
                invoices.prorate(self, price.unit_amount * quantity * rest, price, now, end)
        if restart:  # Stripe restarts the billing cycle now and bills it at once
            self.billing_cycle_anchor, self._cycle = now, 0
            self._set_period()
            if self.cancel_at_period_end:
                self.cancel_at = self.current_period_end
            self._charge(self._bill("subscription_update"))
        elif proration == "always_invoice" and end > now:
            self._charge(self._bill("subscription_update", period=False))

    @classmethod
    def _api_delete(cls, id: str) -> Subscription:
        obj = cls._api_retrieve(id)
        if obj.status in _ENDED:
            raise _missing(id)  # what Stripe answers for an ended subscription
        now = int(time.time())
        obj.canceled_at = now
        obj._end(now)
        return obj

    def _end(self, when: int) -> None:
        self.status = "canceled"
        self.ended_at = when
        self.cancellation_details["reason"] = "cancellation_requested"
        notify("customer.subscription.deleted", self)

    @classmethod
    def _api_list_all(
        cls,
        url: str,
        customer: Any = None,
        status: Any = None,
        price: Any = None,
        limit: Any = None,
        starting_after: Any = None,
        **kwargs: Any,
    ) -> Any:
        if kwargs:
            raise bad("Received unknown parameter: " + ", ".join(sorted(kwargs)))
        if status is not None and status not in _LIST_STATUSES:
            raise bad("Invalid status", "status")
        listing = List(url, limit=limit, starting_after=starting_after)
        listing._list = [
            sub
            for key, sub in reversed(store.items())  # newest first
            if key.startswith("subscription:")
            and (customer is None or sub.customer == customer)
            and (price is None or sub.items._list[0].price.id == price)
            and (
                sub.status != "canceled"
                if status is None
                else status == "all"
                or sub.status == status
                or (status == "ended" and sub.status in _ENDED)
            )
        ]
        return listing

    # -- the test hook ---------------------------------------------------------------------

    def _advance(self, *, decline: bool) -> None:
        if self.status in _ENDED:
            raise bad(f"This subscription has ended ({self.status}).")
        before = self._export()
        if self.status == "incomplete":
            self.status = "incomplete_expired"
            self.ended_at = int(time.time())
            invoice = store.get("invoice:" + (self.latest_invoice or ""))
            if invoice is not None and invoice.status == "open":
                invoice._void()
            self._updated(before)
            return
        if self.cancel_at_period_end:
            self._end(self.current_period_end)
            return
        self._quiet = True
        if self.status == "trialing":
            self.status = "active"
        self._cycle += 1
        self._set_period()
        self._charge(self._bill("subscription_cycle"), decline=decline)
        self._quiet = False
        self._updated(before)


async def _advance(request: web.Request) -> web.Response:
    """``POST /_config/subscriptions/{id}/advance`` [``decline``]."""
    subscription = Subscription._api_retrieve(request.match_info["id"])
    decline = try_convert_to_bool((await invoices.hook_data(request)).get("decline", False))
    if type(decline) is not bool:
        raise bad("Invalid boolean", "decline")
    subscription._advance(decline=decline)
    return web.json_response(subscription._export(expand=["latest_invoice"]))


def install(app: web.Application, *, base_url: str) -> None:
    """Take over localstripe's subscriptions and add the hooks, in the launcher's process,
    before ``app`` starts; ``base_url`` is where it answers (for hosted invoice pages)."""
    invoices.configure(base_url)
    stock = resources.Subscription
    for name in ("_api_create", "_api_retrieve", "_api_update", "_api_delete", "_api_list_all"):
        setattr(stock, name, getattr(Subscription, name))
    delete_customer = Customer._api_delete.__func__

    def cancel_and_delete(cls: Any, id: str) -> Any:
        for sub in list(store.values()):
            if isinstance(sub, Subscription) and sub.customer == id and sub.status not in _ENDED:
                Subscription._api_delete(sub.id)
        return delete_customer(cls, id)

    Customer._api_delete = classmethod(cancel_and_delete)
    app.middlewares.append(idempotency.middleware(re.compile(r"/v1/subscriptions(/\w+)?")))
    app.router.add_post("/_config/subscriptions/{id}/advance", _advance)
    app.router.add_get("/_config/hosted_invoices/{id}", invoices.hosted_page)
    app.router.add_post("/_config/hosted_invoices/{id}/pay", invoices.hosted_pay)
