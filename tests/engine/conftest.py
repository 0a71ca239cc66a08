"""An engine for customers on each real storage backend (the ``billing`` fixture's storage)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from qzpay import Billing
from qzpay.customers.models import Customer
from qzpay.customers.resource import CUSTOMERS
from qzpay.engine.core import Engine
from qzpay.events import EventBus
from qzpay.ids import customer_ids


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def engine(billing: Billing, bus: EventBus) -> Engine[Customer]:
    return Engine(CUSTOMERS, billing.storage, bus)


def new_customer(email: str = "engine@example.com") -> Customer:
    now = datetime.now(UTC)
    return Customer(
        id=customer_ids.new(),
        email=email,
        metadata={},
        provider_customer_ids={},
        created_at=now,
        updated_at=now,
    )
