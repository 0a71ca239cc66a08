"""qzpay customers to MercadoPago's customer fields and back.

Field mapping (qzpay ``Customer`` -> MercadoPago customer), every row round-trips
-------------------------------------------------------------------------------

=========================  ======================================================
qzpay                      MercadoPago
=========================  ======================================================
``email``                  ``email`` (MercadoPago refuses to change it once set:
                           cause 126, a non-ambiguous ProviderSyncError)
``name``                   ``first_name`` + ``last_name``, split at the first space
``phone`` (E.164)          ``phone.area_code`` = country calling code,
                           ``phone.number`` = national significant number
``address.line1``          ``address.street_name``
``address.postal_code``    ``address.zip_code``
``id``                     ``description`` = ``qzpay_customer_id:<id>``, set at
                           creation and never changed (find and reconcile read it;
                           edited away at MercadoPago, the link is lost)
=========================  ======================================================

Not sent, kept in qzpay only: ``metadata`` (every key: the customers API documents no
writable metadata), and ``address.line2``, ``address.city``, ``address.state`` and
``address.country`` (the documented customer address has ``zip_code``, ``street_name`` and a
numeric ``street_number`` only). ``ProviderCustomer.metadata`` therefore holds nothing but
``qzpay_customer_id``, and ``ProviderCustomer.address`` only ``line1`` and ``postal_code``;
:func:`held_view` gives the part of a qzpay customer MercadoPago can hold, to compare like
with like. MercadoPago's ``street_number``, ``identification``, cards and its own
``metadata`` are neither written nor read.

Names: ``"Ana Souza"`` is sent as first ``"Ana"``, last ``"Souza"``; ``"María José García"``
as ``"María"`` / ``"José García"``; a single name as ``first_name`` only. Read back, the two
are joined with one space. A name whose remainder after the first space is blank or starts
with whitespace (``"Ana  Souza"``) is sent whole as ``first_name`` so that it still
round-trips. This is a storage encoding, not a claim about which part is the family name.

Phones: E.164 is ``+`` country code national-number, so ``"+5511912345678"`` is sent as
``{"area_code": "55", "number": "11912345678"}`` and rebuilt exactly. A phone edited at
MercadoPago into another convention (a local area code) is reported as its raw digits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import phonenumbers

from qzpay.customers.models import Address, Customer
from qzpay.providers.base import QZPAY_CUSTOMER_ID_KEY, ProviderCustomer

DESCRIPTION_PREFIX: Final = f"{QZPAY_CUSTOMER_ID_KEY}:"


def split_name(name: str) -> tuple[str, str]:
    """``(first_name, last_name)`` for a trimmed qzpay name; see the module docstring."""
    first, _, rest = name.partition(" ")
    if not first or not rest or rest != rest.strip():
        return name, ""
    return first, rest


# -- qzpay to MercadoPago --------------------------------------------------------------------


def create_body(customer: Customer) -> dict[str, Any]:
    """Only the set fields: an absent field is simply unset on a new customer."""
    body: dict[str, Any] = {
        "email": customer.email,
        "description": DESCRIPTION_PREFIX + customer.id,
    }
    if customer.name is not None:
        first, last = split_name(customer.name)
        body["first_name"] = first
        if last:
            body["last_name"] = last
    if customer.phone is not None:
        body["phone"] = _phone_body(customer.phone)
    address = _address_body(customer.address, clear=False)
    if address:
        body["address"] = address
    return body


def adopt_body(customer: Customer) -> dict[str, Any]:
    """Our id and every held field, unset ones as ``""`` (the customer had values of its own)."""
    first, last = split_name(customer.name) if customer.name is not None else ("", "")
    return {
        "description": DESCRIPTION_PREFIX + customer.id,
        "first_name": first,
        "last_name": last,
        "phone": (
            _phone_body(customer.phone)
            if customer.phone is not None
            else {"area_code": "", "number": ""}
        ),
        "address": _address_body(customer.address, clear=True),
    }


def update_body(before: Customer, after: Customer) -> dict[str, Any]:
    """The changed fields MercadoPago holds; ``""`` clears a field (name parts together).

    An email change is not sent: MercadoPago refuses to change an email once set (cause 126),
    so the customer keeps the email it was created with there, and the new one lives in qzpay.
    """
    body: dict[str, Any] = {}
    if before.name != after.name:
        first, last = split_name(after.name) if after.name is not None else ("", "")
        body["first_name"] = first
        body["last_name"] = last
    if before.phone != after.phone:
        body["phone"] = (
            _phone_body(after.phone) if after.phone is not None else {"area_code": "", "number": ""}
        )
    if _held_address(before.address) != _held_address(after.address):
        body["address"] = _address_body(after.address, clear=True)
    return body


def _phone_body(phone: str) -> dict[str, str]:
    parsed = phonenumbers.parse(phone, None)
    return {
        "area_code": str(parsed.country_code),
        "number": phonenumbers.national_significant_number(parsed),
    }


def _address_body(address: Address | None, *, clear: bool) -> dict[str, str]:
    """``street_name`` and ``zip_code``; with ``clear``, unset ones as ``""`` too."""
    fields = {
        "street_name": address.line1 if address is not None else None,
        "zip_code": address.postal_code if address is not None else None,
    }
    if clear:
        return {k: v or "" for k, v in fields.items()}
    return {k: v for k, v in fields.items() if v}


def _held_address(address: Address | None) -> Address | None:
    if address is None or (address.line1 is None and address.postal_code is None):
        return None
    return Address(line1=address.line1, postal_code=address.postal_code)


# -- comparing and merging -------------------------------------------------------------------


def held_view(customer: Customer) -> Customer:
    """``customer`` reduced to what MercadoPago holds of it (for drift comparisons).

    Metadata and the address fields MercadoPago has no place for are dropped, exactly as
    :func:`create_body` leaves them out.
    """
    address = _held_address(customer.address)
    return customer.model_copy(update={"address": address, "metadata": {}})


def merge_remote(local: Customer, remote: ProviderCustomer) -> Customer:
    """MercadoPago's name, phone, street and zip code over ``local``; the rest stays.

    Its email is the one the customer was created with (MercadoPago refuses changes), so it
    is never taken from there; metadata and the other address parts live only in qzpay.
    """
    address = local.address
    held = _held_address(remote.address)
    if held is not None or address is not None:
        base = address or Address()
        merged = base.model_copy(
            update={
                "line1": held.line1 if held else None,
                "postal_code": held.postal_code if held else None,
            }
        )
        address = None if merged == Address() else merged
    return local.model_copy(update={"name": remote.name, "phone": remote.phone, "address": address})


# -- MercadoPago to qzpay --------------------------------------------------------------------


def text(value: object) -> str | None:
    """Blank (``""``, whitespace or missing) reads as unset, as clearing writes ``""``."""
    return value if isinstance(value, str) and value.strip() else None


def provider_customer(data: Mapping[str, Any]) -> ProviderCustomer:
    """A MercadoPago customer object as the provider-neutral ProviderCustomer."""
    description = text(data.get("description"))
    qzpay_id = None
    if description is not None and description.startswith(DESCRIPTION_PREFIX):
        qzpay_id = description[len(DESCRIPTION_PREFIX) :] or None
    return ProviderCustomer(
        id=str(data["id"]),
        email=text(data.get("email")),
        name=_read_name(text(data.get("first_name")), text(data.get("last_name"))),
        phone=_read_phone(data.get("phone")),
        address=_read_address(data.get("address")),
        metadata={QZPAY_CUSTOMER_ID_KEY: qzpay_id} if qzpay_id is not None else {},
        qzpay_customer_id=qzpay_id,
        deleted=False,  # MercadoPago answers a deleted customer with 404
    )


def _read_name(first: str | None, last: str | None) -> str | None:
    if first and last:
        return f"{first} {last}"
    return first or last


def _texts(raw: object, *keys: str) -> tuple[str | None, ...] | None:
    """The text at ``keys`` of a nested object; None when it is not one or all are blank."""
    if not isinstance(raw, Mapping):
        return None
    values = tuple(text(raw.get(key)) for key in keys)
    return None if all(value is None for value in values) else values


def _read_phone(raw: object) -> str | None:
    given = _texts(raw, "area_code", "number")
    if given is None:
        return None
    area, number = given
    if area is not None and number is not None and area.isdigit() and number.isdigit():
        candidate = f"+{area}{number}"
        try:
            parsed = phonenumbers.parse(candidate, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if (
            parsed is not None
            and phonenumbers.is_valid_number(parsed)
            and phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == candidate
        ):
            return candidate
    return " ".join(part for part in (area, number) if part)  # another convention: as stored


def _read_address(raw: object) -> Address | None:
    given = _texts(raw, "street_name", "zip_code")
    if given is None:
        return None
    line1, postal_code = given
    return Address(line1=line1, postal_code=postal_code)
