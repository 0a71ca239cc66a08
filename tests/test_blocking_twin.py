"""SyncBilling's blocking methods are derived from the async services: same parameters, same
docs, and nothing public on a service is missing from its twin."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

from qzpay import Billing, SyncBilling

# Coroutine methods other services call (webhooks apply through customers, catalog.apply
# replaces prices); not user API.
FOR_OTHER_SERVICES = {"scan_page", "apply_remote", "record_webhook", "replace"}


def _public_methods(obj: object) -> Iterator[str]:
    for name in dir(obj):
        if not name.startswith("_") and inspect.iscoroutinefunction(getattr(obj, name)):
            yield name


def _parameters(function: object) -> list[tuple[str, object, object]]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.fixture
def pair(tmp_path) -> Iterator[tuple[Billing, SyncBilling]]:
    blocking = SyncBilling(f"sqlite:///{tmp_path / 'twin.db'}")
    try:
        yield blocking._billing, blocking
    finally:
        blocking.close()


@pytest.mark.parametrize(
    "resource", ["customers", "plans", "prices", "catalog", "events", "webhooks"]
)
def test_every_async_method_has_a_blocking_twin_with_its_parameters(pair, resource):
    service, twin = (getattr(side, resource) for side in pair)
    names = [n for n in _public_methods(service) if n not in FOR_OTHER_SERVICES]
    assert names, "the service exposes no coroutine methods"
    for name in names:
        assert hasattr(twin, name), f"SyncBilling.{resource}.{name} is missing"
        assert _parameters(getattr(twin, name)) == _parameters(getattr(service, name)), name


def test_derived_methods_carry_the_service_docstring(pair):
    service, twin = pair
    assert twin.customers.create.__doc__ == service.customers.create.__doc__
    assert twin.customers.create.__doc__


def test_blocking_twin_runs_the_service(pair):
    _, twin = pair
    customer = twin.customers.create(email="twin@example.com")
    assert twin.customers.get(customer.id) == customer
    assert twin.customers.update(customer.id, name="Twin").name == "Twin"
    assert [e.type for e in twin.events.list()] == ["customer.created", "customer.updated"]
