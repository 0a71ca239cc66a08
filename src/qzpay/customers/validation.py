"""Every input rule for customers, in one place.

The limits are Stripe's (the strictest provider), so anything qzpay accepts can be synced.
Checks collect every problem and raise one ValidationError listing them all (the first
``MAX_FIELD_ERRORS`` of them, and how many more there were).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NoReturn

import email_validator
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT
from email_validator.syntax import validate_email_domain_name, validate_email_length
from email_validator.types import ValidatedEmail

from qzpay._countries import ISO_3166_ALPHA2
from qzpay.customers.models import Address
from qzpay.errors import FieldError, UnknownArgumentError, ValidationError
from qzpay.limits import (
    MAX_ADDRESS_FIELD_LENGTH,
    MAX_FIELD_ERRORS,
    MAX_ID_LENGTH,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_LIST_LIMIT,
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_LENGTH,
    MAX_NAME_LENGTH,
    MAX_OFFSET,
    MAX_PROVIDER_NAME_LENGTH,
)

RESERVED_METADATA_KEY = "qzpay_customer_id"  # stored at providers to find our customers
ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal_code", "country")
_PROVIDER_NAME = re.compile(rf"[a-z][a-z0-9_-]{{0,{MAX_PROVIDER_NAME_LENGTH - 1}}}")


class Problems:
    """Collects field errors so one call reports all of them.

    Only the first ``MAX_FIELD_ERRORS`` are kept; the rest are counted, so a huge request
    (thousands of bad metadata keys) cannot build a huge error."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.omitted = 0
        self._unknown = False

    def add(self, field: str, code: str, message: str) -> None:
        if len(self.errors) < MAX_FIELD_ERRORS:
            self.errors.append({"field": field, "code": code, "message": message})
        else:
            self.omitted += 1

    def unknown_arguments(self, names: Mapping[str, object]) -> None:
        for name in names:
            self.add(name, "unknown_argument", f"unexpected keyword argument {name!r}")
            self._unknown = True

    def raise_if_any(self) -> None:
        if self._unknown:
            raise UnknownArgumentError(self.errors, omitted=self.omitted)
        if self.errors:
            raise ValidationError(self.errors, omitted=self.omitted)


def fail(field: str, code: str, message: str) -> NoReturn:
    raise ValidationError([{"field": field, "code": code, "message": message}])


def _type_name(value: object) -> str:
    return type(value).__name__


def text_problem(value: str) -> tuple[str, str] | None:
    """The one check every text that is stored or sent goes through: (code, message) when
    ``value`` cannot be stored everywhere, else None.

    NUL cannot be stored by PostgreSQL (nor sent to providers). A lone surrogate (``"\\ud800"``,
    which JSON and Python strings allow) is not Unicode text: UTF-8 cannot encode it, so no
    database driver, provider or JSON response could take it."""
    if "\x00" in value:
        return "invalid_character", "must not contain the NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "invalid_unicode", "must be valid Unicode text (no lone surrogates)"
    return None


def check_text(value: str, problems: Problems, field: str) -> bool:
    """Report ``value`` if it cannot be stored everywhere (see ``text_problem``)."""
    problem = text_problem(value)
    if problem is None:
        return True
    problems.add(field, *problem)
    return False


def check_email(value: object, problems: Problems, field: str = "email") -> str | None:
    """A syntactically valid address (no DNS look-up), returned exactly as given."""
    if not isinstance(value, str):
        problems.add(field, "invalid_type", f"must be a string, not {_type_name(value)}")
        return None
    if not value:
        problems.add(field, "required", "must not be empty")
        return None
    if not check_text(value, problems, field):
        return None
    error = email_problem(value)
    if error is not None:
        problems.add(field, "invalid_email", error)
        return None
    return value


def email_problem(value: str) -> str | None:
    """Why ``validate_email(value, check_deliverability=False)`` rejects ``value`` (the
    message of its EmailNotValidError), or None when it accepts it.

    The common address (ASCII, one ``@``, a dot-atom before it and letters, digits, dots and
    hyphens after it) takes a fast path that makes exactly the calls ``validate_email`` makes
    for it, in its order, except that the domain's verdict (most of the cost: IDNA/UTS-46 work
    per character) is remembered per domain in a bounded cache: ``_checked_domain``. Every
    other address, and every email_validator other than the version this was checked against,
    goes through ``validate_email`` itself."""
    at = value.find("@")
    if (
        _FAST_EMAIL
        and at > 0
        and value.isascii()
        and value.find("@", at + 1) < 0
        and not email_validator.STRICT
    ):
        local, domain = value[:at], value[at + 1 :]
        # A dot-atom holds no quote, angle bracket or @-sign, and an ASCII character never
        # combines with the next one: split_email yields (None, local, local, False, domain),
        # validate_email_local_part accepts ``local`` as is (unless STRICT, for its length),
        # and NFC leaves it unchanged.
        if DOT_ATOM_TEXT.match(local) and _PLAIN_DOMAIN.match(domain):
            verdict = _checked_domain(
                domain,
                email_validator.TEST_ENVIRONMENT,
                email_validator.GLOBALLY_DELIVERABLE,
                tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES),
            )
            if len(verdict) == 1:
                return verdict[0]
            ascii_domain, normalized_domain = verdict[0], verdict[-1]
            if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
                local = local.lower()
            checked = ValidatedEmail()
            checked.original = value
            checked.local_part = checked.ascii_local_part = local
            checked.ascii_domain = ascii_domain
            checked.normalized = local + "@" + normalized_domain
            try:
                validate_email_length(checked)
            except EmailNotValidError as exc:
                return str(exc)
            return None
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


# The fast path mirrors email_validator 2.4.0's validate_email, read line by line, and was
# compared with it on ~120,000 generated addresses (also with TEST_ENVIRONMENT,
# GLOBALLY_DELIVERABLE and SPECIAL_USE_DOMAIN_NAMES changed): same verdicts, same messages.
# Another version takes the slow path until it is read again.
_FAST_EMAIL = email_validator.__version__ == "2.4.0"
_PLAIN_DOMAIN = re.compile(r"[A-Za-z0-9.\-]+\Z")
_DOMAIN_CACHE_SIZE = 4096


@lru_cache(maxsize=_DOMAIN_CACHE_SIZE)
def _checked_domain(
    domain: str, test_environment: bool, globally_deliverable: bool, special: tuple[str, ...]
) -> tuple[str] | tuple[str, str]:
    """validate_email_domain_name's verdict on ``domain`` under these settings (``special``:
    SPECIAL_USE_DOMAIN_NAMES, which it reads): (message,) if it rejects it, else its
    (ascii_domain, domain). A pure function of its arguments, hence the cache."""
    try:
        info = validate_email_domain_name(
            domain, test_environment=test_environment, globally_deliverable=globally_deliverable
        )
    except EmailNotValidError as exc:
        return (str(exc),)
    return info["ascii_domain"], info["domain"]


def _optional_text(value: object, problems: Problems, field: str) -> str | None:
    """``value`` when it is text fit to store; None when it is None, or is not (reported)."""
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add(field, "invalid_type", f"must be a string or None, not {_type_name(value)}")
        return None
    return value if check_text(value, problems, field) else None


def check_name(value: object, problems: Problems) -> str | None:
    """Trimmed; blank is an error (pass None to have no name)."""
    given = _optional_text(value, problems, "name")
    if given is None:
        return None
    name = given.strip()
    if not name:
        problems.add("name", "blank", "must not be blank (pass None to clear it)")
        return None
    if len(name) > MAX_NAME_LENGTH:
        problems.add("name", "too_long", f"must be at most {MAX_NAME_LENGTH} characters")
        return None
    return name


def check_phone(value: object, problems: Problems) -> str | None:
    """A valid number in international form, returned in E.164 (``+14155552671``)."""
    given = _optional_text(value, problems, "phone")
    if given is None:
        return None
    try:
        parsed = phonenumbers.parse(given, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        problems.add(
            "phone",
            "invalid_phone",
            "must be a valid phone number in international form, such as +14155552671",
        )
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def check_address(value: object, problems: Problems) -> Address | None:
    """An Address or a mapping with its fields; blank fields become None."""
    if value is None:
        return None
    if isinstance(value, Address):
        raw: Mapping[str, Any] = value.model_dump()
    elif isinstance(value, Mapping):
        raw = value
    else:
        problems.add(
            "address",
            "invalid_type",
            f"must be an Address, a dict or None, not {_type_name(value)}",
        )
        return None
    fields: dict[str, str | None] = {}
    ok = True
    for key, item in raw.items():
        path = f"address.{key}"
        if key not in ADDRESS_FIELDS:
            problems.add(path, "unknown_field", f"unknown address field {key!r}")
            ok = False
        elif item is None:
            fields[key] = None
        elif not isinstance(item, str):
            problems.add(path, "invalid_type", f"must be a string or None, not {_type_name(item)}")
            ok = False
        elif not check_text(item, problems, path):
            ok = False
        elif len(item.strip()) > MAX_ADDRESS_FIELD_LENGTH:
            problems.add(path, "too_long", f"must be at most {MAX_ADDRESS_FIELD_LENGTH} characters")
            ok = False
        else:
            fields[key] = item.strip() or None
    country = fields.get("country")
    if country is not None:
        country = country.upper()
        if country not in ISO_3166_ALPHA2:
            problems.add(
                "address.country",
                "invalid_country",
                "must be an ISO 3166-1 alpha-2 country code, such as US or BR",
            )
            ok = False
        fields["country"] = country
    if not ok or all(v is None for v in fields.values()):
        return None
    return Address(**fields)


def check_metadata_key(key: object, problems: Problems, field: str = "metadata") -> bool:
    if not isinstance(key, str):
        problems.add(field, "invalid_key", f"keys must be strings, not {_type_name(key)}")
        return False
    if not 1 <= len(key) <= MAX_METADATA_KEY_LENGTH:
        problems.add(
            f"{field}.{key}",
            "invalid_key",
            f"keys must be 1 to {MAX_METADATA_KEY_LENGTH} characters",
        )
        return False
    if "[" in key or "]" in key:
        problems.add(f"{field}.{key}", "invalid_key", "keys must not contain '[' or ']'")
        return False
    if not check_text(key, problems, f"{field}.{key}"):
        return False
    if key == RESERVED_METADATA_KEY:
        problems.add(f"{field}.{key}", "reserved_key", f"{key!r} is reserved for qzpay")
        return False
    return True


def check_metadata(
    value: object, problems: Problems, *, allow_none_values: bool, field: str = "metadata"
) -> dict[str, str | None]:
    """String keys and values within Stripe's limits; None values only where removal is allowed."""
    if not isinstance(value, Mapping):
        problems.add(field, "invalid_type", f"must be a dict, not {_type_name(value)}")
        return {}
    result: dict[str, str | None] = {}
    for key, item in value.items():
        if not check_metadata_key(key, problems, field):
            continue
        path = f"{field}.{key}"
        if item is None and allow_none_values:
            result[key] = None
        elif not isinstance(item, str):
            problems.add(path, "invalid_type", f"values must be strings, not {_type_name(item)}")
        elif not check_text(item, problems, path):
            pass
        elif not item:
            # Providers read "" as "remove this key": it could not survive a sync.
            problems.add(path, "empty_value", "values must not be empty (None removes a key)")
        elif len(item) > MAX_METADATA_VALUE_LENGTH:
            problems.add(
                path, "too_long", f"values must be at most {MAX_METADATA_VALUE_LENGTH} characters"
            )
        else:
            result[key] = item
    return result


def check_new_metadata(
    value: object, problems: Problems, field: str = "metadata"
) -> dict[str, str]:
    """Metadata where every value must be a string (create, and list filters)."""
    checked = check_metadata(value, problems, allow_none_values=False, field=field)
    return {key: item for key, item in checked.items() if item is not None}


def check_metadata_size(
    metadata: Mapping[str, str], problems: Problems, *, limit: int = MAX_METADATA_KEYS
) -> None:
    """At most 50 keys; 49 when a provider is configured, which stores our customer id in
    one of the provider's 50 metadata slots."""
    if len(metadata) > limit:
        problems.add("metadata", "too_many_keys", f"at most {limit} keys are allowed")


def check_idempotency_key(value: object, problems: Problems) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        problems.add(
            "idempotency_key",
            "invalid_idempotency_key",
            f"must be a string of 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
        )
        return None
    if not check_text(value, problems, "idempotency_key"):
        return None
    return value


def check_id(value: object, field: str = "customer_id") -> str:
    """Ids are opaque strings; anything else is a caller bug worth a clear error."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        fail(
            field, "invalid_id", f"must be a non-empty string of at most {MAX_ID_LENGTH} characters"
        )
    problem = text_problem(value)
    if problem is not None:
        fail(field, *problem)
    return value


def check_provider(value: object, problems: Problems, field: str = "provider") -> str | None:
    if not isinstance(value, str) or not _PROVIDER_NAME.fullmatch(value):
        problems.add(
            field,
            "invalid_provider",
            "must be a lowercase provider name such as 'stripe' (letters, digits, _ and -)",
        )
        return None
    return value


def check_page(limit: object, offset: object, problems: Problems) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        problems.add("limit", "out_of_range", f"must be an integer from 1 to {MAX_LIST_LIMIT}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        problems.add("offset", "out_of_range", f"must be an integer from 0 to {MAX_OFFSET}")
