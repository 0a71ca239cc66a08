"""Operator pages: the event log, pending sync work, reconciliation with a provider."""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qzpay import records
from qzpay.admin import views
from qzpay.admin.context import Admin, Fields
from qzpay.admin.render import page
from qzpay.admin.session import Session
from qzpay.customers.reconcile import ReconcileReport
from qzpay.customers.validation import check_id
from qzpay.errors import NotFoundError, ProviderSyncError, ValidationError
from qzpay.events import EVENT_TYPES, Event
from qzpay.limits import DEFAULT_EVENT_PAGE

EVENT_LIMITS: Final = (50, 100, 500)
"""The Events page's choices of events per page (a page reads one more than it shows)."""
DEFAULT_LIMIT: Final = DEFAULT_EVENT_PAGE
SYNC_TASKS_SHOWN: Final = 500


class Category(NamedTuple):
    """A section of a reconciliation report: the report's ``attribute`` listing its rows."""

    attribute: str
    heading: str
    meaning: str
    local: bool = True
    """Whether its rows are local customer ids (linked to their pages)."""


CATEGORIES: Final = (
    Category("unlinked", "Unlinked", "Local customers with no copy linked at the provider."),
    Category(
        "missing_at_provider",
        "Missing at the provider",
        "Linked copies the provider no longer has.",
    ),
    Category(
        "missing_locally",
        "Missing locally",
        "Provider customers naming a qzpay id nobody here has.",
        local=False,
    ),
    Category(
        "unmanaged",
        "Unmanaged",
        "Provider customers qzpay did not create (reported only).",
        local=False,
    ),
    Category("duplicates", "Duplicates", "Live customers with several provider copies."),
    Category(
        "deleted_locally_live_at_provider",
        "Deleted here, live there",
        "Deleted customers whose provider copy is still live.",
    ),
    Category("drift", "Drift", "Linked customers whose provider copy differs."),
    Category("pending", "Pending", "Customers with provider work still pending (skipped)."),
    Category("conflicts", "Conflicts", "Customers a fix could not create at the provider."),
    Category("fixed", "Fixed", "What this run repaired.", local=False),
)


def report_sections(report: ReconcileReport) -> list[dict[str, Any]]:
    sections = []
    for attribute, heading, meaning, local in CATEGORIES:
        value = getattr(report, attribute)
        rows: list[tuple[str, str]]
        if attribute == "drift":
            rows = [
                (
                    d.customer_id,
                    "; ".join(
                        f"{k}: {here!r} here, {there!r} there"
                        for k, (here, there) in d.fields.items()
                    ),
                )
                for d in value
            ]
        elif isinstance(value, dict):
            rows = [
                (key, ", ".join(item) if isinstance(item, list) else str(item))
                for key, item in value.items()
            ]
        else:
            rows = [(item, "") for item in value]
        sections.append(
            {
                "id": attribute.replace("_", "-"),
                "heading": heading,
                "meaning": meaning,
                "local": local,
                "rows": rows,
            }
        )
    return sections


def add_operation_routes(router: APIRouter, admin: Admin) -> None:
    billing = admin.billing

    @router.get("/events", name="qzpay_admin_events")
    @admin.signed_in
    async def events(request: Request, session: Session, query: Fields) -> Response:
        chosen = query.get("type", "")
        event_type = chosen if chosen in records.event_types() else None
        raw_limit = query.get("limit", "")
        limit = int(raw_limit) if raw_limit in {str(n) for n in EVENT_LIMITS} else DEFAULT_LIMIT
        before = query.get("before", "").strip()
        error, status = None, 200
        batch: list[Event[Any]] = []
        try:
            if before:
                check_id(before, "before")
            # One more than shown tells whether there are older events.
            batch = await billing.storage.list_events_backward(
                before=before or None, limit=limit + 1, event_type=event_type
            )
        except ValidationError:
            error, status = "That is not an event id: start again from the newest events.", 422
        except NotFoundError:
            error, status = "There is no such event: start again from the newest events.", 404
        kept = {"type": event_type or "", "limit": limit if limit != DEFAULT_LIMIT else ""}
        return page(
            request,
            "events.html",
            session=session,
            status=status,
            title="Events",
            pager=views.Pager.of(batch, limit, kept, before),  # no rows, no caption on error
            event_types=records.event_types(),
            customer_event_types=EVENT_TYPES,
            chosen=event_type or "",
            limits=EVENT_LIMITS,
            limit=limit,
            error=error,
        )

    async def sync_page(
        request: Request, session: Session, *, report: Any = None, error: str | None = None
    ) -> Response:
        tasks = await billing.storage.list_sync_tasks(limit=SYNC_TASKS_SHOWN)
        total = await billing.storage.count_sync_tasks()
        return page(
            request,
            "sync.html",
            session=session,
            title="Sync",
            tasks=tasks,
            total=total,
            report=report,
            error=error,
            status=502 if error else 200,
        )

    @router.get("/sync", name="qzpay_admin_sync")
    @admin.signed_in
    async def sync(request: Request, session: Session, _: Fields) -> Response:
        return await sync_page(request, session)

    @router.post("/sync/retry", name="qzpay_admin_sync_retry")
    @admin.signed_in
    async def retry(request: Request, session: Session, _: Fields) -> Response:
        try:
            report = await billing.customers.sync_pending()
        except ProviderSyncError as exc:
            return await sync_page(request, session, error=exc.message)
        return await sync_page(request, session, report=report)

    def reconcile_page(
        request: Request, session: Session, *, status: int = 200, **context: Any
    ) -> Response:
        context.setdefault("report", None)
        context.setdefault("error", None)
        context.setdefault("provider", "")
        return page(
            request,
            "reconcile.html",
            session=session,
            status=status,
            title="Reconcile",
            providers=admin.provider_names(),
            **context,
        )

    @router.get("/reconcile", name="qzpay_admin_reconcile")
    @admin.signed_in
    async def reconcile_form(request: Request, session: Session, _: Fields) -> Response:
        return reconcile_page(request, session)

    @router.post("/reconcile", name="qzpay_admin_reconcile_post")
    @admin.signed_in
    async def reconcile(request: Request, session: Session, fields: Fields) -> Response:
        provider = fields.get("provider", "")
        fix = fields.get("action") == "fix"
        if fix and fields.get("confirm") != "yes":
            return page(
                request,
                "reconcile_confirm.html",
                session=session,
                title="Confirm the fix",
                provider=provider,
            )
        try:
            report = await billing.customers.reconcile(provider, fix=fix)
        except ValidationError as exc:
            return reconcile_page(
                request, session, status=422, error=views.messages(exc), provider=provider
            )
        except ProviderSyncError as exc:
            return reconcile_page(
                request, session, status=502, error=exc.message, provider=provider
            )
        return reconcile_page(
            request,
            session,
            report=report,
            sections=report_sections(report),
            provider=provider,
            fixed=fix,
        )
