"""``/subscriptions`` and a customer's entitlements and limits over HTTP: thin routes onto
``billing.subscriptions``, ``billing.entitlements`` and ``billing.limits`` (same auth,
problem+json and OpenAPI style as the customers' and the catalog's routes).

A subscription is never deleted: it ends (``POST /subscriptions/{id}/cancel``) and stays
readable. Every change answers the subscription as it is after the change; a change that
changes nothing (cancelling twice, resuming one not paused) answers it unchanged.

The entitlement reads never 404: an unknown customer simply may use nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from fastapi.types import DecoratedCallable

from qzpay.api.bodies import arguments
from qzpay.api.parameters import id_path, id_query
from qzpay.api.records import RecordRoutes
from qzpay.api.routing import ProblemRoute, problem_router, problems
from qzpay.api.subscription_schemas import (
    KEY_RULE,
    EntitlementCheck,
    Entitlements,
    LimitValue,
    SubscriptionCancel,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionPriceChange,
)
from qzpay.billing import Billing
from qzpay.limits import MAX_SLUG_LENGTH
from qzpay.subscriptions.models import Subscription, SubscriptionStatus

SUBSCRIPTION_ID = "A subscription id (`sub_…`)."
SubscriptionId = Annotated[str, id_path(SUBSCRIPTION_ID)]
CustomerId = Annotated[str, id_path("A customer id (`cus_…`).")]
Key = Annotated[str, Path(min_length=1, max_length=MAX_SLUG_LENGTH, description=KEY_RULE)]

AT_PERIOD_END = SubscriptionCancel()
"""What ``POST /subscriptions/{id}/cancel`` without a body asks for."""


def create_subscription_routers(
    billing: Billing, route: type[ProblemRoute]
) -> tuple[APIRouter, APIRouter]:
    """The ``subscriptions`` and ``entitlements`` routers (one per tag), for ``create_router``
    to put behind its API key."""
    service = billing.subscriptions
    subscriptions = RecordRoutes(route, "subscription", Subscription, SUBSCRIPTION_ID)

    async def subscribe(body: SubscriptionCreate, key: str | None) -> Subscription:
        """``create`` takes the customer and the price positionally, the rest by name."""
        options = arguments(body, leave_out={"customer_id", "price_id"})
        return await service.create(body.customer_id, body.price_id, **options, idempotency_key=key)

    subscriptions.create(
        SubscriptionCreate,
        subscribe,
        summary="Subscribe a customer to a price",
        responses=problems(400, 404, 409, 413, 422, 502),
    )
    subscriptions.listing(
        SubscriptionList,
        service.list,
        summary="List subscriptions, newest first",
        filters={
            "customer_id": Annotated[str | None, id_query("Only this customer's.")],
            "status": Annotated[
                SubscriptionStatus | None, Query(description="Only those in this status.")
            ],
            "plan_id": Annotated[str | None, id_query("Only those to this plan.")],
            "price_id": Annotated[str | None, id_query("Only those to this price.")],
        },
    )
    subscriptions.get(service.get, summary="Get a subscription (ended ones too)")

    changes = problems(404, 409, 422, 502)
    changes_with_body = problems(400, 404, 409, 413, 422, 502)

    @subscriptions.action_route(
        "cancel",
        summary="Cancel a subscription, at period end (default) or now",
        responses=changes_with_body,
    )
    async def cancel_subscription(
        subscription_id: SubscriptionId,
        body: Annotated[SubscriptionCancel, Body()] = AT_PERIOD_END,
    ) -> Subscription:
        return await service.cancel(subscription_id, at_period_end=body.at_period_end)

    @subscriptions.action_route(
        "change_price",
        summary="Move a subscription to another price (and plan), and quantity",
        responses=changes_with_body,
    )
    async def change_subscription_price(
        subscription_id: SubscriptionId, body: SubscriptionPriceChange
    ) -> Subscription:
        return await service.change_price(subscription_id, body.price_id, **body.changes())

    subscriptions.action(
        "uncancel",
        service.uncancel,
        summary="Keep a subscription cancelled at period end (409 once it has ended)",
        responses=changes,
    )
    subscriptions.action(
        "pause",
        service.pause,
        summary="Pause a subscription: no billing and no access until resumed",
        responses=changes,
    )
    subscriptions.action(
        "resume",
        service.resume,
        summary="Resume a paused subscription (one not paused is unchanged)",
        responses=changes,
    )
    return subscriptions.router, _entitlement_router(billing, route)


def _entitlement_router(billing: Billing, route: type[ProblemRoute]) -> APIRouter:
    """A customer's entitlements and limits: reads that never 404."""
    entitlement_routes = problem_router(route, tags=["entitlements"])

    def read(path: str, summary: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
        """``GET /customers/{customer_id}/{path}``, answering the handler's return type."""
        return entitlement_routes.get(
            f"/customers/{{customer_id}}/{path}", summary=summary, responses=problems(422)
        )

    @read("entitlements", "What a customer may use now (sorted entitlement keys)")
    async def list_entitlements(customer_id: CustomerId) -> Entitlements:
        keys = await billing.entitlements.list(customer_id)
        return Entitlements(customer_id=customer_id, entitlements=keys)

    @read("entitlements/{key}", "Whether a customer may use one feature now")
    async def check_entitlement(customer_id: CustomerId, key: Key) -> EntitlementCheck:
        allowed = await billing.entitlements.check(customer_id, key)
        return EntitlementCheck(customer_id=customer_id, key=key, allowed=allowed)

    @read("limits/{key}", "A customer's limit now (the largest among the plans granting access)")
    async def get_limit(customer_id: CustomerId, key: Key) -> LimitValue:
        value = await billing.limits.get(customer_id, key)
        return LimitValue(customer_id=customer_id, key=key, limit=value)

    return entitlement_routes
