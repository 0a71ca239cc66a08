"""What only MercadoPago does in the catalog: a price is a ``preapproval_plan`` (frequency in
days or months, decimal amounts by the currency's exponent, free trial, back_url), a free price
has no object there, a currency it cannot charge is a clear error, and qzpay plans have no
MercadoPago object. Plus what the fake's plans are pinned to do
(``tests/support/fake_mercadopago_plans.py``)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from qzpay.catalog.models import Interval
from qzpay.errors import ConflictError, ProviderSyncError
from qzpay.providers.base import (
    PriceUpdate,
    ProviderCurrencyUnsupported,
    plans_of,
    prices_of,
    same_terms,
)
from qzpay.providers.mercadopago import MercadoPagoProvider
from qzpay.providers.mercadopago import idempotency_key as sent_key
from qzpay.providers.mercadopago.catalog_mapping import frequency, transaction_amount
from tests.factories import idempotency_key as key
from tests.providers.catalog_factories import changed, stored_plan, stored_price
from tests.support.fake_mercadopago import FakeMercadoPago
from tests.support.mercadopago_fixtures import MercadoPagoFactory

BACK_URL = "https://example.com/subscribed"


@pytest.fixture
def provider(make_mercadopago_provider: MercadoPagoFactory) -> MercadoPagoProvider:
    return make_mercadopago_provider(back_url=BACK_URL)


@pytest.mark.parametrize(
    ("interval", "count", "expected"),
    [
        ("day", 1, (1, "days")),
        ("day", 45, (45, "days")),
        ("week", 1, (7, "days")),
        ("week", 156, (1092, "days")),
        ("month", 3, (3, "months")),
        ("year", 1, (12, "months")),
        ("year", 3, (36, "months")),
    ],
)
def test_frequency_is_in_days_or_months(
    interval: Interval, count: int, expected: tuple[int, str]
) -> None:
    assert frequency(interval, count) == expected


@pytest.mark.parametrize(
    ("currency", "amount", "expected"),
    [
        ("JPY", 1999, 1999),
        ("CLP", 990, 990),
        ("USD", 1999, 19.99),
        ("BRL", 1990, 19.9),
        ("USD", 99_999_999, 999_999.99),
        ("BHD", 1999, 1.999),
        ("BHD", 5, 0.005),
    ],
)
def test_the_amount_is_a_decimal_by_the_currency_exponent(
    currency: str, amount: int, expected: float
) -> None:
    sent = transaction_amount(stored_price(stored_plan(), currency=currency, unit_amount=amount))
    assert type(sent) is type(expected)
    assert sent == expected
    # Exact on the wire: the JSON text is the decimal itself.
    assert Decimal(json.dumps(sent)) == Decimal(amount).scaleb(
        -{"JPY": 0, "CLP": 0}.get(currency, 3 if currency == "BHD" else 2)
    )


def test_only_prices_are_held(provider: MercadoPagoProvider) -> None:
    assert plans_of(provider) is None
    assert prices_of(provider) is provider.prices


async def test_a_price_is_a_preapproval_plan(
    provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
) -> None:
    plan = stored_plan(name="Pro Anual")
    price = stored_price(plan, currency="BRL", unit_amount=19990, interval="year", trial_days=30)

    created = await provider.prices.create(price, plan=plan, idempotency_key="caller-key")

    assert created is not None
    [stored] = fake_mercadopago.preapproval_plans(external_reference=price.id)
    assert stored["id"] == created.id
    assert (stored["reason"], stored["back_url"], stored["status"]) == (
        "Pro Anual",
        BACK_URL,
        "active",
    )
    assert stored["auto_recurring"] == {
        "frequency": 12,
        "frequency_type": "months",
        "transaction_amount": 199.9,
        "currency_id": "BRL",
        "free_trial": {"frequency": 30, "frequency_type": "days"},
    }
    [request] = [
        r
        for r in fake_mercadopago.matching("POST", "/preapproval_plan")
        if (r.json() or {}).get("external_reference") == price.id
    ]
    assert request.headers["x-idempotency-key"] == sent_key("create", price.id, "caller-key")
    assert (created.interval, created.interval_count, created.unit_amount) == ("month", 12, 19990)
    assert (created.trial_days, created.name, created.lookup_key) == (30, "Pro Anual", None)
    assert same_terms(price, created)
    assert provider.prices.merge_remote(price, created) == price


async def test_a_weekly_price_reads_back_as_days(provider: MercadoPagoProvider) -> None:
    plan = stored_plan()
    price = stored_price(plan, currency="BRL", interval="week", interval_count=2)

    created = await provider.prices.create(price, plan=plan, idempotency_key=key())

    assert created is not None
    assert (created.interval, created.interval_count) == ("day", 14)
    assert same_terms(price, created)


async def test_a_free_price_has_no_mercadopago_object(
    provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
) -> None:
    plan = stored_plan()
    free = stored_price(plan, currency="BRL", unit_amount=0)
    sent_before = len(fake_mercadopago.requests)

    assert provider.prices.holds(free) is False
    assert await provider.prices.create(free, plan=plan, idempotency_key=key()) is None
    assert await provider.prices.find(free, plan=plan) is None
    assert len(fake_mercadopago.requests) == sent_before


@pytest.mark.parametrize("currency", ["USD", "JPY", "BHD", "EUR"])
async def test_a_currency_mercadopago_never_charges_is_refused_before_sending(
    provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago, currency: str
) -> None:
    plan = stored_plan()
    sent_before = len(fake_mercadopago.requests)

    with pytest.raises(ProviderCurrencyUnsupported) as caught:
        await provider.prices.create(
            stored_price(plan, currency=currency), plan=plan, idempotency_key=key()
        )

    error = caught.value
    assert isinstance(error, ConflictError)
    assert isinstance(error, ProviderSyncError)
    assert (error.code, error.currency, error.ambiguous) == (
        "provider_currency_unsupported",
        currency,
        False,
    )
    assert len(fake_mercadopago.requests) == sent_before


async def test_a_currency_of_another_site_is_refused_by_mercadopago(
    provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
) -> None:
    plan = stored_plan()
    price = stored_price(plan, currency="ARS")  # the fake account's site charges BRL

    with pytest.raises(ProviderCurrencyUnsupported) as caught:
        await provider.prices.create(price, plan=plan, idempotency_key=key())

    assert (caught.value.code, caught.value.operation) == (
        "provider_currency_unsupported",
        "create_price",
    )
    assert fake_mercadopago.preapproval_plans(external_reference=price.id) == []


async def test_prices_need_a_back_url(
    make_mercadopago_provider: MercadoPagoFactory, fake_mercadopago: FakeMercadoPago
) -> None:
    provider = make_mercadopago_provider()
    plan = stored_plan()

    with pytest.raises(ProviderSyncError) as caught:
        await provider.prices.create(
            stored_price(plan, currency="BRL"), plan=plan, idempotency_key=key()
        )

    assert caught.value.ambiguous is False
    assert "back_url" in caught.value.message
    with pytest.raises(ValueError, match="back_url"):
        make_mercadopago_provider(back_url="example.com/ok")


async def test_a_renamed_plan_renames_its_prices_reason(
    provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
) -> None:
    plan = stored_plan(name="Pro")
    price = stored_price(plan, currency="BRL", metadata={"a": "1"})
    created = await provider.prices.create(price, plan=plan, idempotency_key=key())
    assert created is not None

    metadata_only = await provider.prices.update(
        created.id, PriceUpdate(price, changed(price, metadata={}), plan), idempotency_key=key()
    )
    assert metadata_only == created  # not held: nothing sent
    renamed = await provider.prices.update(
        created.id, PriceUpdate(price, price, changed(plan, name="Pro+")), idempotency_key=key()
    )

    assert renamed.name == "Pro+"
    puts = fake_mercadopago.matching("PUT", f"/preapproval_plan/{created.id}")
    assert [r.json() for r in puts] == [{"reason": "Pro+"}]


async def test_a_plan_cancelled_at_mercadopago_is_archived_here(
    provider: MercadoPagoProvider, fake_mercadopago: FakeMercadoPago
) -> None:
    plan = stored_plan()
    price = stored_price(plan, currency="BRL")
    created = await provider.prices.create(price, plan=plan, idempotency_key=key())
    assert created is not None
    with fake_mercadopago._lock:  # as the dashboard would
        fake_mercadopago.plans.route(
            "PUT", f"/preapproval_plan/{created.id}", {}, {"status": "cancelled"}
        )

    remote = await provider.prices.retrieve(created.id)

    assert remote is not None
    assert provider.prices.merge_remote(price, remote).active is False


async def test_a_replayed_create_makes_one_plan_and_never_reuses_a_key(
    isolated_mercadopago: FakeMercadoPago, make_mercadopago_provider: MercadoPagoFactory
) -> None:
    isolated_mercadopago.honour_idempotency = True
    provider = make_mercadopago_provider(api_base=isolated_mercadopago.url, back_url=BACK_URL)
    plan = stored_plan()
    price = stored_price(plan, currency="BRL")

    first = await provider.prices.create(price, plan=plan, idempotency_key="same")
    again = await provider.prices.create(price, plan=plan, idempotency_key="same")
    await provider.prices.archive(first.id if first else "", idempotency_key=key())

    assert first == again
    assert len(isolated_mercadopago.preapproval_plans()) == 1
    assert isolated_mercadopago.key_reuses() == {}


# -- the fake, pinned -----------------------------------------------------------------------


def _create(fake: FakeMercadoPago, **overrides: Any) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {
        "reason": "Yoga classes",
        "back_url": BACK_URL,
        "auto_recurring": {
            "frequency": 1,
            "frequency_type": "months",
            "transaction_amount": 10,
            "currency_id": "BRL",
        },
    }
    body.update(overrides)
    with fake._lock:
        try:
            return fake.plans.route("POST", "/preapproval_plan", {}, body)
        except Exception as refusal:  # PlanRefusal
            return getattr(refusal, "status", 0), getattr(refusal, "body", {})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"reason": ""}, "Parameter reason is required"),
        ({"back_url": "nope"}, "Invalid value for back_url. Must be a valid URL"),
        ({"external_reference": "a b"}, "Parameter external_reference has unsupported characters"),
        ({"color": "red"}, "Check the parameters of the body"),
        (
            {"auto_recurring": {"frequency": 1, "frequency_type": "weeks", "currency_id": "BRL"}},
            "Invalid value for frequency_type, valid ones are days or months",
        ),
        (
            {
                "auto_recurring": {
                    "frequency": 1,
                    "frequency_type": "months",
                    "currency_id": "BRL",
                    "transaction_amount": 1.999,
                }
            },
            "Invalid value for transaction_amount, only two decimals are allowed",
        ),
        (
            {"auto_recurring": {"frequency": 1, "frequency_type": "months", "currency_id": "USD"}},
            "Invalid value for currency_id",
        ),
    ],
)
def test_the_fake_refuses_what_the_reference_refuses(
    fake_mercadopago: FakeMercadoPago, overrides: dict[str, Any], message: str
) -> None:
    status, body = _create(fake_mercadopago, **overrides)
    assert (status, body["message"]) == (400, message)


def test_the_fake_searches_by_status_and_pages(isolated_mercadopago: FakeMercadoPago) -> None:
    fake = isolated_mercadopago
    ids = [_create(fake, external_reference=f"ref-{i}")[1]["id"] for i in range(3)]
    with fake._lock:
        fake.plans.route("PUT", f"/preapproval_plan/{ids[0]}", {}, {"status": "cancelled"})
        active = fake.plans.route("GET", "/preapproval_plan/search", {"status": "active"}, None)
        page = fake.plans.route(
            "GET", "/preapproval_plan/search", {"limit": "1", "offset": "1"}, None
        )
    assert [p["id"] for p in active[1]["results"]] == ids[1:]
    assert page[1]["paging"] == {"offset": 1, "limit": 1, "total": 3}
    assert [p["id"] for p in page[1]["results"]] == [ids[1]]
