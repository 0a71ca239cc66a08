"""ISO 4217 currencies and their minor units.

Written from ISO 4217's list one (current currencies and funds, as maintained by SIX for ISO,
amendments up to 2025: XCG replaces ANG, ZWG replaces ZWL, SLE replaces SLL). A price's
``unit_amount`` counts the currency's minor unit: cents for USD (exponent 2), yen for JPY
(exponent 0), fils for BHD (exponent 3). Codes without a minor unit (precious metals, SDR, the
testing and "no currency" codes) are not currencies a price can be in, so they are left out.
"""

from __future__ import annotations

from decimal import Decimal

# Grouped by exponent, each group in alphabetical order.
_BY_EXPONENT: dict[int, str] = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    2: (
        "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN "
        "BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN "
        "ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD "
        "KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR "
        "MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON "
        "RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT "
        "TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
    ),
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}

EXPONENTS: dict[str, int] = {
    code: exponent for exponent, codes in _BY_EXPONENT.items() for code in codes.split()
}
"""ISO 4217 alphabetic code (upper case) -> the exponent of its minor unit."""


class UnknownCurrencyError(ValueError):
    """Not an ISO 4217 currency with a minor unit."""


def normalize(code: str) -> str | None:
    """The ISO 4217 code for ``code`` in any case (``"usd"`` -> ``"USD"``), or None."""
    upper = code.upper() if code.isascii() else code
    return upper if upper in EXPONENTS else None


def exponent(currency: str) -> int:
    """The exponent of ``currency``'s minor unit: 2 for USD, 0 for JPY, 3 for BHD."""
    code = normalize(currency)
    if code is None:
        raise UnknownCurrencyError(f"{currency!r} is not an ISO 4217 currency code")
    return EXPONENTS[code]


def to_major_units(amount: int, currency: str) -> Decimal:
    """``amount`` minor units as an exact decimal of major units: ``1999`` USD -> ``19.99``,
    ``1999`` JPY -> ``1999``, ``1999`` BHD -> ``1.999``. No rounding, no float."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be an integer of minor units, not {type(amount).__name__}")
    return Decimal(amount).scaleb(-exponent(currency))
