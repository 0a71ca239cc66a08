"""Catalog pages: the plans (newest first), one plan with its prices, one price, and archiving
a plan or a price behind a confirmation page (``billing.plans.archive``,
``billing.prices.archive``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeAlias

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qzpay.admin.context import Admin, Fields, Handler
from qzpay.admin.render import page
from qzpay.admin.session import Session
from qzpay.catalog.models import Plan, Price
from qzpay.catalog.plans import plan_scan_filters
from qzpay.catalog.reads import check_record_id
from qzpay.errors import ConflictError, NotFoundError, ProviderSyncError, ValidationError
from qzpay.limits import MAX_LIST_LIMIT

PAGE_SIZE: Final = 50
PRICES_SHOWN: Final = MAX_LIST_LIMIT
STATUSES: Final = {"active": True, "archived": False}
"""The plan list's ``status`` filter; anything else lists every plan."""

Record: TypeAlias = Plan | Price
RecordHandler: TypeAlias = Callable[[Request, Session, Fields, Any], Awaitable[Response]]


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

    def not_found(request: Request, session: Session, what: str, ident: str) -> Response:
        return page(
            request,
            "refused.html",
            session=session,
            status=404,
            title="Not found",
            message=f"There is no {what} {ident!r}.",
        )

    def record_route(
        kind: str, method: str, path: str, name: str
    ) -> Callable[[RecordHandler], RecordHandler]:
        """Serve ``handler`` at ``/plans/{plan_id}`` or ``/prices/{price_id}`` + ``path``:
        signed in, 404 when there is no such plan or price."""
        param = f"{kind}_id"

        def register(handler: RecordHandler) -> RecordHandler:
            async def view(request: Request, session: Session, fields: Fields) -> Response:
                ident = request.path_params[param]
                service: Any = billing.plans if kind == "plan" else billing.prices
                try:
                    found = await service.get(ident)
                except ValidationError:
                    found = None
                if found is None:
                    return not_found(request, session, kind, ident)
                return await handler(request, session, fields, found)

            guarded: Handler = view
            router.add_api_route(
                f"/{kind}s/{{{param}}}{path}",
                admin.signed_in(guarded),
                methods=[method],
                name=name,
            )
            return handler

        return register

    @router.get("/plans", name="qzpay_admin_plans")
    @admin.signed_in
    async def plans(request: Request, session: Session, query: Fields) -> Response:
        status = query.get("status", "")
        status = status if status in STATUSES else ""
        before = query.get("before", "").strip()
        error: str | None = None
        rows: list[Plan] = []
        has_more = False
        try:
            if before:
                check_record_id(before, "before")
            filters = plan_scan_filters(STATUSES.get(status), PAGE_SIZE + 1, {})
        except ValidationError as exc:
            error = "; ".join(e["message"] for e in exc.errors)
        else:
            batch = await billing.plans.scan_page(filters, before or None, PAGE_SIZE + 1)
            has_more = len(batch) > PAGE_SIZE
            rows = batch[:PAGE_SIZE]
        kept = {"status": status}
        return page(
            request,
            "plans.html",
            session=session,
            status=422 if error else 200,
            title="Plans",
            rows=rows,
            chosen=status,
            before=before,
            error=error,
            next_query={**kept, "before": rows[-1].id} if has_more and rows else None,
            first_query=kept if before else None,
        )

    @record_route("plan", "GET", "", "qzpay_admin_plan")
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

    @record_route("price", "GET", "", "qzpay_admin_price")
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
        request: Request,
        session: Session,
        record: Record,
        *,
        status: int = 200,
        error: str | None = None,
    ) -> Response:
        if isinstance(record, Plan):
            kind, label = "plan", f"the plan {record.name}"
        else:
            kind, label = "price", f"the price {amount(record)} every {every(record)}"
        return page(
            request,
            "archive.html",
            session=session,
            status=status,
            title=f"Archive {kind}",
            kind=kind,
            label=label,
            record=record,
            error=error,
        )

    async def archive(
        request: Request, session: Session, record: Record, run: Callable[[str], Awaitable[Any]]
    ) -> Response:
        kind = "plan" if isinstance(record, Plan) else "price"
        try:
            await run(record.id)
        except NotFoundError:
            return not_found(request, session, kind, record.id)
        except ConflictError as exc:
            return confirm_page(request, session, record, status=409, error=exc.message)
        except ProviderSyncError as exc:
            return confirm_page(request, session, record, status=502, error=exc.message)
        return admin.redirect(request, kind, {"done": "archived"}, **{f"{kind}_id": record.id})

    @record_route("plan", "GET", "/archive", "qzpay_admin_plan_archive")
    async def plan_archive_form(
        request: Request, session: Session, _: Fields, found: Plan
    ) -> Response:
        return confirm_page(request, session, found)

    @record_route("plan", "POST", "/archive", "qzpay_admin_plan_archive_post")
    async def plan_archive(request: Request, session: Session, _: Fields, found: Plan) -> Response:
        return await archive(request, session, found, billing.plans.archive)

    @record_route("price", "GET", "/archive", "qzpay_admin_price_archive")
    async def price_archive_form(
        request: Request, session: Session, _: Fields, found: Price
    ) -> Response:
        return confirm_page(request, session, found)

    @record_route("price", "POST", "/archive", "qzpay_admin_price_archive_post")
    async def price_archive(
        request: Request, session: Session, _: Fields, found: Price
    ) -> Response:
        return await archive(request, session, found, billing.prices.archive)
