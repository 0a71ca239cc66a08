"""``/subscriptions`` and a customer's entitlements and limits over HTTP: thin routes onto
``billing.subscriptions``, ``billing.entitlements`` and ``billing.limits`` (same auth,
problem+json and OpenAPI style as the customers' and the catalog's routes).

A subscription is never deleted: it ends (``POST /subscriptions/{id}/cancel``) and stays
readable. Every change answers the subscription as it is after the change; a change that
changes nothing (cancelling twice, resuming one not paused) answers it unchanged.

The entitlement reads never 404: an unknown customer simply may use nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response

from qzpay.api.catalog_routes import Limit, Offset, _idempotency_header
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
from qzpay.errors import NotFoundError
from qzpay.limits import DEFAULT_LIST_LIMIT, MAX_ID_LENGTH, MAX_SLUG_LENGTH
from qzpay.subscriptions.models import Subscription, SubscriptionStatus
from qzpay.subscriptions.service import SubscriptionService

SubscriptionId = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID_LENGTH, description="A subscription id (`sub_…`)."),
]
CustomerId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="A customer id (`cus_…`).")
]
Key = Annotated[str, Path(min_length=1, max_length=MAX_SLUG_LENGTH, description=KEY_RULE)]

AT_PERIOD_END = SubscriptionCancel()

Action = Callable[[SubscriptionService, str], Awaitable[Subscription]]
ACTIONS: tuple[tuple[str, str], ...] = (
    ("uncancel", "Keep a subscription cancelled at period end (409 once it has ended)"),
    ("pause", "Pause a subscription: no billing and no access until resumed"),
    ("resume", "Resume a paused subscription (one not paused is unchanged)"),
)
"""The actions that take no body: ``SubscriptionService`` method name, route summary."""
"""What ``POST /subscriptions/{id}/cancel`` without a body asks for."""


def _action_endpoint(billing: Billing, verb: str) -> Callable[[str], Awaitable[Subscription]]:
    """The endpoint of one body-less action (``uncancel_subscription``...), named for its
    operation id."""
    action: Action = getattr(SubscriptionService, verb)

    async def endpoint(subscription_id: SubscriptionId) -> Subscription:
        return await action(billing.subscriptions, subscription_id)

    endpoint.__name__ = endpoint.__qualname__ = f"{verb}_subscription"
    return endpoint


def _id_filter(description: str) -> object:
    return Query(min_length=1, max_length=MAX_ID_LENGTH, description=description)


def create_subscription_routers(
    billing: Billing, route: type[ProblemRoute]
) -> tuple[APIRouter, APIRouter]:
    """The ``subscriptions`` and ``entitlements`` routers (one per tag), for ``create_router``
    to put behind its API key."""
    subscription_routes = problem_router(route, tags=["subscriptions"])
    entitlement_routes = problem_router(route, tags=["entitlements"])

    # -- subscriptions ---------------------------------------------------------------------

    @subscription_routes.post(
        "/subscriptions",
        status_code=201,
        response_model=Subscription,
        summary="Subscribe a customer to a price",
        responses=problems(400, 404, 409, 413, 422, 502),
    )
    async def create_subscription(
        body: SubscriptionCreate,
        request: Request,
        response: Response,
        idempotency_key: Annotated[str | None, _idempotency_header("subscription")] = None,
    ) -> Subscription:
        subscription = await billing.subscriptions.create(
            body.customer_id,
            body.price_id,
            quantity=body.quantity,
            trial_days=body.trial_days,
            provider=body.provider,
            metadata=body.metadata,
            idempotency_key=idempotency_key,
        )
        response.headers["Location"] = str(
            request.url_for("qzpay_get_subscription", subscription_id=subscription.id)
        )
        return subscription

    @subscription_routes.get(
        "/subscriptions",
        response_model=SubscriptionList,
        summary="List subscriptions, newest first",
        responses=problems(422),
    )
    async def list_subscriptions(
        customer_id: Annotated[str | None, _id_filter("Only this customer's.")] = None,
        status: Annotated[
            SubscriptionStatus | None, Query(description="Only those in this status.")
        ] = None,
        plan_id: Annotated[str | None, _id_filter("Only those to this plan.")] = None,
        price_id: Annotated[str | None, _id_filter("Only those to this price.")] = None,
        limit: Limit = DEFAULT_LIST_LIMIT,
        offset: Offset = 0,
    ) -> SubscriptionList:
        page = await billing.subscriptions.list(
            customer_id=customer_id,
            status=status,
            plan_id=plan_id,
            price_id=price_id,
            limit=limit,
            offset=offset,
        )
        return SubscriptionList.from_page(page)

    @subscription_routes.get(
        "/subscriptions/{subscription_id}",
        name="qzpay_get_subscription",
        response_model=Subscription,
        summary="Get a subscription (ended ones too)",
        responses=problems(404, 422),
    )
    async def get_subscription(subscription_id: SubscriptionId) -> Subscription:
        found = await billing.subscriptions.get(subscription_id)
        if found is None:
            raise NotFoundError(f"no subscription {subscription_id!r}")
        return found

    changes = problems(404, 409, 422, 502)
    changes_with_body = problems(400, 404, 409, 413, 422, 502)

    @subscription_routes.post(
        "/subscriptions/{subscription_id}/cancel",
        response_model=Subscription,
        summary="Cancel a subscription, at period end (default) or now",
        responses=changes_with_body,
    )
    async def cancel_subscription(
        subscription_id: SubscriptionId,
        body: Annotated[SubscriptionCancel, Body()] = AT_PERIOD_END,
    ) -> Subscription:
        return await billing.subscriptions.cancel(subscription_id, at_period_end=body.at_period_end)

    @subscription_routes.post(
        "/subscriptions/{subscription_id}/change_price",
        response_model=Subscription,
        summary="Move a subscription to another price (and plan), and quantity",
        responses=changes_with_body,
    )
    async def change_subscription_price(
        subscription_id: SubscriptionId, body: SubscriptionPriceChange
    ) -> Subscription:
        return await billing.subscriptions.change_price(
            subscription_id, body.price_id, **body.changes()
        )

    # Actions without a body: one builder, so their routes cannot drift apart.
    for verb, summary in ACTIONS:
        subscription_routes.post(
            f"/subscriptions/{{subscription_id}}/{verb}",
            response_model=Subscription,
            summary=summary,
            responses=changes,
        )(_action_endpoint(billing, verb))

    # -- entitlements and limits -----------------------------------------------------------

    @entitlement_routes.get(
        "/customers/{customer_id}/entitlements",
        response_model=Entitlements,
        summary="What a customer may use now (sorted entitlement keys)",
        responses=problems(422),
    )
    async def list_entitlements(customer_id: CustomerId) -> Entitlements:
        keys = await billing.entitlements.list(customer_id)
        return Entitlements(customer_id=customer_id, entitlements=keys)

    @entitlement_routes.get(
        "/customers/{customer_id}/entitlements/{key}",
        response_model=EntitlementCheck,
        summary="Whether a customer may use one feature now",
        responses=problems(422),
    )
    async def check_entitlement(customer_id: CustomerId, key: Key) -> EntitlementCheck:
        allowed = await billing.entitlements.check(customer_id, key)
        return EntitlementCheck(customer_id=customer_id, key=key, allowed=allowed)

    @entitlement_routes.get(
        "/customers/{customer_id}/limits/{key}",
        response_model=LimitValue,
        summary="A customer's limit now (the largest among the plans granting access)",
        responses=problems(422),
    )
    async def get_limit(customer_id: CustomerId, key: Key) -> LimitValue:
        value = await billing.limits.get(customer_id, key)
        return LimitValue(customer_id=customer_id, key=key, limit=value)

    return subscription_routes, entitlement_routes
