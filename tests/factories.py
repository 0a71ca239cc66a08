"""Factories: valid arguments by default, overridden per test."""

from __future__ import annotations

import itertools
from typing import Any

from qzpay import Billing, Customer

_sequence = itertools.count(1)


def customer_args(**overrides: Any) -> dict[str, Any]:
    n = next(_sequence)
    args: dict[str, Any] = {
        "email": f"user{n}@example.com",
        "name": f"User {n}",
        "metadata": {"userId": f"usr_{n}"},
    }
    args.update(overrides)
    return args


async def create_customer(billing: Billing, **overrides: Any) -> Customer:
    return await billing.customers.create(**customer_args(**overrides))
