"""SyncBilling's blocking methods are derived from the async services: same parameters, same
docs, and nothing public on a service is missing from its twin."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import pytest

from qzpay import Billing, SyncBilling
from qzpay.errors import ValidationError

# Coroutine methods other services call (webhooks apply through customers, catalog.apply
# replaces prices); not user API.
FOR_OTHER_SERVICES = {"scan_page", "apply_remote", "apply_webhook", "record_webhook", "replace"}


def _public_methods(obj: object) -> Iterator[str]:
    """Coroutine methods, and ``list`` and ``iterate``, which return a PageRead or KeysetWalk
    (arguments checked at the call) rather than being coroutine functions."""
    for name in dir(obj):
        if name.startswith("_") or not callable(method := getattr(obj, name)):
            continue
        returns = str(inspect.signature(method).return_annotation)
        if inspect.iscoroutinefunction(method) or returns.startswith(("PageRead[", "KeysetWalk[")):
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
    "resource",
    ["customers", "plans", "prices", "catalog", "subscriptions", "events", "webhooks"],
)
def test_every_async_method_has_a_blocking_twin_with_its_parameters(pair, resource):
    service, twin = (getattr(side, resource) for side in pair)
    names = [n for n in _public_methods(service) if n not in FOR_OTHER_SERVICES]
    assert names, "the service exposes no coroutine methods"
    if resource in ("customers", "plans", "prices", "subscriptions"):
        assert {"list", "iterate"} <= set(names)
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


async def test_list_is_a_coroutine_that_checks_its_arguments_when_awaited(tmp_path):
    billing = Billing(f"sqlite:///{tmp_path / 'pages.db'}")
    async with billing:
        created = [await billing.customers.create(email=f"p{i}@example.com") for i in range(3)]
        refused = billing.customers.list(limit=0)  # as when list was a coroutine function
        with pytest.raises(ValidationError) as caught:
            await refused
        assert caught.value.errors[0]["field"] == "limit"
        page = await asyncio.create_task(billing.customers.list(limit=2))
        assert [c.id for c in page] == [c.id for c in reversed(created)][:2]
        assert (page.total, page.has_more) == (3, True)
        gathered = await asyncio.gather(billing.plans.list(), billing.subscriptions.list())
        assert [len(p) for p in gathered] == [0, 0]
        with pytest.warns(RuntimeWarning, match="never awaited"):
            billing.prices.list()  # forgotten await: warned when dropped, as a coroutine is


def test_blocking_list_reads_the_page_the_service_describes(pair):
    _, twin = pair
    created = [twin.customers.create(email=f"b{i}@example.com") for i in range(3)]
    page = twin.customers.list(limit=1, offset=1)
    assert [c.id for c in page] == [created[1].id]
    assert (page.total, page.limit, page.offset, page.has_more) == (3, 1, 1, True)
    with pytest.raises(ValidationError):
        twin.customers.list(offset=-1)
    assert twin.plans.list().total == 0


@pytest.mark.parametrize(
    ("resource", "item"),
    [
        ("customers", "Customer"),
        ("plans", "Plan"),
        ("prices", "Price"),
        ("subscriptions", "Subscription"),
    ],
)
def test_blocking_reads_show_what_they_return(pair, resource, item):
    twin = getattr(pair[1], resource)
    assert str(inspect.signature(twin.list).return_annotation) == f"Page[{item}]"
    assert str(inspect.signature(twin.iterate).return_annotation) == f"Iterator[{item}]"
