"""Operator pages: the event log, pending sync work, reconciliation with a provider."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qzpay.admin.context import Admin
from qzpay.admin.render import page
from qzpay.admin.session import Session
from qzpay.customers.reconcile import ReconcileReport
from qzpay.errors import ProviderSyncError, ValidationError
from qzpay.events import EVENT_TYPES

EVENT_LIMITS: Final = (50, 100, 500)
SYNC_TASKS_SHOWN: Final = 500

# (attribute, heading, what it means, whether its rows are local customer ids)
CATEGORIES: Final = (
    ("unlinked", "Unlinked", "Local customers with no copy linked at the provider.", True),
    (
        "missing_at_provider",
        "Missing at the provider",
        "Linked copies the provider no longer has.",
        True,
    ),
    (
        "missing_locally",
        "Missing locally",
        "Provider customers naming a qzpay id nobody here has.",
        False,
    ),
    ("unmanaged", "Unmanaged", "Provider customers qzpay did not create (reported only).", False),
    ("duplicates", "Duplicates", "Live customers with several provider copies.", True),
    (
        "deleted_locally_live_at_provider",
        "Deleted here, live there",
        "Deleted customers whose provider copy is still live.",
        True,
    ),
    ("drift", "Drift", "Linked customers whose provider copy differs.", True),
    ("pending", "Pending", "Customers with provider work still pending (skipped).", True),
    ("conflicts", "Conflicts", "Customers a fix could not create at the provider.", True),
    ("fixed", "Fixed", "What this run repaired.", False),
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
    async def events(request: Request) -> Response:
        session = admin.page_session(request)
        if isinstance(session, Response):
            return session
        chosen = request.query_params.get("type", "")
        event_type = chosen if chosen in EVENT_TYPES else None
        raw_limit = request.query_params.get("limit", "")
        limit = int(raw_limit) if raw_limit in {str(n) for n in EVENT_LIMITS} else EVENT_LIMITS[1]
        found = await admin.tail.latest(event_type=event_type, limit=limit)
        return admin_page(
            request,
            "events.html",
            session,
            title="Events",
            events=found,
            event_types=EVENT_TYPES,
            chosen=event_type or "",
            limits=EVENT_LIMITS,
            limit=limit,
            window=admin.tail.size,
            seen=admin.tail.seen,
        )

    def admin_page(request: Request, template: str, session: Session, **context: Any) -> Response:
        return page(request, template, session=session, **context)

    async def sync_page(
        request: Request, session: Session, *, report: Any = None, error: str | None = None
    ) -> Response:
        tasks = await billing.storage.list_sync_tasks(limit=SYNC_TASKS_SHOWN)
        total = await billing.storage.count_sync_tasks()
        return admin_page(
            request,
            "sync.html",
            session,
            title="Sync",
            tasks=tasks,
            total=total,
            report=report,
            error=error,
            status=502 if error else 200,
        )

    @router.get("/sync", name="qzpay_admin_sync")
    async def sync(request: Request) -> Response:
        session = admin.page_session(request)
        if isinstance(session, Response):
            return session
        return await sync_page(request, session)

    @router.post("/sync/retry", name="qzpay_admin_sync_retry")
    async def retry(request: Request) -> Response:
        got = await admin.form(request)
        if isinstance(got, Response):
            return got
        session, _ = got
        assert session is not None
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
        return admin_page(
            request,
            "reconcile.html",
            session,
            status=status,
            title="Reconcile",
            providers=admin.provider_names(),
            **context,
        )

    @router.get("/reconcile", name="qzpay_admin_reconcile")
    async def reconcile_form(request: Request) -> Response:
        session = admin.page_session(request)
        if isinstance(session, Response):
            return session
        return reconcile_page(request, session)

    @router.post("/reconcile", name="qzpay_admin_reconcile_post")
    async def reconcile(request: Request) -> Response:
        got = await admin.form(request)
        if isinstance(got, Response):
            return got
        session, fields = got
        assert session is not None
        provider = fields.get("provider", "")
        fix = fields.get("action") == "fix"
        if fix and fields.get("confirm") != "yes":
            return admin_page(
                request,
                "reconcile_confirm.html",
                session,
                title="Confirm the fix",
                provider=provider,
            )
        try:
            report = await billing.customers.reconcile(provider, fix=fix)
        except ValidationError as exc:
            message = "; ".join(e["message"] for e in exc.errors)
            return reconcile_page(request, session, status=422, error=message, provider=provider)
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
