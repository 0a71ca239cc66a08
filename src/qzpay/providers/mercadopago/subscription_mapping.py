"""qzpay subscriptions to MercadoPago subscriptions (``preapproval``, without a plan) and back.

=============================  ============================================================
qzpay                          MercadoPago ``preapproval``
=============================  ============================================================
``Subscription.id``            ``external_reference`` (find and reconcile match it exactly)
``Customer.email``             ``payer_email``
``Plan.name``                  ``reason``
price × quantity               ``auto_recurring.transaction_amount`` (major units, as the
                               catalog mapping sends amounts); quantity is no MercadoPago
                               concept, so a copy reads back ``quantity=1`` and
                               ``unit_amount`` = the amount charged per period
``Price.currency``             ``auto_recurring.currency_id``
interval × count               ``frequency`` + ``frequency_type`` (week → 7 days, year →
                               12 months, as for prices)
trial days                     ``auto_recurring.free_trial`` {frequency: days}
provider option                ``back_url``
=============================  ============================================================

Status: ``pending`` → ``incomplete`` (``payment_url`` = ``init_point``); ``authorized`` →
``trialing`` while the free trial runs (now < start + free trial, start being
``auto_recurring.start_date``, else ``date_created``), else ``active``; ``paused`` →
``paused``; ``cancelled`` → ``canceled`` (``canceled_at`` = ``ended_at`` = ``last_modified``).
Any other status cannot be read (a ProviderSyncError).

Periods: while the trial runs, the trial itself (``trial_start`` = start, ``trial_end`` = start
+ free trial, kept afterwards). A pending preapproval bills nothing yet: start → start + one
period. Otherwise the period ends at ``next_payment_date`` (the next charge) and starts one
period earlier; without one (a cancelled preapproval) periods are counted from start + trial up
to ``last_modified``. Months are calendar months, the day clamped (Jan 31 + 1 month = Feb 28).

``cancel_at_period_end`` is True when ``auto_recurring.end_date`` is set and the preapproval is
not cancelled: MercadoPago's only way to stop billing later (see the adapter).
``provider_customer_id`` is None: a preapproval names its payer by email and MercadoPago user id
(``payer_id``), not by the Customers API id that qzpay links.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from qzpay.catalog.currencies import exponent, to_major_units
from qzpay.catalog.models import Price
from qzpay.providers.mercadopago.catalog_mapping import frequency
from qzpay.providers.mercadopago.mapping import text
from qzpay.providers.subscriptions import ProviderSubscription, SubscriptionTerms
from qzpay.subscriptions.models import SubscriptionStatus

STATUSES: Final[dict[str, SubscriptionStatus]] = {
    "pending": "incomplete",
    "authorized": "active",
    "paused": "paused",
    "cancelled": "canceled",
}
"""MercadoPago's preapproval statuses → qzpay's (``authorized`` may read ``trialing``)."""


# -- qzpay to MercadoPago --------------------------------------------------------------------


def create_body(terms: SubscriptionTerms, back_url: str) -> dict[str, Any]:
    """A ``pending`` preapproval without a plan (the payer authorises it at ``init_point``)."""
    price = terms.price
    count, kind = frequency(price.interval, price.interval_count)
    recurring: dict[str, Any] = {
        "frequency": count,
        "frequency_type": kind,
        "transaction_amount": transaction_amount(price, terms.subscription.quantity),
        "currency_id": price.currency,
    }
    if terms.trial_days:
        recurring["free_trial"] = {"frequency": terms.trial_days, "frequency_type": "days"}
    return {
        "reason": terms.plan.name,
        "external_reference": terms.subscription.id,
        "payer_email": terms.customer.email,
        "back_url": back_url,
        "auto_recurring": recurring,
        "status": "pending",
    }


def transaction_amount(price: Price, quantity: int) -> int | float:
    """price × quantity in major units as a JSON number, exactly (ValueError if it cannot be:
    more than 15 significant digits)."""
    amount = to_major_units(price.unit_amount * quantity, price.currency)
    if exponent(price.currency) == 0:
        return int(amount)
    number = float(amount)
    if Decimal(repr(number)) != amount:
        raise ValueError(f"{amount} {price.currency} cannot be sent exactly as a JSON number")
    return number


def iso(moment: datetime) -> str:
    """A date as MercadoPago's examples write them: ``2022-07-20T15:59:52.581Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- MercadoPago to qzpay --------------------------------------------------------------------


def provider_subscription(data: Mapping[str, Any], *, now: datetime) -> ProviderSubscription:
    """A preapproval as the provider-neutral ProviderSubscription (see the module docstring);
    ValueError (or KeyError, TypeError) when it cannot be read."""
    raw_status = str(data.get("status"))
    if raw_status not in STATUSES:
        raise ValueError(f"unknown status {raw_status!r}")
    status = STATUSES[raw_status]
    recurring = data.get("auto_recurring")
    recurring = recurring if isinstance(recurring, Mapping) else {}
    period = _period(recurring)
    start = _date(recurring.get("start_date")) or _date(data.get("date_created"))
    if start is None:
        raise ValueError("neither start_date nor date_created")
    trial = recurring.get("free_trial")
    trial_end = shift(start, _period(trial), 1) if isinstance(trial, Mapping) else None
    modified = _date(data.get("last_modified")) or start
    next_payment = _date(data.get("next_payment_date"))
    if trial_end is not None and now < trial_end and raw_status != "cancelled":
        period_start, period_end = start, trial_end
        status = "trialing" if status == "active" else status
    elif raw_status == "pending":
        period_start, period_end = start, shift(start, period, 1)
    elif next_payment is not None:
        period_start, period_end = shift(next_payment, period, -1), next_payment
    else:
        period_start = trial_end or start
        while shift(period_start, period, 1) <= modified:
            period_start = shift(period_start, period, 1)
        period_end = shift(period_start, period, 1)
    currency = str(recurring.get("currency_id") or "").upper()
    ended = modified if raw_status == "cancelled" else None
    return ProviderSubscription(
        id=str(data["id"]),
        qzpay_subscription_id=text(data.get("external_reference")),
        provider_customer_id=None,
        provider_price_id=None,
        quantity=1,
        status=status,
        current_period_start=period_start,
        current_period_end=period_end,
        trial_start=start if trial_end is not None else None,
        trial_end=trial_end,
        cancel_at_period_end=recurring.get("end_date") is not None and ended is None,
        canceled_at=ended,
        ended_at=ended,
        payment_url=text(data.get("init_point")) if raw_status == "pending" else None,
        unit_amount=_minor(recurring.get("transaction_amount"), currency),
        currency=currency or None,
    )


def billing_period(data: Mapping[str, Any]) -> tuple[object, object]:
    """``(frequency, frequency_type)`` as a preapproval holds them (to compare with a price's
    :func:`~qzpay.providers.mercadopago.catalog_mapping.frequency`)."""
    recurring = data.get("auto_recurring")
    recurring = recurring if isinstance(recurring, Mapping) else {}
    return recurring.get("frequency"), recurring.get("frequency_type")


def shift(moment: datetime, period: tuple[int, str], times: int) -> datetime:
    """``moment`` moved by ``times`` periods of ``(frequency, "days"|"months")``."""
    count, kind = period
    if kind == "days":
        return moment + timedelta(days=count * times)
    index = moment.month - 1 + count * times
    year, month = moment.year + index // 12, index % 12 + 1
    following = datetime(year + month // 12, month % 12 + 1, 1)
    last_day = (following - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def _period(raw: object) -> tuple[int, str]:
    """``(frequency, frequency_type)`` of an ``auto_recurring`` or ``free_trial`` object."""
    if not isinstance(raw, Mapping):
        raise ValueError("no auto_recurring")
    count, kind = raw.get("frequency"), raw.get("frequency_type")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"frequency {count!r} is not a positive integer")
    if kind not in ("days", "months"):
        raise ValueError(f"frequency_type {kind!r} is neither days nor months")
    return count, str(kind)


def _date(value: object) -> datetime | None:
    """MercadoPago's ISO 8601 text (``2022-01-01T11:12:25.892-04:00``) in UTC; None if absent."""
    if not isinstance(value, str) or not value.strip():
        return None
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        raise ValueError(f"date {value!r} has no time zone")
    return moment.astimezone(UTC)


def _minor(amount: object, currency: str) -> int | None:
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not currency:
        return None
    try:
        places = exponent(currency)
    except ValueError:
        return None
    return int(Decimal(repr(amount)).scaleb(places).to_integral_value())
