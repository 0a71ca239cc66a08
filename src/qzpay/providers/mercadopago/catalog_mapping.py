"""qzpay prices to MercadoPago subscription plans (``preapproval_plan``) and back.

A qzpay *price* is a MercadoPago ``preapproval_plan``; a qzpay *plan* has no MercadoPago object
of its own (it only names its prices).

==========================  =====================================================
qzpay                       MercadoPago ``preapproval_plan``
==========================  =====================================================
``Plan.name``               ``reason`` (what the subscriber sees at checkout)
``Price.interval`` + count  ``auto_recurring.frequency`` + ``frequency_type``:
                            day → days, week → 7 × days, month → months,
                            year → 12 × months (MercadoPago knows only days and
                            months)
``Price.unit_amount``       ``auto_recurring.transaction_amount``, a decimal in
                            major units by the currency's ISO 4217 exponent
                            (1999 BRL → 19.99, 1999 CLP → 1999)
``Price.currency``          ``auto_recurring.currency_id``
``Price.trial_days``        ``auto_recurring.free_trial`` = {frequency: days,
                            frequency_type: "days"}
``Price.active``            ``status``: ``active`` / ``cancelled``
``Price.id``                ``external_reference`` (set at creation, never changed;
                            what find and reconcile match)
provider option             ``back_url`` (``MercadoPagoProvider(back_url=...)``)
==========================  =====================================================

Kept in qzpay only: a price's lookup key and metadata, and everything of a plan but its name.

Free prices have no MercadoPago object: MercadoPago documents ``transaction_amount`` as "a
positive number" (see :func:`holds`). Currencies: the subscription API documents ARS, BRL,
CLP, MXN, COP, PEN and UYU, and an account charges only its site's one; any other currency is
refused before sending and the site's refusal is recognised (both
:class:`~qzpay.providers.base.ProviderCurrencyUnsupported`).

The amount travels as a JSON number (the SDK encodes the body with ``json``, which cannot
hold a ``Decimal``): as an integer for a currency without decimals, else as the float whose
shortest representation is exactly the decimal — exact for every amount qzpay allows (at most
8 significant digits; a float keeps 15).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from qzpay.catalog.currencies import exponent, to_major_units
from qzpay.catalog.models import Interval, Plan, Price
from qzpay.providers.base import QZPAY_PRICE_ID_KEY, ProviderPrice, billing_period
from qzpay.providers.mercadopago.mapping import text

SUBSCRIPTION_CURRENCIES: Final = frozenset({"ARS", "BRL", "CLP", "COP", "MXN", "PEN", "UYU"})
"""The ``currency_id`` values MercadoPago's subscription plans document."""

ACTIVE: Final = "active"
CANCELLED: Final = "cancelled"

_FREQUENCY_TYPES: Final[dict[str, str]] = {"day": "days", "month": "months"}
_INTERVALS: Final[dict[str, Interval]] = {"days": "day", "months": "month"}


def holds(price: Price) -> bool:
    """MercadoPago keeps an object only for a price with a positive amount."""
    return price.unit_amount > 0


def frequency(interval: Interval, interval_count: int) -> tuple[int, str]:
    """``(frequency, frequency_type)``: ``("week", 2)`` → ``(14, "days")``,
    ``("year", 1)`` → ``(12, "months")``."""
    unit, count = billing_period(interval, interval_count)
    return count, _FREQUENCY_TYPES[unit]


def transaction_amount(price: Price) -> int | float:
    """``unit_amount`` in major units as a JSON number (see the module docstring)."""
    amount = to_major_units(price.unit_amount, price.currency)
    if exponent(price.currency) == 0:
        return int(amount)
    number = float(amount)
    if Decimal(repr(number)) != amount:  # pragma: no cover - needs > 15 significant digits
        raise ValueError(f"{amount} cannot be sent exactly as a JSON number")
    return number


def create_body(price: Price, plan: Plan, back_url: str) -> dict[str, Any]:
    count, kind = frequency(price.interval, price.interval_count)
    recurring: dict[str, Any] = {
        "frequency": count,
        "frequency_type": kind,
        "transaction_amount": transaction_amount(price),
        "currency_id": price.currency,
    }
    if price.trial_days is not None:
        recurring["free_trial"] = {"frequency": price.trial_days, "frequency_type": "days"}
    return {
        "reason": plan.name,
        "auto_recurring": recurring,
        "back_url": back_url,
        "external_reference": price.id,
    }


def status(active: bool) -> str:
    return ACTIVE if active else CANCELLED


def provider_price(data: Mapping[str, Any]) -> ProviderPrice:
    """A ``preapproval_plan`` as the provider-neutral ProviderPrice (amount in minor units)."""
    recurring = data.get("auto_recurring")
    recurring = recurring if isinstance(recurring, Mapping) else {}
    currency = str(recurring.get("currency_id") or "").upper()
    reference = text(data.get("external_reference"))
    count = recurring.get("frequency")
    trial = recurring.get("free_trial")
    trial_days = None
    if isinstance(trial, Mapping) and trial.get("frequency_type") == "days":
        days = trial.get("frequency")
        trial_days = days if isinstance(days, int) and days > 0 else None
    return ProviderPrice(
        id=str(data["id"]),
        provider_plan_id=None,
        currency=currency,
        unit_amount=_minor_units(recurring.get("transaction_amount"), currency),
        interval=_INTERVALS.get(str(recurring.get("frequency_type"))),
        interval_count=count if isinstance(count, int) and count > 0 else 1,
        trial_days=trial_days,
        lookup_key=None,
        active=data.get("status") == ACTIVE,
        metadata={QZPAY_PRICE_ID_KEY: reference} if reference is not None else {},
        qzpay_price_id=reference,
        name=text(data.get("reason")),
    )


def merge_remote(local: Price, remote: ProviderPrice) -> Price:
    """Of what qzpay's price has, MercadoPago can change only the active flag (a plan
    cancelled there is archived here); the lookup key and metadata live only in qzpay."""
    return local.model_copy(update={"active": remote.active})


def _minor_units(amount: object, currency: str) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return 0
    try:
        places = exponent(currency)
    except ValueError:
        places = 2
    return int((Decimal(repr(amount)).scaleb(places)).to_integral_value())
