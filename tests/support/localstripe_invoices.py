"""The invoices of Price-based subscriptions for localstripe, and their hosted invoice page.

Loaded by :mod:`tests.support.localstripe_subscriptions` (see there for the whole picture). A
:class:`SubscriptionInvoice` is one of localstripe's own ``Invoice`` objects (same store key,
so ``GET /v1/invoices/{id}``, ``GET /v1/invoices``, ``expand[]=latest_invoice`` and localstripe's
``POST /v1/invoices/{id}/pay`` all see it), built from a subscription's Price instead of a Plan.
It follows Stripe's invoice object (https://docs.stripe.com/api/invoices/object) where qzpay
reads it: ``status`` (``draft``, ``open``, ``paid``, ``void``), ``amount_due``,
``amount_paid``, ``amount_remaining``, ``billing_reason``, ``currency``, ``customer``,
``hosted_invoice_url`` (set when finalized), ``lines`` (``line_item`` objects with ``amount``,
``period``, ``pricing.price_details``, ``proration``, ``quantity``), ``number``,
``period_start``/``period_end``, ``status_transitions``, and the subscription it bills both as
older API versions put it (``subscription``) and as newer ones do
(``parent.subscription_details.subscription``).

Payment goes through localstripe's PaymentIntent and Charge, so its test cards behave as
everywhere else in localstripe: ``4000002500003155`` (and the other 3DS numbers) needs
authentication, ``4000000000000341`` (``pm_card_chargeCustomerFail``) is declined when charged.

Events: ``invoice.created``, ``invoice.finalized``, ``invoice.paid`` and
``invoice.payment_succeeded`` (also for an invoice of 0, which is paid when finalized),
``invoice.payment_failed``, ``invoice.payment_action_required`` and ``invoice.voided``.

The hosted invoice page (``hosted_invoice_url``) is ``GET /_config/hosted_invoices/{id}``: a
small HTML page (localstripe answers ``/_config/`` without an API key, as a customer's browser
would come). ``POST /_config/hosted_invoices/{id}/pay`` is what its Pay button does: it pays
the open invoice with ``payment_method`` (default ``pm_card_visa``), the card the customer
types on the page. Authentication counts as completed on the page; a card Stripe declines
(``4000000000000002`` on attach, ``4000000000000341`` on charge) is answered 402
``card_declined`` and sends ``invoice.payment_failed``. Nothing is saved to the customer.

Also here, as billing arithmetic: billing periods (:func:`period_edge`), prorations (pending
invoice items of the subscription, billed with its next invoice: :func:`prorate`), what
``error_if_incomplete`` refuses (:func:`refusal`) and the ``pause_collection`` parameter.

Not modelled: ``POST /v1/invoices/{id}/pay`` (localstripe's own) charges the customer's
default payment method but reports no decline (localstripe ignores it there); use the hosted
page's Pay.
"""

from __future__ import annotations

import html
import itertools
import json
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from dateutil.relativedelta import relativedelta  # type: ignore[import-untyped]
from localstripe.errors import UserError  # type: ignore[import-untyped]
from localstripe.resources import (  # type: ignore[import-untyped]
    Customer,
    Event,
    Invoice,
    InvoiceItem,
    List,
    PaymentIntent,
    PaymentMethod,
    Product,
    StripeObject,
    store,
    try_convert_to_int,
)
from localstripe.webhooks import schedule_webhook  # type: ignore[import-untyped]

_settings = {"base_url": "http://127.0.0.1"}
_numbers = itertools.count(1)


def configure(base_url: str) -> None:
    """Where this server answers, for the ``hosted_invoice_url`` of invoices."""
    _settings["base_url"] = base_url.rstrip("/")


def notify(kind: str, obj: Any, previous: dict[str, Any] | None = None) -> None:
    """Send event ``kind`` about ``obj`` as it is now (with ``previous_attributes``)."""
    event = Event(kind, obj)
    if previous:
        event.data["previous_attributes"] = previous
    schedule_webhook(event)


def bad(message: str, param: str | None = None, code: str | None = None) -> UserError:
    contents: dict[str, Any] = {}
    if param is not None:
        contents["param"] = param
    if code is not None:
        contents["code"] = code
    return UserError(400, message, contents)


def card_error(message: str, code: str, decline_code: str | None = None) -> UserError:
    """A 402 ``card_error``, as Stripe answers a payment that did not go through."""
    contents: dict[str, Any] = {"code": code}
    if decline_code is not None:
        contents["decline_code"] = decline_code
    error = UserError(402, message, contents)
    error.body["error"]["type"] = "card_error"
    return error


def refusal(payment_method: Any) -> UserError | None:
    """Why a first payment with ``payment_method`` (None: the customer has none) would not go
    through, as ``payment_behavior=error_if_incomplete`` answers it; None if it would."""
    if payment_method is None:
        return bad(
            "This customer has no attached payment source or default payment method. "
            "Please consider adding a default payment method.",
            code="resource_missing",
        )
    if payment_method._requires_authentication():
        message = "Your card was declined. This transaction requires authentication."
        return card_error(message, "authentication_required", "authentication_required")
    if payment_method._charging_is_declined():
        return card_error("Your card was declined.", "card_declined", "generic_decline")
    return None


def period_edge(anchor: int, price: Any, cycles: int) -> int:
    """``anchor`` plus ``cycles`` billing intervals of ``price``, counted from the anchor so
    that month ends clamp as at Stripe (Jan 31 → Feb 28 → Mar 31)."""
    count = price.recurring["interval_count"] * cycles
    unit = {"day": "days", "week": "weeks", "month": "months", "year": "years"}
    step = relativedelta(**{unit[price.recurring["interval"]]: count})
    return int((datetime.fromtimestamp(anchor, UTC) + step).timestamp())


def prorate(subscription: Any, amount: float, price: Any, now: int, end: int) -> None:
    """A pending proration (an invoice item of the subscription) for ``price`` from ``now``
    to ``end``: negative for unused time, positive for remaining time; billed with the
    subscription's next invoice."""
    kind = "Unused time on" if amount < 0 else "Remaining time on"
    InvoiceItem(
        amount=round(amount),
        currency=subscription.currency,
        customer=subscription.customer,
        subscription=subscription.id,
        proration=True,
        description=f"{kind} {product_name(price)}",
        period_start=now,
        period_end=end,
    )


def product_name(price: Any) -> str:
    try:
        return str(Product._api_retrieve(price.product).name)
    except UserError:
        return str(price.product)


class InvoiceLine(StripeObject):  # type: ignore[misc]  # localstripe is untyped
    """A ``line_item`` of a subscription invoice: the period of its item, or a proration
    (a pending invoice item of the subscription)."""

    object = "line_item"
    _id_prefix = "il_"

    def __init__(
        self, invoice: Any, item: Any = None, pending: Any = None, trial: bool = False
    ) -> None:
        super().__init__()
        self.currency = invoice.currency
        self.discountable = True
        self.invoice = invoice.id
        self.metadata: dict[str, str] = {}
        self.subscription = invoice.subscription
        self.tax_rates: list[Any] = []
        if item is not None:  # the item's current period
            price = item.price
            self.amount = 0 if trial else price.unit_amount * item.quantity
            product = product_name(price)
            self.description = (
                f"Trial period for {product}" if trial else f"{item.quantity} × {product}"
            )
            self.period = {"start": item.current_period_start, "end": item.current_period_end}
            self.pricing: dict[str, Any] | None = {
                "type": "price_details",
                "price_details": {"price": price.id, "product": price.product},
                "unit_amount_decimal": price.unit_amount_decimal,
            }
            self.proration = False
            self.quantity = item.quantity
            self.subscription_item = item.id
            self.type = "subscription"
        else:
            self.amount = pending.amount
            self.description = pending.description
            self.period = dict(pending.period)
            self.pricing = None
            self.proration = pending.proration
            self.quantity = 1
            self.subscription_item = None
            self.type = "invoiceitem"
            pending.invoice = invoice.id


class SubscriptionInvoice(Invoice):  # type: ignore[misc]  # localstripe is untyped
    """An invoice of a Price-based subscription (see the module docstring)."""

    def __init__(
        self, subscription: Any, billing_reason: str, *, trial: bool = False, period: bool = True
    ) -> None:
        """A draft invoice of the subscription's current period (unless not ``period``: only
        prorations), a trial's at 0, with every pending invoice item of the subscription."""
        # localstripe's Invoice.__init__ builds lines from Plans: only its store entry is kept.
        StripeObject.__init__(self)
        self.attempt_count = 0
        self.attempted = False
        self.auto_advance = True
        self.billing_reason = billing_reason
        self.collection_method = "charge_automatically"
        self.currency = subscription.currency
        self.customer = subscription.customer
        self.customer_email = Customer._api_retrieve(subscription.customer).email
        self.date = self.created
        self.default_tax_rates = None
        self.description = None
        self.due_date = None
        self.ending_balance: int | None = None
        self.hosted_invoice_url: str | None = None
        self.invoice_pdf = None
        self.metadata: dict[str, str] = {}
        self.number: str | None = None
        self.payment_intent: str | None = None
        self.period_start = subscription.current_period_start
        self.period_end = subscription.current_period_end
        self.starting_balance = 0
        self.status_transitions: dict[str, int | None] = dict.fromkeys(
            ("finalized_at", "marked_uncollectible_at", "paid_at", "voided_at")
        )
        self.subscription = subscription.id
        self.tax_percent = None
        self.lines = List("/v1/invoices/" + self.id + "/lines")
        if period:
            item = subscription.items._list[0]
            self.lines._list.append(InvoiceLine(self, item=item, trial=trial))
        for key, value in list(store.items()):
            if (
                key.startswith("invoiceitem:")
                and value.invoice is None
                and value.subscription == subscription.id
            ):
                self.lines._list.append(InvoiceLine(self, pending=value))
        self._draft = True
        self._voided = False
        notify("invoice.created", self)

    @property
    def amount_remaining(self) -> int:
        return 0 if self.status in ("paid", "void") else int(self.amount_due)

    def _finalize(self) -> None:
        """Draft → open (or paid, when nothing is due): number, hosted page, events."""
        super()._finalize()
        self.number = f"LS-{next(_numbers):06d}"
        self.hosted_invoice_url = f"{_settings['base_url']}/_config/hosted_invoices/{self.id}"
        self.ending_balance = 0
        notify("invoice.finalized", self)
        if self.status == "paid":
            self._on_payment_success()

    def _void(self) -> None:
        self._draft = False
        self._voided = True
        self.status_transitions["voided_at"] = int(time.time())
        notify("invoice.voided", self)

    def _collect(self, payment_method: Any, *, on_page: bool = False, decline: bool = False) -> str:
        """Try to charge the amount due: ``paid``, ``declined`` (``invoice.payment_failed``
        sent), ``requires_action`` (3DS, unless ``on_page``: the customer completed it there),
        ``requires_payment_method`` (none: nothing attempted, nothing sent) or ``processing``
        (an asynchronous method such as SEPA debit). ``decline`` makes the attempt fail."""
        if self.status == "paid":
            return "paid"
        if payment_method is None and not decline:
            return "requires_payment_method"
        self.attempted = True
        self.attempt_count += 1
        if decline or (on_page and payment_method._attaching_is_declined()):
            self._on_payment_failure_now()
            return "declined"
        intent = PaymentIntent(
            amount=self.amount_due,
            currency=self.currency,
            customer=self.customer,
            payment_method=payment_method.id,
        )
        intent.invoice = self.id
        self.payment_intent = intent.id
        failed: list[bool] = []
        if on_page:
            intent._create_charge(on_failure_now=lambda: failed.append(True))
        else:
            intent._confirm(on_failure_now=lambda: failed.append(True))
        if failed:
            self._on_payment_failure_now()
            return "declined"
        if intent.status == "requires_action":
            notify("invoice.payment_action_required", self)
            return "requires_action"
        return "paid" if self.status == "paid" else "processing"

    # localstripe's PaymentIntent calls these three when a payment settles.

    def _on_payment_success(self) -> None:
        self.status_transitions["paid_at"] = int(time.time())
        notify("invoice.paid", self)
        notify("invoice.payment_succeeded", self)
        subscription = store.get("subscription:" + self.subscription)
        if subscription is not None:
            subscription._invoice_paid(self)

    def _on_payment_failure_now(self) -> None:
        notify("invoice.payment_failed", self)
        subscription = store.get("subscription:" + self.subscription)
        if subscription is not None:
            subscription._invoice_failed(self)

    def _on_payment_failure_later(self) -> None:
        self._on_payment_failure_now()


def pause_collection(value: Any) -> dict[str, Any] | None:
    """The ``pause_collection`` parameter: None to resume (``""``), else how invoices are
    collected meanwhile (``void`` or ``keep_as_draft``)."""
    if value == "":
        return None
    if not isinstance(value, dict) or set(value) - {"behavior", "resumes_at"}:
        raise bad("Invalid pause_collection", "pause_collection")
    behavior = value.get("behavior")
    if behavior == "mark_uncollectible":
        message = "pause_collection[behavior]=mark_uncollectible is not supported by this server."
        raise bad(message, "pause_collection[behavior]")
    if behavior not in ("void", "keep_as_draft"):
        raise bad("Invalid pause_collection[behavior]", "pause_collection[behavior]")
    resumes_at = try_convert_to_int(value.get("resumes_at"))
    if resumes_at is not None and type(resumes_at) is not int:
        raise bad("Invalid timestamp", "pause_collection[resumes_at]")
    return {"behavior": behavior, "resumes_at": resumes_at}


def _hosted_invoice(request: web.Request) -> SubscriptionInvoice:
    invoice_id = request.match_info["id"]
    invoice = store.get("invoice:" + invoice_id)
    if not isinstance(invoice, SubscriptionInvoice) or invoice.hosted_invoice_url is None:
        raise UserError(404, f"No such invoice: '{invoice_id}'", {"code": "resource_missing"})
    return invoice


async def hosted_page(request: web.Request) -> web.Response:
    """``GET /_config/hosted_invoices/{id}``: what the customer sees."""
    invoice = _hosted_invoice(request)
    amount = f"{invoice.amount_due / 100:.2f} {invoice.currency.upper()}"
    button = (
        f'<form method="post" action="{html.escape(invoice.id)}/pay"><button>Pay</button></form>'
        if invoice.status == "open"
        else ""
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Invoice {html.escape(invoice.number or invoice.id)}</title></head><body>"
        f"<h1>Invoice {html.escape(invoice.number or invoice.id)}</h1>"
        f"<p>Amount due: <span id='amount'>{html.escape(amount)}</span></p>"
        f"<p>Status: <span id='status'>{html.escape(invoice.status)}</span></p>"
        f"{button}</body></html>"
    )
    return web.Response(text=page, content_type="text/html")


async def hosted_pay(request: web.Request) -> web.Response:
    """``POST /_config/hosted_invoices/{id}/pay`` [``payment_method``]: the page's Pay button."""
    invoice = _hosted_invoice(request)
    data = await hook_data(request)
    card = data.get("payment_method", "pm_card_visa")
    if not isinstance(card, str):
        raise bad("Invalid payment_method", "payment_method")
    try:
        payment_method = PaymentMethod._api_retrieve(card)
    except UserError:
        raise bad(
            f"No such PaymentMethod: '{card}'", "payment_method", "resource_missing"
        ) from None
    if invoice.status == "paid":
        raise bad("Invoice is already paid", code="invoice_already_paid")
    if invoice.status != "open":
        raise bad(f"This invoice can no longer be paid (status {invoice.status}).")
    if invoice._collect(payment_method, on_page=True) == "declined":
        raise card_error("Your card was declined.", "card_declined", "generic_decline")
    return web.json_response(invoice._export())


async def hook_data(request: web.Request) -> dict[str, Any]:
    """The flat parameters of a test hook: a JSON object or a form, or nothing."""
    body = await request.read()
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return dict(await request.post())
    if not isinstance(data, dict):
        raise bad("Expected a JSON object")
    return data
