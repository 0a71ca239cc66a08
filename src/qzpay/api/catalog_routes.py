"""``/plans`` and ``/prices``: the catalog over HTTP, thin routes onto ``billing.plans`` and
``billing.prices`` (same auth, problem+json and OpenAPI style as the customers' routes).

Plans and prices are archived, never deleted: ``POST /plans/{id}/archive`` (which archives
the plan's active prices too) and ``POST /prices/{id}/archive``.
"""

from __future__ import annotations

from inspect import Parameter, Signature
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel

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

    _add_record_routes(
        plan_routes,
        billing.plans,
        noun="plan",
        model=Plan,
        record_id=PlanId,
        update_body=PlanUpdate,
        update_summary="Update a plan (absent fields unchanged, metadata merges)",
        archive_summary="Archive a plan and its active prices (archiving twice is a no-op)",
    )

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

    _add_record_routes(
        price_routes,
        billing.prices,
        noun="price",
        model=Price,
        record_id=PriceId,
        update_body=PriceUpdate,
        update_summary="Update a price's lookup key or metadata (a lookup key moves)",
        archive_summary="Archive a price (archiving twice is a no-op)",
    )
    return plan_routes, price_routes


def _add_record_routes(
    router: APIRouter,
    records: Any,
    *,
    noun: str,
    model: type[BaseModel],
    record_id: object,
    update_body: type[BaseModel],
    update_summary: str,
    archive_summary: str,
) -> None:
    """``GET``, ``PATCH`` and ``POST …/archive`` on ``/{noun}s/{{noun}_id}``, the routes plans
    and prices share: ``records`` (``billing.plans``, ``billing.prices``) does the work. The
    endpoints take the id under its own name (``plan_id``), so the OpenAPI document names it."""
    id_name = f"{noun}_id"
    path = f"/{noun}s/{{{id_name}}}"
    id_parameter = Parameter(id_name, Parameter.KEYWORD_ONLY, annotation=record_id)

    async def get(**given: str) -> Any:
        found = await records.get(given[id_name])
        if found is None:
            raise NotFoundError(f"no {noun} {given[id_name]!r}")
        return found

    async def update(**given: Any) -> Any:
        return await records.update(given[id_name], **given["body"].changes())

    async def archive(**given: str) -> Any:
        return await records.archive(given[id_name])

    body_parameter = Parameter("body", Parameter.KEYWORD_ONLY, annotation=update_body)
    for endpoint, parameters in (
        (get, [id_parameter]),
        (update, [id_parameter, body_parameter]),
        (archive, [id_parameter]),
    ):
        # The handler's name is its OpenAPI operationId (``get_plan``, ``archive_price``).
        endpoint.__name__ = endpoint.__qualname__ = f"{endpoint.__name__}_{noun}"
        endpoint.__signature__ = Signature(parameters, return_annotation=model)  # type: ignore[union-attr]
    router.get(
        path,
        name=f"qzpay_get_{noun}",
        response_model=model,
        summary=f"Get a {noun} (archived ones too, with `active` false)",
        responses=problems(404, 422),
    )(get)
    router.patch(
        path,
        response_model=model,
        summary=update_summary,
        responses=problems(400, 404, 409, 413, 422),
    )(update)
    router.post(
        f"{path}/archive",
        response_model=model,
        summary=archive_summary,
        responses=problems(404, 422),
    )(archive)
