"""``/plans`` and ``/prices``: the catalog over HTTP, thin routes onto ``billing.plans`` and
``billing.prices`` (same auth, problem+json and OpenAPI style as the customers' routes).

Plans and prices are archived, never deleted: ``POST /plans/{id}/archive`` (which archives
the plan's active prices too) and ``POST /prices/{id}/archive``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol, TypeVar

from fastapi import APIRouter, Path, Query

from qzpay.api.bodies import PartialUpdate, arguments
from qzpay.api.catalog_schemas import (
    PlanCreate,
    PlanList,
    PlanUpdate,
    PriceCreate,
    PriceList,
    PriceUpdate,
)
from qzpay.api.parameters import Active, id_query
from qzpay.api.records import Identified, RecordRoutes
from qzpay.api.routing import ProblemRoute, problems
from qzpay.billing import Billing
from qzpay.catalog.models import Plan, Price
from qzpay.limits import MAX_LOOKUP_KEY_LENGTH, MAX_SLUG_LENGTH

PlanKey = Annotated[
    str, Path(min_length=1, max_length=MAX_SLUG_LENGTH, description="The plan's key.")
]
LookupKey = Annotated[
    str, Path(min_length=1, max_length=MAX_LOOKUP_KEY_LENGTH, description="A lookup key.")
]
Currency = Annotated[str | None, Query(max_length=3, description="ISO 4217 code, any case.")]
R = TypeVar("R", bound=Identified)
R_co = TypeVar("R_co", bound=Identified, covariant=True)


def create_catalog_routers(
    billing: Billing, route: type[ProblemRoute]
) -> tuple[APIRouter, APIRouter]:
    """The ``plans`` and ``prices`` routers (one per tag), for ``create_router`` to put behind
    its API key."""
    plans = RecordRoutes(route, "plan", Plan, "A plan id (`plan_…`).")
    plans.create(
        PlanCreate,
        lambda body, key: billing.plans.create(**arguments(body), idempotency_key=key),
        summary="Create a plan",
        responses=problems(400, 409, 413, 422),
    )
    plans.listing(
        PlanList,
        billing.plans.list,
        summary="List plans, newest first",
        filters={"active": Active},
    )
    plans.lookup(
        "by-key",
        "key",
        PlanKey,
        billing.plans.get_by_key,
        summary="Get the plan with this key (archived ones too)",
        missing="no plan with key {!r}",
    )
    _add_archivable_routes(
        plans,
        billing.plans,
        PlanUpdate,
        update="Update a plan (absent fields unchanged, metadata merges)",
        archive="Archive a plan and its active prices (archiving twice is a no-op)",
    )

    prices = RecordRoutes(route, "price", Price, "A price id (`price_…`).")
    prices.create(
        PriceCreate,
        lambda body, key: billing.prices.create(**arguments(body), idempotency_key=key),
        summary="Create a price of a plan",
        responses=problems(400, 404, 409, 413, 422),
    )
    prices.listing(
        PriceList,
        billing.prices.list,
        summary="List prices, newest first",
        filters={
            "plan_id": Annotated[str | None, id_query("Only this plan's.")],
            "active": Active,
            "currency": Currency,
        },
    )
    prices.lookup(
        "by-lookup-key",
        "lookup_key",
        LookupKey,
        billing.prices.get_by_lookup_key,
        summary="Get the active price holding this lookup key",
        missing="no active price has lookup key {!r}",
    )
    _add_archivable_routes(
        prices,
        billing.prices,
        PriceUpdate,
        update="Update a price's lookup key or metadata (a lookup key moves)",
        archive="Archive a price (archiving twice is a no-op)",
    )
    return plans.router, prices.router


class _Archivable(Protocol[R_co]):
    """What ``billing.plans`` and ``billing.prices`` offer the routes they share."""

    async def get(self, record_id: str, /) -> R_co | None: ...

    async def archive(self, record_id: str, /) -> R_co: ...

    @property
    def update(self) -> Callable[..., Awaitable[R_co]]: ...


def _add_archivable_routes(
    records: RecordRoutes[R],
    service: _Archivable[R],
    body: type[PartialUpdate],
    *,
    update: str,
    archive: str,
) -> None:
    """``GET``, ``PATCH`` and ``POST …/archive`` on one plan or price: catalog records are
    archived, never deleted, and stay readable."""
    records.get(
        service.get, summary=f"Get a {records.noun} (archived ones too, with `active` false)"
    )
    records.update(
        body, service.update, summary=update, responses=problems(400, 404, 409, 413, 422)
    )
    records.action("archive", service.archive, summary=archive, responses=problems(404, 422))
