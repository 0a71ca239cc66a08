"""Catalog pages: the plans (newest first), one plan with its prices, one price, and archiving
a plan or a price behind a confirmation page (``billing.plans.archive``,
``billing.prices.archive``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeAlias

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qzpay.admin import views
from qzpay.admin.context import Admin, Fields
from qzpay.admin.render import page
from qzpay.admin.session import Session
from qzpay.catalog.models import Plan, Price
from qzpay.catalog.plans import plan_scan_filters
from qzpay.catalog.reads import check_record_id
from qzpay.errors import NotFoundError, ValidationError
from qzpay.limits import MAX_LIST_LIMIT

PAGE_SIZE: Final = 50
PRICES_SHOWN: Final = MAX_LIST_LIMIT
STATUSES: Final = {"active": True, "archived": False}
"""The plan list's ``status`` filter; anything else lists every plan."""

Record: TypeAlias = Plan | Price


def amount(price: Price) -> str:
    """``"19.99 USD"``: the amount in major units with its currency."""
    return f"{price.major_amount()} {price.currency}"


def every(price: Price) -> str:
    """``"month"``, ``"3 months"``: how often the price is charged."""
    if price.interval_count == 1:
        return price.interval
    return f"{price.interval_count} {price.interval}s"


def add_catalog_routes(router: APIRouter, admin: Admin) -> None:
    billing = admin.billing
    plan_route = views.record_route(router, admin, "plan", billing.plans.get)
    price_route = views.record_route(router, admin, "price", billing.prices.get)

    @router.get("/plans", name="qzpay_admin_plans")
    @admin.signed_in
    async def plans(request: Request, session: Session, query: Fields) -> Response:
        status = views.choice(query, "status", STATUSES)
        before = query.get("before", "").strip()
        error: str | None = None
        batch: list[Plan] = []
        try:
            if before:
                check_record_id(before, "before")
            filters = plan_scan_filters(STATUSES.get(status), PAGE_SIZE + 1, {})
        except ValidationError as exc:
            error = views.messages(exc)
        else:
            batch = await billing.plans.scan_page(filters, before or None, PAGE_SIZE + 1)
        return page(
            request,
            "plans.html",
            session=session,
            status=422 if error else 200,
            title="Plans",
            pager=views.Pager.of(batch, PAGE_SIZE, {"status": status}, before),
            chosen=status,
            error=error,
        )

    @plan_route("GET", "", "qzpay_admin_plan")
    async def plan(request: Request, session: Session, query: Fields, found: Plan) -> Response:
        prices = await billing.prices.list(plan_id=found.id, limit=PRICES_SHOWN)
        return page(
            request,
            "plan.html",
            session=session,
            title=f"Plan {found.name}",
            plan=found,
            prices=prices.data,
            total=prices.total,
            amount=amount,
            every=every,
            done=query.get("done"),
        )

    @price_route("GET", "", "qzpay_admin_price")
    async def price(request: Request, session: Session, query: Fields, found: Price) -> Response:
        return page(
            request,
            "price.html",
            session=session,
            title=f"Price {amount(found)} every {every(found)}",
            price=found,
            plan=await billing.plans.get(found.plan_id),
            amount=amount,
            every=every,
            done=query.get("done"),
        )

    def confirm_page(
        request: Request, session: Session, record: Record, refused: views.Refusal = views.ASKED
    ) -> Response:
        if isinstance(record, Plan):
            kind, label = "plan", f"the plan {record.name}"
        else:
            kind, label = "price", f"the price {amount(record)} every {every(record)}"
        return page(
            request,
            "archive.html",
            session=session,
            status=refused.status,
            title=f"Archive {kind}",
            kind=kind,
            label=label,
            record=record,
            error=refused.error,
        )

    def add_archive_routes(
        kind: str, route: views.RecordRoute[Any], run: Callable[[str], Awaitable[Any]]
    ) -> None:
        """Archiving a plan or a price: ``GET …/archive`` asks, ``POST …/archive`` does it."""

        @route("GET", "/archive", f"qzpay_admin_{kind}_archive")
        async def form(request: Request, session: Session, _: Fields, found: Record) -> Response:
            return confirm_page(request, session, found)

        @route("POST", "/archive", f"qzpay_admin_{kind}_archive_post")
        async def archive(request: Request, session: Session, _: Fields, found: Record) -> Response:
            try:
                refused = await views.refusal(run(found.id))
            except NotFoundError:
                return views.not_found(request, session, kind, found.id)
            if refused is not None:
                return confirm_page(request, session, found, refused)
            return admin.redirect(request, kind, {"done": "archived"}, **{f"{kind}_id": found.id})

    add_archive_routes("plan", plan_route, billing.plans.archive)
    add_archive_routes("price", price_route, billing.prices.archive)
