"""The shared route builders: a request body is the parameter object of the library call it
feeds, so its field names must be that call's parameters; the generated routes pass every
filter and answer a missing record with 404."""

from __future__ import annotations

from collections.abc import Callable
from inspect import Parameter, signature
from typing import Any

import pytest
from pydantic import BaseModel

from qzpay import Billing
from qzpay.api import create_router
from qzpay.api.bodies import PageBody, PartialUpdate, arguments
from qzpay.api.catalog_schemas import PlanCreate, PlanUpdate, PriceCreate, PriceUpdate
from qzpay.api.records import found
from qzpay.api.schemas import CustomerCreate, CustomerUpdate
from qzpay.api.subscription_schemas import SubscriptionCreate
from qzpay.catalog.plans import PlanService
from qzpay.catalog.prices import PriceService
from qzpay.customers.service import CustomerService
from qzpay.errors import NotFoundError
from qzpay.page import Page
from qzpay.subscriptions.service import SubscriptionService


def _by_name(function: Callable[..., Any]) -> set[str]:
    kinds = (Parameter.POSITIONAL_OR_KEYWORD, Parameter.KEYWORD_ONLY)
    return {p.name for p in signature(function).parameters.values() if p.kind in kinds}


@pytest.mark.parametrize(
    ("body", "call"),
    [
        (CustomerCreate, CustomerService.create),
        (PlanCreate, PlanService.create),
        (PriceCreate, PriceService.create),
        (CustomerUpdate, CustomerService.update),
        (PlanUpdate, PlanService.update),
        (PriceUpdate, PriceService.update),
    ],
)
def test_a_body_names_only_parameters_of_its_call(
    body: type[BaseModel], call: Callable[..., Any]
) -> None:
    assert set(body.model_fields) <= _by_name(call) - {"self"}


def test_a_subscription_body_leaves_out_the_positional_ids() -> None:
    positional = {
        p.name
        for p in signature(SubscriptionService.create).parameters.values()
        if p.kind is Parameter.POSITIONAL_ONLY
    } - {"self"}
    assert positional == {"customer_id", "price_id"}
    assert set(SubscriptionCreate.model_fields) - positional <= _by_name(SubscriptionService.create)


def test_arguments_keep_parsed_values_and_leave_out_what_is_asked() -> None:
    body = CustomerCreate.model_validate({"email": "a@example.com", "address": {"country": "US"}})
    given = arguments(body, leave_out={"phone"})
    assert set(given) == {"email", "name", "address", "metadata"}
    assert given["address"] is body.address


def test_changes_are_the_fields_sent_with_an_explicit_null() -> None:
    assert PlanUpdate.model_validate({"description": None}).changes() == {"description": None}
    assert isinstance(PlanUpdate(), PartialUpdate)
    assert PlanUpdate().changes() == {}


def test_found_passes_a_record_and_turns_none_into_not_found() -> None:
    assert found("plan", "unused") == "plan"
    with pytest.raises(NotFoundError, match="no plan 'x'"):
        found(None, "no plan 'x'")


def test_a_page_body_holds_the_page() -> None:
    class Numbers(PageBody[int]):
        pass

    page = Page[int](data=[3, 2], total=5, limit=2, offset=0, has_more=True)
    assert Numbers.from_page(page).model_dump() == page.model_dump()


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("list_plans", PlanService.list),
        ("list_prices", PriceService.list),
        ("list_subscriptions", SubscriptionService.list),
    ],
)
def test_a_list_route_passes_parameters_its_call_takes(
    operation: str, call: Callable[..., Any]
) -> None:
    router = create_router(Billing("memory://"), auth=None, webhooks=False)
    assert _by_name(_endpoints(router.routes)[operation]) <= _by_name(call)


def _endpoints(routes: list[Any]) -> dict[str, Callable[..., Any]]:
    """Handlers by name, through included routers (kept whole or copied, by FastAPI version)."""
    found: dict[str, Callable[..., Any]] = {}
    for route in routes:
        if hasattr(route, "original_router"):
            found |= _endpoints(route.original_router.routes)
        elif hasattr(route, "endpoint"):
            found[route.endpoint.__name__] = route.endpoint
    return found
