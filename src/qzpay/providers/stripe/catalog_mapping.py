"""qzpay plans and prices to Stripe's Product and Price parameters, and back.

=====================  ==========================================================
qzpay                  Stripe
=====================  ==========================================================
``Plan.name``          ``product.name``
``Plan.description``   ``product.description`` (``""`` clears it)
``Plan.active``        ``product.active``
``Plan.metadata``      ``product.metadata`` + ``qzpay_plan_id`` (removed keys as ``""``)
``Price.plan_id``      ``price.product`` (the plan's Stripe product, from its links)
``Price.currency``     ``price.currency`` (Stripe's lower case; read back upper case)
``Price.unit_amount``  ``price.unit_amount`` (minor units on both sides)
``Price.interval``     ``price.recurring.interval`` / ``recurring.interval_count``
``Price.lookup_key``   ``price.lookup_key`` (with ``transfer_lookup_key``, see below)
``Price.active``       ``price.active``
``Price.metadata``     ``price.metadata`` + ``qzpay_price_id``
=====================  ==========================================================

Kept in qzpay only: a plan's key, entitlements and limits, and a price's ``trial_days``
(Stripe deprecated price-level trials; trials are applied when subscribing).

Lookup keys are unique across a Stripe account, archived prices included ("A price
(``price_…``) already uses that lookup key."), while qzpay requires them unique among *active*
prices only. qzpay's rule is the one in force, so a lookup key is always sent with
``transfer_lookup_key=true``: Stripe then moves it atomically from the price holding it (an
archived one, or the one a replacement takes it from), exactly as qzpay moves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from stripe.params import (
    PriceCreateParams,
    PriceUpdateParams,
    ProductCreateParams,
    ProductUpdateParams,
)

from qzpay.catalog.models import INTERVALS, Interval, Plan, Price
from qzpay.providers.base import (
    QZPAY_PLAN_ID_KEY,
    QZPAY_PRICE_ID_KEY,
    ProviderPlan,
    ProviderPrice,
    with_remote,
)
from qzpay.providers.stripe.fields import changed, metadata, metadata_param, text

# -- plans (products) -----------------------------------------------------------------------


def product_create_params(plan: Plan) -> ProductCreateParams:
    params: ProductCreateParams = {
        "name": plan.name,
        "active": plan.active,
        "metadata": {**plan.metadata, QZPAY_PLAN_ID_KEY: plan.id},
    }
    if plan.description is not None:
        params["description"] = plan.description
    return params


def product_update_params(before: Plan, after: Plan) -> ProductUpdateParams:
    """Only what changed among the fields Stripe holds."""
    params = changed(before, after, ("name", "description", "active"))
    params |= metadata_param(before.metadata, after.metadata, QZPAY_PLAN_ID_KEY)
    return cast(ProductUpdateParams, params)


def provider_plan(data: Mapping[str, Any]) -> ProviderPlan:
    """A Stripe product (as a dict) as the provider-neutral ProviderPlan."""
    stored = metadata(data.get("metadata"))
    return ProviderPlan(
        id=str(data["id"]),
        name=text(data.get("name")),
        description=text(data.get("description")),
        active=data.get("active") is not False,
        metadata=stored,
        qzpay_plan_id=stored.get(QZPAY_PLAN_ID_KEY),
        deleted=data.get("deleted") is True,
    )


# -- prices ---------------------------------------------------------------------------------


def price_create_params(price: Price, product: str) -> PriceCreateParams:
    params: PriceCreateParams = {
        "product": product,
        "currency": price.currency.lower(),
        "unit_amount": price.unit_amount,
        "recurring": {"interval": price.interval, "interval_count": price.interval_count},
        "active": price.active,
        "metadata": {**price.metadata, QZPAY_PRICE_ID_KEY: price.id},
    }
    if price.lookup_key is not None:
        params["lookup_key"] = price.lookup_key
        params["transfer_lookup_key"] = True
    return params


def price_update_params(before: Price, after: Price) -> PriceUpdateParams:
    """Only the lookup key, metadata and active flag can change (the rest is immutable)."""
    params = changed(before, after, ("lookup_key",))
    if params and after.lookup_key is not None:
        params["transfer_lookup_key"] = True
    params |= changed(before, after, ("active",))
    params |= metadata_param(before.metadata, after.metadata, QZPAY_PRICE_ID_KEY)
    return cast(PriceUpdateParams, params)


def provider_price(data: Mapping[str, Any]) -> ProviderPrice:
    """A Stripe price (as a dict) as the provider-neutral ProviderPrice."""
    stored = metadata(data.get("metadata"))
    recurring = data.get("recurring")
    recurring = recurring if isinstance(recurring, Mapping) else {}
    interval = recurring.get("interval")
    count = recurring.get("interval_count")
    trial = recurring.get("trial_period_days")
    amount = data.get("unit_amount")
    product = data.get("product")
    if isinstance(product, Mapping):  # expanded
        product = product.get("id")
    return ProviderPrice(
        id=str(data["id"]),
        provider_plan_id=text(product),
        currency=str(data.get("currency") or "").upper(),
        unit_amount=amount if isinstance(amount, int) else 0,
        interval=cast(Interval, interval) if interval in INTERVALS else None,
        interval_count=count if isinstance(count, int) and count > 0 else 1,
        trial_days=trial if isinstance(trial, int) and trial > 0 else None,
        lookup_key=text(data.get("lookup_key")),
        active=data.get("active") is not False,
        metadata=stored,
        qzpay_price_id=stored.get(QZPAY_PRICE_ID_KEY),
    )


def merge_price_remote(local: Price, remote: ProviderPrice) -> Price:
    """Stripe can change a price's active flag, lookup key and metadata; the rest stays."""
    held = {"active": remote.active, "lookup_key": remote.lookup_key}
    return with_remote(local, held, remote.metadata, QZPAY_PRICE_ID_KEY)
