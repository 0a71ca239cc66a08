"""MercadoPago subscriptions: a qzpay subscription is a ``preapproval`` without a plan, created
pending (the payer authorises it at ``init_point``), driven through the adapter against the fake
(``tests/support/fake_mercadopago_preapproval.py``); plus what the fake is pinned to do."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qzpay.catalog.models import Interval, Plan, Price
from qzpay.customers.models import Customer
from qzpay.errors import ConflictError, ProviderSyncError
from qzpay.providers.base import ProviderCurrencyUnsupported
from qzpay.providers.mercadopago import MercadoPagoProvider
from qzpay.providers.mercadopago import idempotency_key as sent_key
from qzpay.providers.mercadopago.subscription_mapping import provider_subscription
from qzpay.providers.mercadopago.subscriptions import preapproval_id_of_notification
from qzpay.providers.subscriptions import (
    PriceChange,
    ProviderSubscription,
    SubscriptionAdapter,
    SubscriptionChangeUnsupported,
    SubscriptionTerms,
    subscriptions_of,
)
from qzpay.subscriptions.models import Subscription, subscription_ids
from tests.factories import idempotency_key as key
from tests.factories import stored_customer
from tests.providers.catalog_factories import stored_plan, stored_price
from tests.support.fake_mercadopago import ACCESS_TOKEN, FakeMercadoPago, NotificationReceiver
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.mercadopago_fixtures import MercadoPagoFactory

BACK_URL = "https://example.com/subscribed"


@pytest.fixture
def provider(make_mercadopago_provider: MercadoPagoFactory) -> MercadoPagoProvider:
    return make_mercadopago_provider(back_url=BACK_URL)


@pytest.fixture
def adapter(provider: MercadoPagoProvider) -> SubscriptionAdapter:
    found = subscriptions_of(provider)
    checked: SubscriptionAdapter = provider.subscriptions  # mypy: it is the protocol
    assert found is checked
    return checked


def terms(
    *,
    quantity: int = 1,
    trial_days: int | None = None,
    customer: Customer | None = None,
    **price_fields: Any,
) -> SubscriptionTerms:
    plan = stored_plan(name="Pro")
    price_fields.setdefault("currency", "BRL")
    price = stored_price(plan, **price_fields)
    customer = customer or stored_customer()
    now = datetime.now(UTC)
    subscription = Subscription(
        id=subscription_ids.new(),
        customer_id=customer.id,
        price_id=price.id,
        plan_id=plan.id,
        quantity=quantity,
        status="incomplete",
        current_period_start=now,
        current_period_end=now + timedelta(days=30),
        provider="mercadopago",
        metadata={},
        created_at=now,
        updated_at=now,
    )
    return SubscriptionTerms(subscription, customer, price, plan, trial_days)


def other_price(
    currency: str = "BRL", interval: Interval = "month", **fields: Any
) -> tuple[Price, Plan]:
    plan = stored_plan(name="Business")
    return stored_price(plan, currency=currency, interval=interval, **fields), plan


def http(
    fake: FakeMercadoPago, method: str, path: str, body: object = None, *, auth: bool = True
) -> tuple[int, dict[str, Any]]:
    """One request to the fake over HTTP (routing and authorization included)."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {ACCESS_TOKEN}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(fake.url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


async def created(adapter: SubscriptionAdapter, **options: Any) -> ProviderSubscription:
    return await adapter.create(terms(**options), idempotency_key=key())


async def authorized(
    adapter: SubscriptionAdapter, fake: FakeMercadoPago, **options: Any
) -> ProviderSubscription:
    sub = await created(adapter, **options)
    assert http(fake, "POST", f"/_test/preapproval/{sub.id}/authorize", auth=False)[0] == 200
    found = await adapter.retrieve(sub.id)
    assert found is not None
    return found


# -- create and read back ---------------------------------------------------------------------


async def test_a_subscription_is_a_pending_preapproval_paid_at_its_init_point(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    wanted = terms(unit_amount=1999)

    sub = await adapter.create(wanted, idempotency_key="caller-key")

    stored = fake_mercadopago.preapproval(sub.id)
    assert stored is not None
    assert (sub.status, sub.qzpay_subscription_id, sub.payment_url) == (
        "incomplete",
        wanted.subscription.id,
        stored["init_point"],
    )
    assert (stored["status"], stored["external_reference"], stored["payer_email"]) == (
        "pending",
        wanted.subscription.id,
        wanted.customer.email,
    )
    assert (stored["reason"], stored["back_url"], stored["preapproval_plan_id"]) == (
        "Pro",
        BACK_URL,
        None,
    )
    assert {k: v for k, v in stored["auto_recurring"].items() if k != "start_date"} == {
        "frequency": 1,
        "frequency_type": "months",
        "transaction_amount": 19.99,
        "currency_id": "BRL",
    }
    assert (sub.unit_amount, sub.currency, sub.quantity, sub.provider_price_id) == (
        1999,
        "BRL",
        1,
        None,
    )
    assert sub.current_period_end - sub.current_period_start >= timedelta(days=28)
    [request] = [
        r
        for r in fake_mercadopago.matching("POST", "/preapproval")
        if (r.json() or {}).get("external_reference") == wanted.subscription.id
    ]
    assert request.headers["x-idempotency-key"] == sent_key(
        "create", wanted.subscription.id, "caller-key"
    )
    assert sub.payment_url is not None
    assert sub.payment_url.startswith(fake_mercadopago.url)
    path = sub.payment_url.removeprefix(fake_mercadopago.url)
    assert http(fake_mercadopago, "GET", path, auth=False)[1]["id"] == sub.id  # a payer's page


async def test_quantity_multiplies_the_amount_and_weeks_are_days(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    sub = await created(adapter, quantity=3, unit_amount=1000, interval="week", interval_count=2)

    stored = fake_mercadopago.preapproval(sub.id) or {}
    recurring = stored["auto_recurring"]
    assert (recurring["transaction_amount"], recurring["frequency"]) == (30, 14)
    assert recurring["frequency_type"] == "days"
    assert (sub.quantity, sub.unit_amount) == (1, 3000)


async def test_once_authorised_it_is_active_until_the_next_payment(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    sub = await authorized(adapter, fake_mercadopago)

    stored = fake_mercadopago.preapproval(sub.id) or {}
    assert (sub.status, sub.payment_url, stored["summarized"]["charged_quantity"]) == (
        "active",
        None,
        1,
    )
    assert sub.current_period_end == datetime.fromisoformat(stored["next_payment_date"])
    assert 28 <= (sub.current_period_end - sub.current_period_start).days <= 31
    assert sub.current_period_start <= datetime.now(UTC) < sub.current_period_end


async def test_a_renewal_starts_the_next_period(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    sub = await authorized(adapter, fake_mercadopago, interval="week")  # whole days: exact

    renewed = fake_mercadopago.charge_preapproval(sub.id)
    again = await adapter.retrieve(sub.id)

    assert again is not None
    assert (again.current_period_start, again.status) == (sub.current_period_end, "active")
    assert again.current_period_end == datetime.fromisoformat(renewed["next_payment_date"])
    assert again.current_period_end - again.current_period_start == timedelta(days=7)
    assert renewed["summarized"]["charged_quantity"] == 2


async def test_a_trial_is_trialing_and_then_active(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    pending = await created(adapter, trial_days=14)
    assert pending.status == "incomplete"
    sub = await authorized(adapter, fake_mercadopago, trial_days=14)

    stored = fake_mercadopago.preapproval(sub.id) or {}
    assert stored["auto_recurring"]["free_trial"] == {"frequency": 14, "frequency_type": "days"}
    assert stored["summarized"]["charged_quantity"] == 0  # nothing charged during the trial
    assert sub.status == "trialing"
    assert sub.trial_end is not None
    assert sub.trial_start is not None
    assert sub.trial_end - sub.trial_start == timedelta(days=14)
    assert (sub.current_period_start, sub.current_period_end) == (sub.trial_start, sub.trial_end)
    assert sub.trial_end == datetime.fromisoformat(stored["next_payment_date"])

    later = provider_subscription(stored, now=sub.trial_end + timedelta(seconds=1))
    assert (later.status, later.trial_end) == ("active", sub.trial_end)


async def test_retrieve_answers_none_for_what_does_not_exist(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    sent = len(fake_mercadopago.requests)
    assert await adapter.retrieve("not-a-preapproval!") is None
    assert len(fake_mercadopago.requests) == sent  # not an id MercadoPago issues: not sent
    assert await adapter.retrieve("0" * 32) is None


# -- refusals before sending --------------------------------------------------------------------


async def test_a_free_price_is_refused_and_nothing_is_sent(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    wanted = terms(unit_amount=0)

    with pytest.raises(SubscriptionChangeUnsupported) as refused:
        await adapter.create(wanted, idempotency_key=key())

    assert isinstance(refused.value, ConflictError)
    assert not refused.value.ambiguous
    assert fake_mercadopago.preapprovals(wanted.subscription.id) == []


async def test_currencies_mercadopago_cannot_charge(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    never = terms(currency="USD")
    with pytest.raises(ProviderCurrencyUnsupported):
        await adapter.create(never, idempotency_key=key())
    assert not [
        r
        for r in fake_mercadopago.matching("POST", "/preapproval")
        if (r.json() or {}).get("external_reference") == never.subscription.id
    ]

    other_site = terms(currency="ARS")  # the fake's account charges BRL
    with pytest.raises(ProviderCurrencyUnsupported) as refused:
        await adapter.create(other_site, idempotency_key=key())
    assert (refused.value.currency, refused.value.ambiguous) == ("ARS", False)


async def test_subscriptions_need_a_back_url(
    make_mercadopago_provider: MercadoPagoFactory,
) -> None:
    provider = make_mercadopago_provider()
    with pytest.raises(ProviderSyncError, match="back_url") as refused:
        await provider.subscriptions.create(terms(), idempotency_key=key())
    assert not refused.value.ambiguous


# -- changes ----------------------------------------------------------------------------------


async def test_cancel_now_is_final(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    sub = await authorized(adapter, fake_mercadopago)

    canceled = await adapter.cancel(sub.id, at_period_end=False, idempotency_key=key())
    again = await adapter.cancel(sub.id, at_period_end=False, idempotency_key=key())

    assert (canceled.status, canceled.cancel_at_period_end) == ("canceled", False)
    assert canceled.canceled_at is not None
    assert canceled.ended_at == canceled.canceled_at
    assert again.status == "canceled"
    assert (fake_mercadopago.preapproval(sub.id) or {})["status"] == "cancelled"
    with pytest.raises(SubscriptionChangeUnsupported):
        await adapter.uncancel(sub.id, idempotency_key=key())
    with pytest.raises(SubscriptionChangeUnsupported):
        await adapter.resume(sub.id, idempotency_key=key())


async def test_cancel_at_period_end_sets_end_date_and_uncancel_clears_it(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    sub = await authorized(adapter, fake_mercadopago)

    ending = await adapter.cancel(sub.id, at_period_end=True, idempotency_key=key())

    stored = fake_mercadopago.preapproval(sub.id) or {}
    end_date = datetime.fromisoformat(stored["auto_recurring"]["end_date"])
    assert end_date == sub.current_period_end - timedelta(seconds=1)
    assert (ending.status, ending.cancel_at_period_end, ending.canceled_at) == (
        "active",
        True,
        None,
    )
    assert ending.current_period_end == sub.current_period_end

    kept = await adapter.uncancel(sub.id, idempotency_key=key())

    assert (kept.status, kept.cancel_at_period_end) == ("active", False)
    assert "end_date" not in (fake_mercadopago.preapproval(sub.id) or {})["auto_recurring"]

    await adapter.cancel(sub.id, at_period_end=True, idempotency_key=key())
    fake_mercadopago.charge_preapproval(sub.id)  # the period ends: no charge, it ends
    ended = await adapter.retrieve(sub.id)
    assert ended is not None
    assert ended.status == "canceled"
    assert (fake_mercadopago.preapproval(sub.id) or {})["summarized"]["charged_quantity"] == 1


async def test_change_the_amount(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    sub = await authorized(adapter, fake_mercadopago, unit_amount=1999)
    price, plan = other_price(unit_amount=2990)

    changed = await adapter.change_price(
        sub.id, PriceChange(price, plan, quantity=2, proration="none"), idempotency_key=key()
    )

    stored = fake_mercadopago.preapproval(sub.id) or {}
    assert (stored["auto_recurring"]["transaction_amount"], stored["reason"]) == (59.8, "Business")
    assert (changed.unit_amount, changed.quantity, changed.status) == (5980, 1, "active")
    assert changed.current_period_end == sub.current_period_end  # from the next charge on


@pytest.mark.parametrize(
    ("currency", "interval"), [("ARS", "month"), ("BRL", "year"), ("BRL", "week")]
)
async def test_another_currency_or_period_is_refused_and_nothing_is_sent(
    adapter: SubscriptionAdapter,
    fake_mercadopago: FakeMercadoPago,
    currency: str,
    interval: Interval,
) -> None:
    sub = await authorized(adapter, fake_mercadopago)
    price, plan = other_price(currency, interval)

    with pytest.raises(SubscriptionChangeUnsupported) as refused:
        await adapter.change_price(
            sub.id, PriceChange(price, plan, quantity=1, proration="none"), idempotency_key=key()
        )

    assert not refused.value.ambiguous
    assert fake_mercadopago.matching("PUT", f"/preapproval/{sub.id}") == []


async def test_a_free_price_cannot_replace_a_paid_one(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    sub = await authorized(adapter, fake_mercadopago)
    price, plan = other_price(unit_amount=0)
    with pytest.raises(SubscriptionChangeUnsupported):
        await adapter.change_price(
            sub.id, PriceChange(price, plan, quantity=1, proration="none"), idempotency_key=key()
        )
    assert fake_mercadopago.matching("PUT", f"/preapproval/{sub.id}") == []


async def test_pause_and_resume(
    adapter: SubscriptionAdapter, fake_mercadopago: FakeMercadoPago
) -> None:
    sub = await authorized(adapter, fake_mercadopago)

    paused = await adapter.pause(sub.id, idempotency_key=key())
    assert (fake_mercadopago.preapproval(sub.id) or {})["status"] == "paused"
    with pytest.raises(SubscriptionChangeUnsupported, match="paused"):  # MercadoPago's rule
        await adapter.cancel(sub.id, at_period_end=True, idempotency_key=key())
    resumed = await adapter.resume(sub.id, idempotency_key=key())

    assert (paused.status, resumed.status) == ("paused", "active")
    assert (fake_mercadopago.preapproval(sub.id) or {})["status"] == "authorized"


async def test_a_pending_subscription_cannot_be_paused(adapter: SubscriptionAdapter) -> None:
    sub = await created(adapter)
    with pytest.raises(SubscriptionChangeUnsupported, match="Invalid transition"):
        await adapter.pause(sub.id, idempotency_key=key())


async def test_changes_to_what_does_not_exist_fail_clearly(adapter: SubscriptionAdapter) -> None:
    for missing in ("0" * 32, "not an id"):
        with pytest.raises(ProviderSyncError, match="does not exist") as failed:
            await adapter.pause(missing, idempotency_key=key())
        assert not failed.value.ambiguous


# -- find, list, ambiguity, notifications -------------------------------------------------------


async def test_find_by_qzpay_id_is_the_oldest_and_none_for_unknown(
    adapter: SubscriptionAdapter,
) -> None:
    wanted = terms()
    first = await adapter.create(wanted, idempotency_key=key())
    await adapter.create(wanted, idempotency_key=key())  # a duplicate, as after a lost answer

    found = await adapter.find(wanted)

    assert found is not None
    assert (found.id, found.qzpay_subscription_id) == (first.id, wanted.subscription.id)
    assert await adapter.find(terms()) is None


async def test_find_matches_exactly_when_the_search_ignores_the_reference(
    isolated_mercadopago: FakeMercadoPago, make_mercadopago_provider: MercadoPagoFactory
) -> None:
    isolated_mercadopago.subscriptions.filter_by_reference = False
    provider = make_mercadopago_provider(
        api_base=isolated_mercadopago.url, back_url=BACK_URL, page_size=2
    )
    wanted = terms()
    for _ in range(3):
        await created(provider.subscriptions)
    made = await provider.subscriptions.create(wanted, idempotency_key=key())

    found = await provider.subscriptions.find(wanted)

    assert found is not None
    assert found.id == made.id
    assert len(isolated_mercadopago.matching("GET", "/preapproval/search")) == 2


async def test_list_pages_through_every_preapproval_oldest_first(
    isolated_mercadopago: FakeMercadoPago, make_mercadopago_provider: MercadoPagoFactory
) -> None:
    provider = make_mercadopago_provider(
        api_base=isolated_mercadopago.url, back_url=BACK_URL, page_size=2
    )
    made = [await created(provider.subscriptions) for _ in range(3)]
    await provider.subscriptions.cancel(made[0].id, at_period_end=False, idempotency_key=key())

    listed = [sub async for sub in provider.subscriptions.list()]

    assert [sub.id for sub in listed] == [sub.id for sub in made]
    assert [sub.status for sub in listed] == ["canceled", "incomplete", "incomplete"]
    assert len(isolated_mercadopago.matching("GET", "/preapproval/search")) == 2


async def test_a_lost_create_answer_is_found_not_created_twice(
    make_mercadopago_provider: MercadoPagoFactory,
    mercadopago_proxy: FaultProxy,
    fake_mercadopago: FakeMercadoPago,
) -> None:
    provider = make_mercadopago_provider(api_base=mercadopago_proxy.url, back_url=BACK_URL)
    wanted = terms()
    mercadopago_proxy.inject(Fault.drop(), method="POST", path="/preapproval")

    with pytest.raises(ProviderSyncError) as lost:
        await provider.subscriptions.create(wanted, idempotency_key=key())
    found = await provider.subscriptions.find(wanted)

    assert lost.value.ambiguous
    assert found is not None
    assert [p["id"] for p in fake_mercadopago.preapprovals(wanted.subscription.id)] == [found.id]


async def test_a_replayed_create_with_the_same_key_makes_one_preapproval(
    isolated_mercadopago: FakeMercadoPago, make_mercadopago_provider: MercadoPagoFactory
) -> None:
    isolated_mercadopago.honour_idempotency = True
    provider = make_mercadopago_provider(api_base=isolated_mercadopago.url, back_url=BACK_URL)
    wanted = terms()

    first = await provider.subscriptions.create(wanted, idempotency_key="same")
    again = await provider.subscriptions.create(wanted, idempotency_key="same")
    await provider.subscriptions.cancel(first.id, at_period_end=False, idempotency_key="same")

    assert first.id == again.id
    assert len(isolated_mercadopago.preapprovals()) == 1
    assert isolated_mercadopago.key_reuses() == {}


async def test_notifications_name_the_preapproval(
    isolated_mercadopago: FakeMercadoPago,
    make_mercadopago_provider: MercadoPagoFactory,
    notification_receiver: NotificationReceiver,
) -> None:
    provider = make_mercadopago_provider(api_base=isolated_mercadopago.url, back_url=BACK_URL)
    sub = await created(provider.subscriptions)
    isolated_mercadopago.authorize_preapproval(sub.id)

    notifications = isolated_mercadopago.preapproval_notifications()

    assert [json.loads(n.body)["action"] for n in notifications] == ["created", "updated"]
    for notification in notifications:
        status = await isolated_mercadopago.deliver(notification_receiver.url, notification)
        assert status == 200
        received = await notification_receiver.next()
        event = provider.parse_webhook(received.body, received.headers, query=received.query)
        assert provider.subscriptions.subscription_of(event) == sub.id
    assert isolated_mercadopago.preapproval_notifications() == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "subscription_preapproval", "data": {"id": "ab12"}}, "ab12"),
        ({"topic": "subscription_preapproval", "data": {"id": 42}}, "42"),
        ({"type": "payment", "data": {"id": "ab12"}}, None),
        ({"type": "subscription_preapproval", "data": {"id": True}}, None),
        ({"type": "subscription_preapproval", "data": {"id": " "}}, None),
        ({"type": "subscription_preapproval"}, None),
    ],
)
def test_the_preapproval_id_of_a_notification(raw: dict[str, Any], expected: str | None) -> None:
    assert preapproval_id_of_notification(raw) == expected


# -- the fake, pinned -------------------------------------------------------------------------


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reason": "Yoga classes",
        "external_reference": "YG-1234",
        "payer_email": "payer@example.com",
        "back_url": BACK_URL,
        "auto_recurring": {
            "frequency": 1,
            "frequency_type": "months",
            "transaction_amount": 10,
            "currency_id": "BRL",
        },
    }
    body.update(overrides)
    return body


def _recurring(**overrides: Any) -> dict[str, Any]:
    recurring: dict[str, Any] = _body()["auto_recurring"]
    recurring.update(overrides)
    return {k: v for k, v in recurring.items() if v is not None}


_TWO_DAYS_AGO = (datetime.now(UTC) - timedelta(days=2)).isoformat()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_body(payer_email=None), "Field payer_email is required"),
        (_body(payer_email="nope"), "Invalid value for payer_email, must be a valid email address"),
        (_body(back_url="nope"), "Invalid value for back_url, must be a valid URL"),
        (_body(status="authorized"), "Field card_token_id is required"),
        (
            _body(status="pending", card_token_id="tok"),
            "You cannot create a preapproval with payment_method in status pending",
        ),
        (_body(reason="x" * 256), "Field reason has more than 255 characters"),
        (_body(external_reference="a b"), "Field external_reference has unsupported characters"),
        (_body(color="red"), "Invalid request data"),
        (
            _body(auto_recurring=_recurring(frequency=None)),
            "Field auto_recurring.frequency is required",
        ),
        (
            _body(auto_recurring=_recurring(frequency=0)),
            "Invalid value for auto_recurring.frequency, must be a positive integer",
        ),
        (
            _body(auto_recurring=_recurring(frequency_type="weeks")),
            "Invalid value for auto_recurring.frequency_type, valid ones are days, months",
        ),
        (
            _body(auto_recurring=_recurring(transaction_amount=-1)),
            "Invalid value for transaction amount, must be a positive number",
        ),
        (
            _body(auto_recurring=_recurring(transaction_amount=1.999)),
            "Invalid value for transaction amount, only two decimals are allowed",
        ),
        (
            _body(auto_recurring=_recurring(currency_id="USD")),
            "Invalid value for auto_recurring.currency_id",
        ),
        (
            _body(auto_recurring=_recurring(currency_id="ARS")),
            "Cannot operate with this currency_id in this site",
        ),
        (
            _body(auto_recurring=_recurring(start_date=_TWO_DAYS_AGO)),
            "Invalid value for auto_recurring.start_date, the date must be after today",
        ),
        (
            _body(auto_recurring=_recurring(end_date="someday")),
            "Invalid format in auto_recurring.start_date or auto_recurring.end_date",
        ),
        (
            _body(auto_recurring=_recurring(end_date=_TWO_DAYS_AGO)),
            "Invalid value for auto_recurring.end_date, the date must be after today",
        ),
        (
            _body(preapproval_plan_id="0" * 32, card_token_id="tok"),
            "The template with id 00000000000000000000000000000000 does not exist",
        ),
    ],
)
def test_the_fake_refuses_what_the_reference_refuses(
    fake_mercadopago: FakeMercadoPago, body: dict[str, Any], message: str
) -> None:
    status, answer = http(fake_mercadopago, "POST", "/preapproval", {
        k: v for k, v in body.items() if v is not None
    })  # fmt: skip
    assert (status, answer["message"]) == (404 if "template" in message else 400, message)


def test_the_fake_authorizes_with_a_card_and_refuses_a_used_token(
    isolated_mercadopago: FakeMercadoPago,
) -> None:
    fake = isolated_mercadopago
    status, item = http(
        fake, "POST", "/preapproval", _body(status="authorized", card_token_id="t1")
    )
    again = http(fake, "POST", "/preapproval", _body(card_token_id="t1"))

    assert (status, item["status"], item["summarized"]["charged_quantity"]) == (
        200,
        "authorized",
        1,
    )
    next_payment = datetime.fromisoformat(item["next_payment_date"])
    assert 28 <= (next_payment - datetime.fromisoformat(item["date_created"])).days <= 31
    assert (again[0], again[1]["message"]) == (400, "Card token was used, please generate new")


def test_the_fake_needs_a_card_for_a_plan_and_takes_the_plans_terms(
    isolated_mercadopago: FakeMercadoPago,
) -> None:
    fake = isolated_mercadopago
    _, plan = http(fake, "POST", "/preapproval_plan", {
        "reason": "Gold", "back_url": BACK_URL,
        "auto_recurring": {"frequency": 1, "frequency_type": "months",
                           "transaction_amount": 50, "currency_id": "BRL"},
    })  # fmt: skip
    bare = {"payer_email": "p@example.com", "back_url": BACK_URL, "preapproval_plan_id": plan["id"]}

    refused = http(fake, "POST", "/preapproval", bare)
    status, item = http(fake, "POST", "/preapproval", {**bare, "card_token_id": "t2"})

    assert (refused[0], refused[1]["message"]) == (400, "Field card_token_id is required")
    assert (status, item["reason"], item["auto_recurring"]["transaction_amount"]) == (
        200,
        "Gold",
        50,
    )
    assert [p["id"] for p in fake.preapproval_plans()] == [plan["id"]]  # still routed to plans


@pytest.mark.parametrize(
    ("before", "change", "message"),
    [
        ("cancelled", {"status": "authorized"}, "Invalid transition from cancelled to authorized"),
        ("cancelled", {"reason": "Other"}, "You can not modify a cancelled preapproval."),
        ("paused", {"reason": "Other"}, "You can not modify a paused subscription."),
        ("pending", {"status": "authorized"}, "You must provide a card_id"),
        ("pending", {"status": "paused"}, "Invalid transition from pending to paused"),
        ("authorized", {"auto_recurring": {"frequency": 2}}, "Invalid request data"),
        ("authorized", {"auto_recurring": {"frequency_type": "days"}}, "Invalid request data"),
        ("authorized", {"color": "red"}, "Invalid request data"),
    ],
)
def test_the_fake_refuses_updates_the_reference_refuses(
    isolated_mercadopago: FakeMercadoPago, before: str, change: dict[str, Any], message: str
) -> None:
    fake = isolated_mercadopago
    _, item = http(fake, "POST", "/preapproval", _body())
    path = f"/preapproval/{item['id']}"
    if before != "pending":
        fake.authorize_preapproval(item["id"])
    if before in ("paused", "cancelled"):
        assert http(fake, "PUT", path, {"status": before})[0] == 200

    status, answer = http(fake, "PUT", path, change)

    assert (status, answer["message"]) == (400, message)


def test_the_fake_gets_searches_and_checks_authorization(
    isolated_mercadopago: FakeMercadoPago,
) -> None:
    fake = isolated_mercadopago
    ids = [
        http(fake, "POST", "/preapproval", _body(external_reference=f"r-{i}"))[1]["id"]
        for i in range(3)
    ]
    fake.authorize_preapproval(ids[2])

    by_reference = http(fake, "GET", "/preapproval/search?external_reference=r-1")[1]
    pending = http(fake, "GET", "/preapproval/search?status=pending&limit=1&offset=1")[1]
    newest = http(fake, "GET", "/preapproval/search?sort=date_created:desc&limit=1")[1]

    assert [p["id"] for p in by_reference["results"]] == [ids[1]]
    assert pending["paging"] == {"offset": 1, "limit": 1, "total": 2}
    assert [p["id"] for p in pending["results"]] == [ids[1]]
    assert [p["id"] for p in newest["results"]] == [ids[2]]
    assert http(fake, "GET", "/preapproval/search?limit=500")[1]["message"] == (
        "Binding exception, parameters passed are invalid"
    )
    assert http(fake, "GET", "/preapproval/NOPE")[1]["message"] == (
        "Invalid value NOPE, Field 'id' must match this pattern '[a-f0-9-]+'"
    )
    assert http(fake, "GET", f"/preapproval/{'0' * 32}") == (404, {
        "message": f"The preapproval with id {'0' * 32} does not exist",
        "error": "not_found", "status": 404, "cause": [],
    })  # fmt: skip
    assert http(fake, "GET", f"/preapproval/{ids[0]}", auth=False)[0] == 401
    assert http(fake, "POST", f"/_test/preapproval/{ids[2]}/authorize", auth=False)[0] == 400
