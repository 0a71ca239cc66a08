"""Stripe Prices for localstripe, and the product events it lacks, loaded by the launcher.

localstripe (1.x) has Products but no Prices. :func:`install` adds, in the launcher's process
only, a ``Price`` resource written in localstripe's own style (a ``StripeObject`` subclass kept
in its store, exported by its ``_export``, served by its route factories and middlewares) and
wraps two Product class methods so that products send their events. Nothing in site-packages
is modified. What it follows, from Stripe's API reference (https://docs.stripe.com/api/prices):

* ``POST /v1/prices``: ``currency`` (required, stored lower case), ``product``
  (required here: ``product_data`` is not supported), ``unit_amount`` (integer ≥ 0),
  ``recurring{interval: day|week|month|year, interval_count}`` (at most three years:
  3 years, 36 months or 156 weeks; ``usage_type``/``trial_period_days`` accepted),
  ``lookup_key`` (≤ 200 characters), ``transfer_lookup_key``, ``active``, ``metadata``,
  ``nickname``, ``tax_behavior``. The price object: ``id`` (``price_…``), ``object``,
  ``active``, ``billing_scheme``, ``created``, ``currency``, ``custom_unit_amount``,
  ``livemode``, ``lookup_key``, ``metadata``, ``nickname``, ``product``, ``recurring``
  (``interval``, ``interval_count``, ``meter``, ``trial_period_days``, ``usage_type``),
  ``tax_behavior``, ``tiers_mode``, ``transform_quantity``, ``type`` (``recurring`` or
  ``one_time``), ``unit_amount``, ``unit_amount_decimal`` (a string).
* ``GET /v1/prices/{id}``; ``POST /v1/prices/{id}`` updates only ``active``, ``lookup_key``
  (``""`` removes it), ``transfer_lookup_key``, ``metadata`` (a key given ``""`` is removed),
  ``nickname`` and ``tax_behavior``; anything else is refused (400), as amount, currency and
  interval of a Stripe price never change.
* ``GET /v1/prices`` with the filters ``active``, ``product``, ``currency``, ``type`` and
  ``lookup_keys[]``; without ``active`` it lists active and archived prices alike.
* Lookup keys are unique across the account, archived prices included: a taken key is refused
  with "A price (`price_…`) already uses that lookup key." unless ``transfer_lookup_key`` is
  true, which moves it atomically (the former holder gets ``price.updated``).
* Stripe's API cannot delete a price (the dashboard can delete one never used):
  ``DELETE /_config/prices/{id}`` stands in for that dashboard action and sends
  ``price.deleted``.
* Events: ``price.created``, ``price.updated`` (with ``data.previous_attributes``) and
  ``price.deleted``; for products, which localstripe creates but never reports changing,
  ``product.updated`` (with ``previous_attributes``) and ``product.deleted``. A product that
  has prices cannot be deleted: "This product cannot be deleted because it has one or more
  user-created prices." (400), as at Stripe.

Like the rest of localstripe, ``Idempotency-Key`` is accepted and ignored.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from localstripe import resources  # type: ignore[import-untyped]
from localstripe.errors import UserError  # type: ignore[import-untyped]
from localstripe.resources import (  # type: ignore[import-untyped]
    Event,
    List,
    Product,
    StripeObject,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)
from localstripe.webhooks import schedule_webhook  # type: ignore[import-untyped]

_INTERVALS = ("day", "week", "month", "year")
_MAX_PERIOD = {"day": 1095, "week": 156, "month": 36, "year": 3}  # three years
_MAX_LOOKUP_KEY = 200
_UPDATABLE = frozenset(
    {"active", "lookup_key", "transfer_lookup_key", "metadata", "nickname", "tax_behavior"}
)
_TAX_BEHAVIORS = ("exclusive", "inclusive", "unspecified")


def _bad(message: str, param: str | None = None) -> UserError:
    contents: dict[str, Any] = {}
    if param is not None:
        contents["param"] = param
    return UserError(400, message, contents)


def _prices() -> list[Price]:
    return [value for key, value in store.items() if key.startswith("price:")]


def _notify(kind: str, obj: Any, previous: dict[str, Any] | None = None) -> None:
    event = Event(kind, obj)
    if previous:
        event.data["previous_attributes"] = previous
    schedule_webhook(event)


def _apply_metadata(current: dict[str, str], given: object) -> dict[str, str]:
    """Stripe's metadata update: given keys are set, a key given ``""`` is removed."""
    if given == "":
        return {}
    if not isinstance(given, dict):
        raise _bad("Invalid metadata: must be an object", "metadata")
    merged = dict(current)
    for key, value in given.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


class Price(StripeObject):  # type: ignore[misc]  # localstripe is untyped
    object = "price"
    _id_prefix = "price_"

    def __init__(
        self,
        currency: Any = None,
        product: Any = None,
        unit_amount: Any = None,
        recurring: Any = None,
        lookup_key: Any = None,
        transfer_lookup_key: Any = False,
        active: Any = True,
        metadata: Any = None,
        nickname: Any = None,
        tax_behavior: Any = "unspecified",
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise _bad("Received unknown parameter: " + ", ".join(sorted(kwargs)))
        unit_amount = try_convert_to_int(unit_amount)
        active = try_convert_to_bool(active)
        transfer_lookup_key = try_convert_to_bool(transfer_lookup_key)
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
            raise _bad("Invalid currency", "currency")
        if not isinstance(product, str) or not product:
            raise _bad("Missing required param: product.", "product")
        if type(unit_amount) is not int or unit_amount < 0:
            raise _bad("Invalid non-negative integer", "unit_amount")
        if type(active) is not bool or type(transfer_lookup_key) is not bool:
            raise _bad("Invalid boolean")
        if tax_behavior not in _TAX_BEHAVIORS:
            raise _bad("Invalid tax_behavior", "tax_behavior")
        if nickname is not None and not isinstance(nickname, str):
            raise _bad("Invalid string", "nickname")
        exported_recurring = _recurring(recurring) if recurring is not None else None
        _check_lookup_key(lookup_key)
        if metadata is not None and not isinstance(metadata, dict):
            raise _bad("Invalid metadata: must be an object", "metadata")
        try:
            Product._api_retrieve(product)
        except UserError:
            missing = {"code": "resource_missing", "param": "product"}
            raise UserError(400, f"No such product: '{product}'", missing) from None
        holder = _lookup_key_holder(lookup_key, transfer_lookup_key)

        # All exceptions must be raised before this point (the store is written below).
        super().__init__()
        if holder is not None:
            holder._take_lookup_key()
        self.active = active
        self.billing_scheme = "per_unit"
        self.currency = currency.lower()
        self.custom_unit_amount = None
        self.lookup_key = lookup_key or None
        self.metadata = {k: str(v) for k, v in (metadata or {}).items() if v != ""}
        self.nickname = nickname
        self.product = product
        self.recurring = exported_recurring
        self.tax_behavior = tax_behavior
        self.tiers_mode = None
        self.transform_quantity = None
        self.type = "recurring" if exported_recurring is not None else "one_time"
        self.unit_amount = unit_amount
        self.unit_amount_decimal = str(unit_amount)
        _notify("price.created", self)

    def _take_lookup_key(self) -> None:
        previous = {"lookup_key": self.lookup_key}
        self.lookup_key = None
        _notify("price.updated", self, previous)

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> Price:
        obj = cls._api_retrieve(id)
        unknown = set(data) - _UPDATABLE
        if unknown:
            raise _bad("Received unknown parameter: " + ", ".join(sorted(unknown)))
        active = try_convert_to_bool(data.get("active", obj.active))
        transfer = try_convert_to_bool(data.get("transfer_lookup_key", False))
        if type(active) is not bool or type(transfer) is not bool:
            raise _bad("Invalid boolean")
        lookup_key = data.get("lookup_key", obj.lookup_key) or None
        _check_lookup_key(lookup_key)
        holder = None
        if lookup_key != obj.lookup_key:
            holder = _lookup_key_holder(lookup_key, transfer)
        metadata = _apply_metadata(obj.metadata, data.get("metadata", {}))
        tax_behavior = data.get("tax_behavior", obj.tax_behavior)
        if tax_behavior not in _TAX_BEHAVIORS:
            raise _bad("Invalid tax_behavior", "tax_behavior")

        # All exceptions must be raised before this point.
        if holder is not None and holder is not obj:
            holder._take_lookup_key()
        new = {
            "active": active,
            "lookup_key": lookup_key,
            "metadata": metadata,
            "nickname": data.get("nickname", obj.nickname),
            "tax_behavior": tax_behavior,
        }
        previous = {k: getattr(obj, k) for k, v in new.items() if getattr(obj, k) != v}
        for key, value in new.items():
            setattr(obj, key, value)
        if previous:
            _notify("price.updated", obj, previous)
        return obj  # type: ignore[no-any-return]

    @classmethod
    def _api_list_all(
        cls,
        url: str,
        product: Any = None,
        active: Any = None,
        currency: Any = None,
        lookup_keys: Any = None,
        type: Any = None,
        limit: Any = None,
        starting_after: Any = None,
        **kwargs: Any,
    ) -> Any:
        if kwargs:
            raise _bad("Received unknown parameter: " + ", ".join(sorted(kwargs)))
        active = try_convert_to_bool(active)
        if active is not None and not isinstance(active, bool):
            raise _bad("Invalid boolean", "active")
        if isinstance(lookup_keys, str):
            lookup_keys = [lookup_keys]
        if lookup_keys is not None and not isinstance(lookup_keys, list):
            raise _bad("Invalid array", "lookup_keys")
        listing = List(url, limit=limit, starting_after=starting_after)
        listing._list = [
            price
            for price in _prices()
            if (product is None or price.product == product)
            and (active is None or price.active == active)
            and (currency is None or price.currency == str(currency).lower())
            and (type is None or price.type == type)
            and (lookup_keys is None or price.lookup_key in lookup_keys)
        ]
        return listing


def _recurring(recurring: Any) -> dict[str, Any]:
    if not isinstance(recurring, dict):
        raise _bad("Invalid object", "recurring")
    unknown = set(recurring) - {"interval", "interval_count", "usage_type", "trial_period_days"}
    if unknown:
        raise _bad("Received unknown parameter: recurring[" + min(unknown) + "]")
    interval = recurring.get("interval")
    count = try_convert_to_int(recurring.get("interval_count", 1))
    trial = try_convert_to_int(recurring.get("trial_period_days"))
    usage_type = recurring.get("usage_type", "licensed")
    if interval not in _INTERVALS:
        raise _bad("Invalid recurring[interval]", "recurring[interval]")
    if type(count) is not int or count < 1:
        raise _bad("Invalid positive integer", "recurring[interval_count]")
    if count > _MAX_PERIOD[interval]:
        raise _bad(
            "Maximum of three years interval allowed (3 years, 36 months, or 156 weeks).",
            "recurring[interval_count]",
        )
    if trial is not None and (type(trial) is not int or trial < 0):
        raise _bad("Invalid integer", "recurring[trial_period_days]")
    if usage_type not in ("licensed", "metered"):
        raise _bad("Invalid recurring[usage_type]", "recurring[usage_type]")
    return {
        "interval": interval,
        "interval_count": count,
        "meter": None,
        "trial_period_days": trial,
        "usage_type": usage_type,
    }


def _check_lookup_key(lookup_key: Any) -> None:
    if lookup_key is None or lookup_key == "":
        return
    if not isinstance(lookup_key, str) or len(lookup_key) > _MAX_LOOKUP_KEY:
        raise _bad("Invalid lookup_key: must be at most 200 characters", "lookup_key")


def _lookup_key_holder(lookup_key: Any, transfer: bool) -> Price | None:
    """The price holding ``lookup_key``, which ``transfer`` lets a new holder take; a taken
    key without ``transfer`` is refused, as at Stripe."""
    if not lookup_key:
        return None
    holder = next((p for p in _prices() if p.lookup_key == lookup_key), None)
    if holder is not None and not transfer:
        raise _bad(f"A price (`{holder.id}`) already uses that lookup key.", "lookup_key")
    return holder


# -- products: the events localstripe does not send ----------------------------------------

_PRODUCT_FIELDS = ("name", "description", "active", "metadata", "statement_descriptor", "url")


def _update_product(cls: Any, id: str, /, **data: Any) -> Any:
    obj = Product._api_retrieve(id)
    before = {k: getattr(obj, k) for k in _PRODUCT_FIELDS}
    if "active" in data:
        data["active"] = try_convert_to_bool(data["active"])
        if type(data["active"]) is not bool:
            raise _bad("Invalid boolean", "active")
    metadata = _apply_metadata(obj.metadata or {}, data.pop("metadata", {}))
    StripeObject._api_update.__func__(cls, id, **data)
    obj.metadata = metadata
    previous = {k: v for k, v in before.items() if getattr(obj, k) != v}
    if previous:
        _notify("product.updated", obj, previous)
    return obj


def _delete_product(cls: Any, id: str, /) -> Any:
    obj = Product._api_retrieve(id)
    if any(price.product == id for price in _prices()):
        raise _bad("This product cannot be deleted because it has one or more user-created prices.")
    deleted = StripeObject._api_delete.__func__(cls, id)
    _notify("product.deleted", obj)
    return deleted


async def _dashboard_delete_price(request: web.Request) -> web.Response:
    price = Price._api_retrieve(request.match_info["id"])
    del store["price:" + price.id]
    _notify("price.deleted", price)
    return web.json_response({"id": price.id, "object": "price", "deleted": True})


def install(app: web.Application) -> None:
    """Add the price routes to localstripe's ``app`` (before it starts) and the product
    events. Call once, in the launcher's process."""
    from localstripe.server import (  # type: ignore[import-untyped]
        api_create,
        api_list_all,
        api_retrieve,
        api_update,
    )

    Product._api_update = classmethod(_update_product)
    Product._api_delete = classmethod(_delete_product)
    resources.Price = Price  # so localstripe's ``expand`` finds it like its own classes
    url = "/v1/prices"
    app.router.add_route("POST", url, api_create(Price, url))
    app.router.add_route("GET", url + "/{id}", api_retrieve(Price, url + "/{id}"))
    app.router.add_route("POST", url + "/{id}", api_update(Price, url + "/{id}"))
    app.router.add_route("GET", url, api_list_all(Price, url))
    app.router.add_delete("/_config/prices/{id}", _dashboard_delete_price)
