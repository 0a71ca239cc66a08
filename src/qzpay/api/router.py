"""``create_router``: the qzpay HTTP API as a FastAPI router, to mount in any FastAPI app.

Routes are thin: they translate HTTP to calls on ``billing.customers`` / ``billing.events`` and
back. Every error, including FastAPI's own request validation errors, leaves as RFC 9457
problem+json through ``ProblemRoute``, so the router behaves the same in any host app, whatever
exception handlers that app has.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from qzpay.api.auth import APIKeyAuth, require_api_key
from qzpay.api.bodies import arguments
from qzpay.api.catalog_routes import create_catalog_routers
from qzpay.api.parameters import id_path, id_query
from qzpay.api.problems import problem_responses
from qzpay.api.records import RecordRoutes, found
from qzpay.api.routing import problem_router, problems, route_class
from qzpay.api.schemas import (
    CustomerCreate,
    CustomerList,
    CustomerUpdate,
    EventList,
    Health,
)
from qzpay.api.subscription_routes import create_subscription_routers
from qzpay.api.webhook_routes import create_webhook_router
from qzpay.billing import Billing
from qzpay.customers.models import Customer
from qzpay.customers.service import scan_filters
from qzpay.errors import FieldError, ValidationError
from qzpay.limits import (
    DEFAULT_EVENT_PAGE,
    DEFAULT_LIST_LIMIT,
    DEFAULT_MAX_BODY_BYTES,
    MAX_EVENT_PAGE,
    MAX_LIST_LIMIT,
)

logger = logging.getLogger("qzpay.api")

METADATA_PARAMETER: dict[str, Any] = {
    "name": "metadata",
    "in": "query",
    "style": "deepObject",
    "explode": True,
    "required": False,
    "description": (
        "Metadata filter, repeatable: `metadata[userId]=usr_123&metadata[plan]=pro`. Every pair "
        "must match."
    ),
    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
}


def _metadata_filter(request: Request) -> dict[str, str] | None:
    """``metadata[<key>]=<value>`` query parameters as a dict (None when there are none)."""
    found: dict[str, str] = {}
    problems: list[FieldError] = []
    for name, value in request.query_params.multi_items():
        if name == "metadata" or (name.startswith("metadata[") and not name.endswith("]")):
            problems.append(
                {
                    "field": name,
                    "code": "invalid_filter",
                    "message": "filter by metadata as metadata[<key>]=<value>",
                }
            )
        elif name.startswith("metadata[") and name.endswith("]"):
            key = name[len("metadata[") : -1]
            if key in found:
                problems.append(
                    {
                        "field": f"metadata.{key}",
                        "code": "duplicate_filter",
                        "message": "each metadata key may be given once",
                    }
                )
            found[key] = value
    if problems:
        raise ValidationError(problems)
    return found or None


CUSTOMER_ID = "A customer id (`cus_…`)."
CustomerId = Annotated[str, id_path(CUSTOMER_ID)]


def create_router(
    billing: Billing,
    *,
    auth: APIKeyAuth | None,
    webhooks: bool = True,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> APIRouter:
    """The qzpay API bound to ``billing``.

    ``auth`` is required: an ``APIKeyAuth`` to demand ``Authorization: Bearer <key>`` on every
    route except ``/health`` and ``POST /webhooks/{provider}``, or ``None`` to add none (when
    the host app authenticates itself, e.g.
    ``app.include_router(router, dependencies=[Depends(my_auth)])``).

    ``webhooks=False`` leaves out ``POST /webhooks/{provider}``, for host apps that put the
    router behind their own authentication: payment providers cannot authenticate that way,
    so mount ``create_webhook_router(billing)`` separately, outside it.

    Every route refuses a request body over ``max_body_bytes`` (1 MiB by default) with a 413
    problem (``payload_too_large``): before reading it when ``Content-Length`` says so, else
    (chunked) as soon as that many bytes have arrived; nothing is created or changed.

    The router never opens or closes ``billing``: whoever created it does (``create_app`` does
    it in its lifespan).
    """
    capped = route_class(max_body_bytes)
    # One router per tag (the tag said once); all but health's go under ``api``, the key's.
    health_routes = problem_router(capped, tags=["health"])
    customers = RecordRoutes(capped, "customer", Customer, CUSTOMER_ID)
    customer_routes = customers.router
    event_routes = problem_router(capped, tags=["events"])

    @health_routes.get(
        "/health",
        response_model=Health,
        summary="Liveness and storage reachability (no API key needed)",
        responses=problem_responses(500, 503),
    )
    async def health() -> Health:
        # A primary-key read: cheap, and it fails (503) when the database cannot be reached.
        await billing.customers.get("cus_health_check")
        return Health()

    # -- customers -------------------------------------------------------------------------

    customers.create(
        CustomerCreate,
        lambda body, key: billing.customers.create(**arguments(body), idempotency_key=key),
        summary="Create a customer",
        responses=problems(400, 409, 413, 422, 502),
    )

    @customer_routes.get(
        "/customers",
        response_model=CustomerList,
        summary="List customers, newest first",
        responses=problems(422),
        openapi_extra={"parameters": [METADATA_PARAMETER]},
    )
    async def list_customers(
        request: Request,
        limit: Annotated[
            int, Query(ge=1, le=MAX_LIST_LIMIT, description="Page size.")
        ] = DEFAULT_LIST_LIMIT,
        offset: Annotated[
            int | None,
            Query(ge=0, description="Skip this many matches (not with `starting_after`)."),
        ] = None,
        email: Annotated[str | None, Query(description="Exact email, case-insensitive.")] = None,
        include_deleted: Annotated[
            bool, Query(description="Include soft-deleted customers.")
        ] = False,
        starting_after: Annotated[
            str | None,
            id_query(
                "Cursor: return the customers after this one (the previous page's "
                "`next_cursor`). Keyset paging, as cheap at any depth."
            ),
        ] = None,
    ) -> CustomerList:
        metadata = _metadata_filter(request)
        if starting_after is None:
            page = await billing.customers.list(
                limit=limit,
                offset=offset or 0,
                email=email,
                metadata=metadata,
                include_deleted=include_deleted,
            )
            cursor = page.data[-1].id if page.has_more and page.data else None
            return CustomerList.from_page(page, cursor)
        if offset is not None:
            raise ValidationError(
                [
                    {
                        "field": "offset",
                        "code": "conflicting_parameters",
                        "message": "use either offset or starting_after, not both",
                    }
                ]
            )
        filters = scan_filters(email, metadata, include_deleted, limit + 1, {})
        batch = await billing.customers.scan_page(filters, starting_after, limit + 1)
        counted = await billing.customers.list(
            limit=1, email=email, metadata=metadata, include_deleted=include_deleted
        )
        has_more = len(batch) > limit
        data = batch[:limit]
        return CustomerList(
            data=data,
            total=counted.total,
            limit=limit,
            offset=0,
            has_more=has_more,
            next_cursor=data[-1].id if has_more else None,
        )

    @customer_routes.get(
        "/customers/by-provider-id/{provider_customer_id}",
        response_model=Customer,
        summary="Find the customer a payment provider knows by this id",
        responses=problems(404, 409, 422),
    )
    async def get_customer_by_provider_id(
        provider_customer_id: Annotated[str, id_path("The provider's customer id.")],
        provider: Annotated[
            str | None,
            Query(
                description=(
                    "The provider (`stripe`, ...); needed when the id is linked at several."
                ),
            ),
        ] = None,
    ) -> Customer:
        customer = await billing.customers.get_by_external_id(
            provider_customer_id, provider=provider
        )
        return found(customer, f"no customer is linked to {provider_customer_id!r}")

    customers.get(
        billing.customers.get, summary="Get a customer (deleted ones too, with `deleted_at` set)"
    )
    customers.update(
        CustomerUpdate,
        billing.customers.update,
        summary="Update a customer (absent fields unchanged, null clears, metadata merges)",
        responses=problems(400, 404, 409, 413, 422, 502),
    )

    @customer_routes.delete(
        "/customers/{customer_id}",
        status_code=204,
        response_class=Response,
        summary="Delete a customer (soft; deleting twice is a no-op)",
        responses=problems(404, 422, 502),
    )
    async def delete_customer(customer_id: CustomerId) -> Response:
        await billing.customers.delete(customer_id)
        return Response(status_code=204)

    # -- events ----------------------------------------------------------------------------

    @event_routes.get(
        "/events",
        response_model=EventList,
        summary="Read the durable event log, in commit order",
        responses=problems(404, 422),
    )
    async def list_events(
        after: Annotated[
            str | None, id_query("Return events after this event id (404 if unknown).")
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=MAX_EVENT_PAGE, description="At most this many.")
        ] = DEFAULT_EVENT_PAGE,
    ) -> EventList:
        events = await billing.events.list(after=after, limit=limit)
        return EventList(data=events, next_after=events[-1].id if events else after)

    # -- webhooks --------------------------------------------------------------------------
    # On ``public``: providers cannot send our API key; the signature is the authentication.
    public = problem_router(capped)
    public.include_router(health_routes)
    if webhooks:
        public.include_router(create_webhook_router(billing, max_body_bytes=max_body_bytes))

    api = problem_router(
        capped,
        dependencies=[Depends(require_api_key(auth))] if auth is not None else [],
        responses=problem_responses(401) if auth is not None else {},
    )
    api.include_router(customer_routes)
    plan_routes, price_routes = create_catalog_routers(billing, capped)
    api.include_router(plan_routes)
    api.include_router(price_routes)
    subscription_routes, entitlement_routes = create_subscription_routers(billing, capped)
    api.include_router(subscription_routes)
    api.include_router(entitlement_routes)
    api.include_router(event_routes)

    router = problem_router(capped)
    router.include_router(public)
    router.include_router(api)
    return router
