"""HTML form bodies: reading them (bounded, urlencoded) and the customer edit form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

from fastapi import Request

from qzpay.customers.models import Address, Customer
from qzpay.errors import FieldError

MAX_FORM_BYTES: Final = 64 * 1024
ADDRESS_FIELDS: Final = ("line1", "line2", "city", "state", "postal_code", "country")
ADDRESS_LABELS: Final = {
    "line1": "Address line 1",
    "line2": "Address line 2",
    "city": "City",
    "state": "State or region",
    "postal_code": "Postal code",
    "country": "Country (ISO code, e.g. US)",
}


class FormTooLarge(Exception):
    pass


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the last value of a repeated name)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    text = body.decode("utf-8", "replace")
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=200))


def metadata_text(metadata: Mapping[str, str]) -> str:
    return "\n".join(f"{key}={value}" for key, value in sorted(metadata.items()))


@dataclass
class CustomerForm:
    """The edit form's values (as typed) and its errors by form field name."""

    name: str = ""
    phone: str = ""
    address: dict[str, str] = field(default_factory=lambda: dict.fromkeys(ADDRESS_FIELDS, ""))
    metadata: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, customer: Customer) -> CustomerForm:
        address = customer.address.model_dump() if customer.address else {}
        return cls(
            name=customer.name or "",
            phone=customer.phone or "",
            address={key: address.get(key) or "" for key in ADDRESS_FIELDS},
            metadata=metadata_text(customer.metadata),
        )

    @classmethod
    def parse(cls, form: Mapping[str, str]) -> CustomerForm:
        return cls(
            name=form.get("name", ""),
            phone=form.get("phone", ""),
            address={key: form.get(f"address.{key}", "") for key in ADDRESS_FIELDS},
            metadata=form.get("metadata", ""),
        )

    def add_error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def changes(self, before: Customer) -> dict[str, Any] | None:
        """Keyword arguments for ``billing.customers.update``, or None (errors recorded) when
        the metadata text cannot be read. Keys no longer listed are removed."""
        metadata: dict[str, str | None] = {}
        for number, line in enumerate(self.metadata.splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep:
                self.add_error("metadata", f"line {number}: write each entry as key=value")
                continue
            metadata[key.strip()] = value.strip()
        if "metadata" in self.errors:
            return None
        for key in before.metadata:
            metadata.setdefault(key, None)
        address: dict[str, str | None] | None = {
            key: value.strip() or None for key, value in self.address.items()
        }
        if address is not None and not any(address.values()):
            address = None
        return {
            "name": self.name.strip() or None,
            "phone": self.phone.strip() or None,
            "address": address,
            "metadata": metadata,
        }

    def take_errors(self, errors: list[FieldError]) -> None:
        """Put each validation error next to its field (``address.country``, ``metadata.k``)."""
        for error in errors:
            path = error["field"]
            head, _, rest = path.partition(".")
            if head == "address" and rest in ADDRESS_FIELDS:
                self.add_error(path, error["message"])
            elif head in ("name", "phone"):
                self.add_error(head, error["message"])
            elif head == "metadata":
                where = f"{rest}: " if rest else ""
                self.add_error("metadata", f"{where}{error['message']}")
            elif head == "address":
                self.add_error("address.line1", error["message"])
            else:
                self.add_error("form", f"{path}: {error['message']}")


def address_value(address: Address | None) -> dict[str, Any]:
    return {} if address is None else {k: v for k, v in address.model_dump().items() if v}
