"""Subscription pages: the subscriptions (newest first, by status and customer), one
subscription, and its changes (cancel at period end or now, undo the cancellation, pause,
resume), each behind a confirmation page (``billing.subscriptions``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qzpay.admin.catalog import amount, every
from qzpay.admin.context import Admin, Fields, Handler
from qzpay.admin.render import page
from qzpay.admin.session import Session
from qzpay.catalog.reads import check_record_id
from qzpay.errors import ConflictError, NotFoundError, ProviderSyncError, ValidationError
from qzpay.storage.base import SubscriptionFilter
from qzpay.subscriptions.models import ENDED, STATUSES, Subscription
from qzpay.subscriptions.service import SubscriptionService

PAGE_SIZE: Final = 50

SubscriptionHandler: TypeAlias = Callable[
    [Request, Session, Fields, Subscription], Awaitable[Response]
]
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


def add_subscription_routes(router: APIRouter, admin: Admin) -> None:
    billing = admin.billing

    def refused(request: Request, session: Session, status: int, message: str) -> Response:
        return page(
            request,
            "refused.html",
            session=session,
            status=status,
            title="Not found" if status == 404 else "Not allowed",
            message=message,
        )

    def subscription_route(
        method: str, path: str, name: str
    ) -> Callable[[SubscriptionHandler], SubscriptionHandler]:
        """Serve ``handler`` at ``/subscriptions/{subscription_id}`` + ``path``: signed in,
        404 when there is no such subscription."""

        def register(handler: SubscriptionHandler) -> SubscriptionHandler:
            async def view(request: Request, session: Session, fields: Fields) -> Response:
                ident = request.path_params["subscription_id"]
                try:
                    found = await billing.subscriptions.get(ident)
                except ValidationError:
                    found = None
                if found is None:
                    return refused(request, session, 404, f"There is no subscription {ident!r}.")
                return await handler(request, session, fields, found)

            guarded: Handler = view
            router.add_api_route(
                "/subscriptions/{subscription_id}" + path,
                admin.signed_in(guarded),
                methods=[method],
                name=name,
            )
            return handler

        return register

    @router.get("/subscriptions", name="qzpay_admin_subscriptions")
    @admin.signed_in
    async def subscriptions(request: Request, session: Session, query: Fields) -> Response:
        status = query.get("status", "")
        status = status if status in STATUSES else ""
        customer_id = query.get("customer_id", "").strip()
        before = query.get("before", "").strip()
        errors: dict[str, str] = {}
        for field, value in (("customer_id", customer_id), ("before", before)):
            if value:
                try:
                    check_record_id(value, field)
                except ValidationError as exc:
                    errors[field] = "; ".join(e["message"] for e in exc.errors)
        rows: list[Subscription] = []
        has_more = False
        if not errors:
            filters = SubscriptionFilter(
                customer_id=customer_id or None,
                status=next((s for s in STATUSES if s == status), None),
            )
            batch = await billing.subscriptions.scan_page(filters, before or None, PAGE_SIZE + 1)
            has_more = len(batch) > PAGE_SIZE
            rows = batch[:PAGE_SIZE]
        kept = {"status": status, "customer_id": customer_id}
        return page(
            request,
            "subscriptions.html",
            session=session,
            status=422 if errors else 200,
            title="Subscriptions",
            rows=rows,
            statuses=STATUSES,
            chosen=status,
            customer_id=customer_id,
            before=before,
            errors=errors,
            next_query={**kept, "before": rows[-1].id} if has_more and rows else None,
            first_query=kept if before else None,
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
        *,
        status: int = 200,
        error: str | None = None,
    ) -> Response:
        action = ACTIONS[name]
        end = found.current_period_end.strftime("%Y-%m-%d %H:%M UTC")
        return page(
            request,
            "subscription_confirm.html",
            session=session,
            status=status,
            title=action.label,
            sub=found,
            name=name,
            action=action,
            explain=action.explain.format(end=end),
            applies=action.applies(found),
            error=error,
        )

    def unknown_action(request: Request, session: Session) -> Response:
        name = request.path_params["action"]
        return refused(request, session, 404, f"There is no subscription action {name!r}.")

    @subscription_route("GET", "/{action}", "qzpay_admin_subscription_action")
    async def action_form(
        request: Request, session: Session, _: Fields, found: Subscription
    ) -> Response:
        name = request.path_params["action"]
        if name not in ACTIONS:
            return unknown_action(request, session)
        return confirm_page(request, session, found, name)

    @subscription_route("POST", "/{action}", "qzpay_admin_subscription_action_post")
    async def action(
        request: Request, session: Session, _: Fields, found: Subscription
    ) -> Response:
        name = request.path_params["action"]
        if name not in ACTIONS:
            return unknown_action(request, session)
        status, error = 0, ""
        try:
            await ACTIONS[name].run(billing.subscriptions, found.id)
        except NotFoundError:
            return refused(request, session, 404, f"There is no subscription {found.id!r}.")
        except ConflictError as exc:  # before ProviderSyncError: a change a provider refuses
            status, error = 409, exc.message
        except ProviderSyncError as exc:
            status, error = 502, exc.message
        except ValidationError as exc:
            status, error = 422, "; ".join(e["message"] for e in exc.errors)
        if not status:
            return admin.redirect(request, "subscription", {"done": name}, subscription_id=found.id)
        current = await billing.subscriptions.get(found.id) or found  # as it is now
        return confirm_page(request, session, current, name, status=status, error=error)
