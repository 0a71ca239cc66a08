"""ISO 4217 codes and minor units, and the exact conversion to major units."""

from __future__ import annotations

from decimal import Decimal

import pytest

from qzpay.catalog.currencies import (
    EXPONENTS,
    UnknownCurrencyError,
    exponent,
    normalize,
    to_major_units,
)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("USD", 2),
        ("JPY", 0),
        ("BHD", 3),
        ("CLF", 4),
        ("EUR", 2),
        ("BRL", 2),
        ("ARS", 2),
        ("CLP", 0),
        ("KRW", 0),
        ("KWD", 3),
        ("UYW", 4),
        ("XOF", 0),
    ],
)
def test_exponents(code: str, expected: int) -> None:
    assert exponent(code) == expected


@pytest.mark.parametrize("given", ["usd", "Usd", "uSD", "USD"])
def test_any_case(given: str) -> None:
    assert normalize(given) == "USD"
    assert exponent(given) == 2


@pytest.mark.parametrize(
    "given",
    ["", "US", "USDD", "XXX", "XAU", "XTS", "ABC", " usd", "usd ", "HRK", "uſd", "ＵＳＤ"],
)
def test_unknown(given: str) -> None:
    """Unknown, withdrawn, metals/testing codes (no minor unit), and Unicode look-alikes."""
    assert normalize(given) is None
    with pytest.raises(UnknownCurrencyError):
        exponent(given)


def test_the_table_is_iso_shaped() -> None:
    assert all(len(code) == 3 and code.isascii() and code.isupper() for code in EXPONENTS)
    assert set(EXPONENTS.values()) == {0, 2, 3, 4}
    assert len(EXPONENTS) > 150


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (1999, "USD", Decimal("19.99")),
        (1999, "jpy", Decimal("1999")),
        (1999, "BHD", Decimal("1.999")),
        (12345, "CLF", Decimal("1.2345")),
        (0, "USD", Decimal("0")),
        (5, "USD", Decimal("0.05")),
        (99_999_999, "USD", Decimal("999999.99")),
    ],
)
def test_to_major_units(amount: int, currency: str, expected: Decimal) -> None:
    converted = to_major_units(amount, currency)
    assert converted == expected
    assert isinstance(converted, Decimal)


def test_to_major_units_keeps_the_exponent() -> None:
    """Exact decimals with the currency's places: what MercadoPago's transaction_amount gets."""
    assert str(to_major_units(1900, "USD")) == "19.00"
    assert str(to_major_units(1900, "JPY")) == "1900"
    assert str(to_major_units(1000, "BHD")) == "1.000"


@pytest.mark.parametrize("amount", [19.99, "1999", True, None, Decimal("1999")])
def test_to_major_units_takes_integers_only(amount: object) -> None:
    with pytest.raises(TypeError):
        to_major_units(amount, "USD")  # type: ignore[arg-type]


def test_to_major_units_unknown_currency() -> None:
    with pytest.raises(UnknownCurrencyError):
        to_major_units(100, "ZZZ")
