"""``/plans`` and ``/prices``: the catalog over HTTP, thin routes onto ``billing.plans`` and
``billing.prices`` (same auth, problem+json and OpenAPI style as the customers' routes).

Plans and prices are archived, never deleted: ``POST /plans/{id}/archive`` (which archives
the plan's active prices too) and ``POST /prices/{id}/archive``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response

from qzpay.api.catalog_schemas import (
    PlanCreate,
    PlanList,
    PlanUpdate,
    PriceCreate,
    PriceList,
    PriceUpdate,
)
from qzpay.api.routing import ProblemRoute, problem_router, problems
from qzpay.billing import Billing
from qzpay.catalog.models import Plan, Price
from qzpay.errors import NotFoundError
from qzpay.limits import (
    DEFAULT_LIST_LIMIT,
    MAX_ID_LENGTH,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_LIST_LIMIT,
    MAX_LOOKUP_KEY_LENGTH,
    MAX_OFFSET,
    MAX_SLUG_LENGTH,
)

PlanId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="A plan id (`plan_…`).")
]
PriceId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="A price id (`price_…`).")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Skip this many matches.")]
Active = Annotated[
    bool | None,
    Query(description="`true`: only live records; `false`: only archived ones; absent: all."),
]


def _idempotency_header(what: str) -> object:
    return Header(
        alias="Idempotency-Key",
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description=(
            f"Makes the create safe to retry: a retry with the same key returns the first "
            f"call's {what}; the same key with different fields is a 409."
        ),
    )


def create_catalog_routers(
    billing: Billing, route: type[ProblemRoute]
) -> tuple[APIRouter, APIRouter]:
    """The ``plans`` and ``prices`` routers (one per tag), for ``create_router`` to put behind
    its API key."""
    plan_routes = problem_router(route, tags=["plans"])
    price_routes = problem_router(route, tags=["prices"])

    # -- plans -----------------------------------------------------------------------------

    @plan_routes.post(
        "/plans",
        status_code=201,
        response_model=Plan,
        summary="Create a plan",
        responses=problems(400, 409, 413, 422),
    )
    async def create_plan(
        body: PlanCreate,
        request: Request,
        response: Response,
        idempotency_key: Annotated[str | None, _idempotency_header("plan")] = None,
    ) -> Plan:
        plan = await billing.plans.create(
            body.key,
            body.name,
            description=body.description,
            entitlements=body.entitlements,
            limits=body.limits,
            metadata=body.metadata,
            idempotency_key=idempotency_key,
        )
        response.headers["Location"] = str(request.url_for("qzpay_get_plan", plan_id=plan.id))
        return plan

    @plan_routes.get(
        "/plans",
        response_model=PlanList,
        summary="List plans, newest first",
        responses=problems(422),
    )
    async def list_plans(
        active: Active = None,
        limit: Limit = DEFAULT_LIST_LIMIT,
        offset: Offset = 0,
    ) -> PlanList:
        page = await billing.plans.list(active=active, limit=limit, offset=offset)
        return PlanList.from_page(page)

    @plan_routes.get(
        "/plans/by-key/{key}",
        response_model=Plan,
        summary="Get the plan with this key (archived ones too)",
        responses=problems(404, 422),
    )
    async def get_plan_by_key(
        key: Annotated[
            str,
            Path(min_length=1, max_length=MAX_SLUG_LENGTH, description="The plan's key."),
        ],
    ) -> Plan:
        plan = await billing.plans.get_by_key(key)
        if plan is None:
            raise NotFoundError(f"no plan with key {key!r}")
        return plan

    @plan_routes.get(
        "/plans/{plan_id}",
        name="qzpay_get_plan",
        response_model=Plan,
        summary="Get a plan (archived ones too, with `active` false)",
        responses=problems(404, 422),
    )
    async def get_plan(plan_id: PlanId) -> Plan:
        plan = await billing.plans.get(plan_id)
        if plan is None:
            raise NotFoundError(f"no plan {plan_id!r}")
        return plan

    @plan_routes.patch(
        "/plans/{plan_id}",
        response_model=Plan,
        summary="Update a plan (absent fields unchanged, metadata merges)",
        responses=problems(400, 404, 409, 413, 422),
    )
    async def update_plan(plan_id: PlanId, body: PlanUpdate) -> Plan:
        return await billing.plans.update(plan_id, **body.changes())

    @plan_routes.post(
        "/plans/{plan_id}/archive",
        response_model=Plan,
        summary="Archive a plan and its active prices (archiving twice is a no-op)",
        responses=problems(404, 422),
    )
    async def archive_plan(plan_id: PlanId) -> Plan:
        return await billing.plans.archive(plan_id)

    # -- prices ----------------------------------------------------------------------------

    @price_routes.post(
        "/prices",
        status_code=201,
        response_model=Price,
        summary="Create a price of a plan",
        responses=problems(400, 404, 409, 413, 422),
    )
    async def create_price(
        body: PriceCreate,
        request: Request,
        response: Response,
        idempotency_key: Annotated[str | None, _idempotency_header("price")] = None,
    ) -> Price:
        price = await billing.prices.create(
            body.plan_id,
            currency=body.currency,
            unit_amount=body.unit_amount,
            interval=body.interval,
            interval_count=body.interval_count,
            trial_days=body.trial_days,
            lookup_key=body.lookup_key,
            metadata=body.metadata,
            idempotency_key=idempotency_key,
        )
        response.headers["Location"] = str(request.url_for("qzpay_get_price", price_id=price.id))
        return price

    @price_routes.get(
        "/prices",
        response_model=PriceList,
        summary="List prices, newest first",
        responses=problems(422),
    )
    async def list_prices(
        plan_id: Annotated[
            str | None,
            Query(min_length=1, max_length=MAX_ID_LENGTH, description="Only this plan's."),
        ] = None,
        active: Active = None,
        currency: Annotated[
            str | None, Query(max_length=3, description="ISO 4217 code, any case.")
        ] = None,
        limit: Limit = DEFAULT_LIST_LIMIT,
        offset: Offset = 0,
    ) -> PriceList:
        page = await billing.prices.list(
            plan_id=plan_id, active=active, currency=currency, limit=limit, offset=offset
        )
        return PriceList.from_page(page)

    @price_routes.get(
        "/prices/by-lookup-key/{lookup_key}",
        response_model=Price,
        summary="Get the active price holding this lookup key",
        responses=problems(404, 422),
    )
    async def get_price_by_lookup_key(
        lookup_key: Annotated[
            str,
            Path(min_length=1, max_length=MAX_LOOKUP_KEY_LENGTH, description="A lookup key."),
        ],
    ) -> Price:
        price = await billing.prices.get_by_lookup_key(lookup_key)
        if price is None:
            raise NotFoundError(f"no active price has lookup key {lookup_key!r}")
        return price

    @price_routes.get(
        "/prices/{price_id}",
        name="qzpay_get_price",
        response_model=Price,
        summary="Get a price (archived ones too, with `active` false)",
        responses=problems(404, 422),
    )
    async def get_price(price_id: PriceId) -> Price:
        price = await billing.prices.get(price_id)
        if price is None:
            raise NotFoundError(f"no price {price_id!r}")
        return price

    @price_routes.patch(
        "/prices/{price_id}",
        response_model=Price,
        summary="Update a price's lookup key or metadata (a lookup key moves)",
        responses=problems(400, 404, 409, 413, 422),
    )
    async def update_price(price_id: PriceId, body: PriceUpdate) -> Price:
        return await billing.prices.update(price_id, **body.changes())

    @price_routes.post(
        "/prices/{price_id}/archive",
        response_model=Price,
        summary="Archive a price (archiving twice is a no-op)",
        responses=problems(404, 422),
    )
    async def archive_price(price_id: PriceId) -> Price:
        return await billing.prices.archive(price_id)

    return plan_routes, price_routes
