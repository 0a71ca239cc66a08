"""Subscription pages: the subscriptions (newest first, by status and customer), one
subscription, and its changes (cancel at period end or now, undo the cancellation, pause,
resume), each behind a confirmation page (``billing.subscriptions``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qzpay.admin import views
from qzpay.admin.catalog import amount, every
from qzpay.admin.context import Admin, Fields
from qzpay.admin.render import page
from qzpay.admin.session import Session
from qzpay.catalog.reads import check_record_id
from qzpay.errors import NotFoundError, ValidationError
from qzpay.storage.base import SubscriptionFilter
from qzpay.subscriptions.models import ENDED, STATUSES, Subscription
from qzpay.subscriptions.service import SubscriptionService

PAGE_SIZE: Final = 50

ActionHandler: TypeAlias = Callable[[Request, Session, Subscription, str], Awaitable[Response]]
"""A view of one subscription action: ``handler(request, session, subscription, name)``."""
Run: TypeAlias = Callable[[SubscriptionService, str], Awaitable[Subscription]]


@dataclass(frozen=True)
class Action:
    """A change of a subscription offered on its page: ``label`` (its link and confirmation
    heading), what it does (``explain``), its button, the notice once done, and when it
    applies."""

    label: str
    explain: str
    button: str
    done: str
    applies: Callable[[Subscription], bool]
    run: Run


def _live(sub: Subscription) -> bool:
    return sub.status not in ENDED


ACTIONS: Final[dict[str, Action]] = {
    "cancel": Action(
        "Cancel at period end",
        "It ends when its current period ends, on {end}, and keeps its access until then. "
        "This can be undone before then.",
        "Yes, cancel at period end",
        "The subscription will be canceled at the end of its period.",
        lambda sub: _live(sub) and not sub.cancel_at_period_end,
        lambda service, ident: service.cancel(ident, at_period_end=True),
    ),
    "cancel-now": Action(
        "Cancel now",
        "It ends now: its status becomes canceled and it grants nothing any more. "
        "This cannot be undone.",
        "Yes, cancel now",
        "The subscription was canceled.",
        _live,
        lambda service, ident: service.cancel(ident, at_period_end=False),
    ),
    "uncancel": Action(
        "Undo cancellation",
        "It no longer ends on {end}: it renews as before.",
        "Yes, keep the subscription",
        "The cancellation was undone.",
        lambda sub: _live(sub) and sub.cancel_at_period_end,
        lambda service, ident: service.uncancel(ident),
    ),
    "pause": Action(
        "Pause",
        "Billing and access stop (a paused subscription grants nothing) until it is resumed.",
        "Yes, pause",
        "The subscription was paused.",
        lambda sub: _live(sub) and sub.status != "paused",
        lambda service, ident: service.pause(ident),
    ),
    "resume": Action(
        "Resume",
        "Billing and access start again.",
        "Yes, resume",
        "The subscription was resumed.",
        lambda sub: sub.status == "paused",
        lambda service, ident: service.resume(ident),
    ),
}
"""The changes by the name in their path, in the order the page offers them."""
STATUS_CHOICES: Final = [("", "All statuses")] + [
    (status, status.replace("_", " ").capitalize()) for status in STATUSES
]
"""The list's status filter: (value, label)."""


def add_subscription_routes(router: APIRouter, admin: Admin) -> None:
    billing = admin.billing
    subscription_route = views.record_route(
        router, admin, "subscription", billing.subscriptions.get
    )

    def action_route(method: str, name: str) -> Callable[[ActionHandler], ActionHandler]:
        """Serve ``handler`` at ``/subscriptions/{subscription_id}/{action}``: 404 unless the
        subscription and the action exist; the handler gets the action's name."""

        def register(handler: ActionHandler) -> ActionHandler:
            @subscription_route(method, "/{action}", name)
            async def view(
                request: Request, session: Session, fields: Fields, found: Subscription
            ) -> Response:
                action = request.path_params["action"]
                if action not in ACTIONS:
                    return views.not_found(request, session, "subscription action", action)
                return await handler(request, session, found, action)

            return handler

        return register

    @router.get("/subscriptions", name="qzpay_admin_subscriptions")
    @admin.signed_in
    async def subscriptions(request: Request, session: Session, query: Fields) -> Response:
        status = views.choice(query, "status", STATUSES)
        customer_id = query.get("customer_id", "").strip()
        before = query.get("before", "").strip()
        errors: dict[str, str] = {}
        for field, value in (("customer_id", customer_id), ("before", before)):
            if value:
                try:
                    check_record_id(value, field)
                except ValidationError as exc:
                    errors[field] = views.messages(exc)
        batch: list[Subscription] = []
        if not errors:
            filters = SubscriptionFilter(
                customer_id=customer_id or None,
                status=next((s for s in STATUSES if s == status), None),
            )
            batch = await billing.subscriptions.scan_page(filters, before or None, PAGE_SIZE + 1)
        kept = {"status": status, "customer_id": customer_id}
        return page(
            request,
            "subscriptions.html",
            session=session,
            status=422 if errors else 200,
            title="Subscriptions",
            pager=views.Pager.of(batch, PAGE_SIZE, kept, before),
            status_choices=STATUS_CHOICES,
            chosen=status,
            customer_id=customer_id,
            errors=errors,
        )

    @subscription_route("GET", "", "qzpay_admin_subscription")
    async def subscription(
        request: Request, session: Session, query: Fields, found: Subscription
    ) -> Response:
        customer = await billing.customers.get(found.customer_id)
        plan = await billing.plans.get(found.plan_id)
        price = await billing.prices.get(found.price_id)
        done = ACTIONS.get(query.get("done", ""))
        return page(
            request,
            "subscription.html",
            session=session,
            title=f"Subscription {found.id}",
            sub=found,
            customer=customer,
            plan=plan,
            price=price,
            amount=amount,
            every=every,
            actions=[(name, action) for name, action in ACTIONS.items() if action.applies(found)],
            done=done.done if done else None,
        )

    def confirm_page(
        request: Request,
        session: Session,
        found: Subscription,
        name: str,
        refused: views.Refusal = views.ASKED,
    ) -> Response:
        action = ACTIONS[name]
        end = found.current_period_end.strftime("%Y-%m-%d %H:%M UTC")
        return page(
            request,
            "subscription_confirm.html",
            session=session,
            status=refused.status,
            title=action.label,
            sub=found,
            name=name,
            action=action,
            explain=action.explain.format(end=end),
            applies=action.applies(found),
            error=refused.error,
        )

    @action_route("GET", "qzpay_admin_subscription_action")
    async def action_form(
        request: Request, session: Session, found: Subscription, name: str
    ) -> Response:
        return confirm_page(request, session, found, name)

    @action_route("POST", "qzpay_admin_subscription_action_post")
    async def action(
        request: Request, session: Session, found: Subscription, name: str
    ) -> Response:
        try:
            refused = await views.refusal(ACTIONS[name].run(billing.subscriptions, found.id))
        except NotFoundError:
            return views.not_found(request, session, "subscription", found.id)
        if refused is None:
            return admin.redirect(request, "subscription", {"done": name}, subscription_id=found.id)
        current = await billing.subscriptions.get(found.id) or found  # as it is now
        return confirm_page(request, session, current, name, refused)
