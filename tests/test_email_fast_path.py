"""The email check's fast path gives exactly email_validator's answer.

``customers.validation.email_problem`` answers common addresses without the full
``validate_email`` call (a create spent ~25 µs there, ~46 % of its time) and caches the domain
check. It must accept, reject and word its errors exactly as ``validate_email(...,
check_deliverability=False)`` does, also when email_validator's module settings change; this
compares both on a deterministic mix of hand-picked edge cases and random strings.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator

import email_validator
import pytest
from email_validator import EmailNotValidError, validate_email

from qzpay.customers.validation import email_problem

LOCAL_PARTS = ["a", "user", "User.Name", "a..b", ".a", "a.", "x" * 64, "x" * 65, "a+b", "",
               "a b", '"q"', "ü", "a@b", "a!#$%&'*+/=?^_`{|}~-"]  # fmt: skip
DOMAINS = ["example.com", "EXAMPLE.COM", "localhost", "test", "a.test", "x.local", "ex-ample.com",
           "-ex.com", "ex-.com", "ex..com", ".ex.com", "ex.com.", "ab--cd.com", "xn--bcher-kva.com",
           "xn--abc.com", "a.123", "a." + "b" * 63 + ".com", "a." + "b" * 64 + ".com", "com",
           "1.2.3.4", "[1.2.3.4]", "", "ex.onion", "x.arpa", "a.invalid", "ex.c0m",
           "x" * 250 + ".com"]  # fmt: skip


def _reference(address: str) -> str | None:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def _cases() -> Iterator[str]:
    yield from (f"{local}@{domain}" for local in LOCAL_PARTS for domain in DOMAINS)
    rng = random.Random(20261201)
    alphabet = string.ascii_letters + string.digits + '.-@+_"<> []\\\n\x7fü'
    for _ in range(1500):
        yield "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        host = "".join(
            rng.choice(string.ascii_lowercase + ".-0") for _ in range(rng.randint(0, 20))
        )
        yield f"{rng.choice(LOCAL_PARTS)}@{host}"


@pytest.mark.parametrize("settings", ["default", "test_environment", "stricter_domains"])
def test_email_fast_path_agrees_with_email_validator(
    settings: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if settings == "test_environment":
        monkeypatch.setattr(email_validator, "TEST_ENVIRONMENT", True)
    elif settings == "stricter_domains":
        monkeypatch.setattr(email_validator, "GLOBALLY_DELIVERABLE", False)
        monkeypatch.setattr(
            email_validator,
            "SPECIAL_USE_DOMAIN_NAMES",
            [*email_validator.SPECIAL_USE_DOMAIN_NAMES, "example.com"],
        )
    differences = [
        (case, email_problem(case), _reference(case))
        for case in _cases()
        if email_problem(case) != _reference(case)
    ]
    assert differences == []
