"""qzpay customers to Stripe's request parameters and back.

Stripe holds every customer field qzpay has, so the mapping is one to one. Stripe clears a
field given as ``""``: that is how a name, phone, address or metadata key removed locally is
removed at Stripe, and why ``""`` read back means unset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, cast

from stripe.params import (
    CustomerCreateParams,
    CustomerCreateParamsAddress,
    CustomerUpdateParams,
    CustomerUpdateParamsAddress,
)

from qzpay.customers.models import Address, Customer
from qzpay.providers.base import QZPAY_CUSTOMER_ID_KEY, ProviderCustomer
from qzpay.providers.stripe.fields import changed, metadata, metadata_param, text

_ADDRESS_FIELDS: Final = ("line1", "line2", "city", "state", "postal_code", "country")


def create_params(customer: Customer) -> CustomerCreateParams:
    """Every set field and our id in ``metadata``; unset ones are simply left out."""
    params: CustomerCreateParams = {
        "email": customer.email,
        "metadata": {**customer.metadata, QZPAY_CUSTOMER_ID_KEY: customer.id},
    }
    if customer.name is not None:
        params["name"] = customer.name
    if customer.phone is not None:
        params["phone"] = customer.phone
    if customer.address is not None:
        # Only the set fields: an absent field is simply unset on a new customer.
        fields = {f: v for f in _ADDRESS_FIELDS if (v := getattr(customer.address, f))}
        if fields:
            params["address"] = cast(CustomerCreateParamsAddress, fields)
    return params


def update_params(before: Customer, after: Customer) -> CustomerUpdateParams:
    """Only what changed, so concurrent edits made at Stripe to other fields survive.

    ``qzpay_customer_id`` is owned by qzpay, set at creation and never changed by updates.
    """
    params = changed(before, after, ("email", "name", "phone"))
    if before.address != after.address:
        params["address"] = _update_address(after.address)
    params |= metadata_param(before.metadata, after.metadata, QZPAY_CUSTOMER_ID_KEY)
    return cast(CustomerUpdateParams, params)


def adopt_params(current: ProviderCustomer, customer: Customer) -> CustomerUpdateParams:
    """Our id and every field from ``customer``: cleared ones as ``""``, metadata keys the
    Stripe customer has and ``customer`` lacks removed."""
    metadata = {k: "" for k in current.metadata if k not in customer.metadata}
    metadata.update(customer.metadata)
    metadata[QZPAY_CUSTOMER_ID_KEY] = customer.id
    return {
        "email": customer.email,
        "name": customer.name or "",
        "phone": customer.phone or "",
        "address": _update_address(customer.address),
        "metadata": metadata,
    }


def _update_address(address: Address | None) -> CustomerUpdateParamsAddress | Literal[""]:
    """The whole address, ``""`` for cleared fields, or ``""`` to clear it entirely."""
    if address is None:
        return ""
    return cast(
        CustomerUpdateParamsAddress, {f: getattr(address, f) or "" for f in _ADDRESS_FIELDS}
    )


def provider_customer(data: Mapping[str, Any]) -> ProviderCustomer:
    """A Stripe customer object (as a dict) as the provider-neutral ProviderCustomer."""
    stored = metadata(data.get("metadata"))
    raw_address = data.get("address")
    address = None
    if isinstance(raw_address, Mapping):
        fields = {f: text(raw_address.get(f)) for f in _ADDRESS_FIELDS}
        if any(v is not None for v in fields.values()):
            address = Address(**fields)
    return ProviderCustomer(
        id=str(data["id"]),
        email=text(data.get("email")),
        name=text(data.get("name")),
        phone=text(data.get("phone")),
        address=address,
        metadata=stored,
        qzpay_customer_id=stored.get(QZPAY_CUSTOMER_ID_KEY),
        deleted=data.get("deleted") is True,
    )
