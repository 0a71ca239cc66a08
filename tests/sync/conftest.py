"""Fixtures for the sync tests (the suite-wide ones come from ``tests/conftest.py``)."""

from tests.support.stripe_sdk import stripe_sdk

__all__ = ["stripe_sdk"]
