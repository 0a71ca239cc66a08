"""Customer pages: search and list, one customer, edit, delete."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qzpay.admin.context import Admin
from qzpay.admin.forms import ADDRESS_FIELDS, ADDRESS_LABELS, CustomerForm, address_value
from qzpay.admin.render import page
from qzpay.admin.session import Session
from qzpay.customers.models import Customer
from qzpay.customers.service import scan_filters
from qzpay.customers.validation import check_id
from qzpay.errors import ConflictError, NotFoundError, ProviderSyncError, ValidationError
from qzpay.events import Event
from qzpay.storage.base import SyncTask

PAGE_SIZE: Final = 50
TIMELINE_SIZE: Final = 50


def _search(request: Request) -> dict[str, str]:
    q = request.query_params
    return {
        "email": q.get("email", "").strip(),
        "metadata": q.get("metadata", "").strip(),
        "provider_id": q.get("provider_id", "").strip(),
        "deleted": "1" if q.get("deleted") in ("1", "on", "true") else "",
        "before": q.get("before", "").strip(),
    }


def timeline_rows(events: list[Event]) -> list[dict[str, Any]]:
    """Each event with the fields it changed: (field, value before, value after)."""
    rows = []
    for event in events:
        changes = [
            (name, old, _plain(getattr(event.data, name, None)))
            for name, old in sorted((event.previous or {}).items())
        ]
        rows.append({"event": event, "changes": changes})
    return rows


def _plain(value: object) -> object:
    return address_value(value) if hasattr(value, "model_dump") else value  # type: ignore[arg-type]


def add_customer_routes(router: APIRouter, admin: Admin) -> None:
    billing = admin.billing

    def not_found(request: Request, session: Session, customer_id: str) -> Response:
        return page(
            request,
            "refused.html",
            session=session,
            status=404,
            title="Not found",
            message=f"There is no customer {customer_id!r}.",
        )

    async def load(customer_id: str) -> Customer | None:
        try:
            return await billing.customers.get(customer_id)
        except ValidationError:
            return None

    @router.get("/customers", name="qzpay_admin_customers")
    async def customers(request: Request) -> Response:
        session = admin.page_session(request)
        if isinstance(session, Response):
            return session
        search = _search(request)
        errors: dict[str, str] = {}
        rows: list[Customer] = []
        has_more = False
        if search["provider_id"]:
            try:
                found = await billing.customers.get_by_external_id(search["provider_id"])
                rows = [] if found is None else [found]
            except (ValidationError, ConflictError) as exc:
                errors["provider_id"] = getattr(exc, "message", str(exc))
        else:
            metadata: dict[str, str] | None = None
            if search["metadata"]:
                key, sep, value = search["metadata"].partition("=")
                if not sep or not key.strip():
                    errors["metadata"] = "write the filter as key=value"
                else:
                    metadata = {key.strip(): value.strip()}
            before = search["before"] or None
            try:
                if before is not None:
                    check_id(before, "before")
                filters = scan_filters(
                    search["email"] or None, metadata, bool(search["deleted"]), PAGE_SIZE + 1, {}
                )
            except ValidationError as exc:
                for error in exc.errors:
                    name = error["field"].partition(".")[0]
                    errors.setdefault(name if name in search else "email", error["message"])
            if not errors:
                batch = await billing.customers.scan_page(filters, before, PAGE_SIZE + 1)
                has_more = len(batch) > PAGE_SIZE
                rows = batch[:PAGE_SIZE]
        query = {k: v for k, v in search.items() if k != "before"}
        return page(
            request,
            "customers.html",
            session=session,
            status=422 if errors else 200,
            title="Customers",
            search=search,
            errors=errors,
            rows=rows,
            next_query={**query, "before": rows[-1].id} if has_more and rows else None,
            first_query=query if search["before"] else None,
            done=request.query_params.get("done"),
        )

    @router.get("/customers/{customer_id}", name="qzpay_admin_customer")
    async def customer(request: Request, customer_id: str) -> Response:
        session = admin.page_session(request)
        if isinstance(session, Response):
            return session
        found = await load(customer_id)
        if found is None:
            return not_found(request, session, customer_id)
        task: SyncTask | None = None
        if await billing.storage.count_sync_tasks():  # cheap when nothing is pending
            async with billing.storage.transaction() as tx:
                task = await tx.get_sync_task(found.id)
        events = await admin.tail.latest(customer_id=found.id, limit=TIMELINE_SIZE)
        return page(
            request,
            "customer.html",
            session=session,
            title=f"Customer {found.email}",
            customer=found,
            address=address_value(found.address),
            task=task,
            timeline=timeline_rows(events),
            window=admin.tail.size,
            done=request.query_params.get("done"),
        )

    def edit_page(
        request: Request, session: Session, found: Customer, form: CustomerForm, status: int = 200
    ) -> Response:
        return page(
            request,
            "edit.html",
            session=session,
            status=status,
            title=f"Edit {found.email}",
            customer=found,
            form=form,
            address_fields=ADDRESS_FIELDS,
            address_labels=ADDRESS_LABELS,
        )

    @router.get("/customers/{customer_id}/edit", name="qzpay_admin_edit")
    async def edit_form(request: Request, customer_id: str) -> Response:
        session = admin.page_session(request)
        if isinstance(session, Response):
            return session
        found = await load(customer_id)
        if found is None:
            return not_found(request, session, customer_id)
        return edit_page(request, session, found, CustomerForm.of(found))

    @router.post("/customers/{customer_id}/edit", name="qzpay_admin_edit_post")
    async def edit(request: Request, customer_id: str) -> Response:
        got = await admin.form(request)
        if isinstance(got, Response):
            return got
        session, fields = got
        assert session is not None
        found = await load(customer_id)
        if found is None:
            return not_found(request, session, customer_id)
        form = CustomerForm.parse(fields)
        changes = form.changes(found)
        if changes is None:
            return edit_page(request, session, found, form, 422)
        try:
            await billing.customers.update(found.id, **changes)
        except ValidationError as exc:
            form.take_errors(exc.errors)
            return edit_page(request, session, found, form, 422)
        except NotFoundError:
            return not_found(request, session, customer_id)
        except (ConflictError, ProviderSyncError) as exc:
            form.add_error("form", exc.message)
            return edit_page(request, session, found, form, 409)
        return admin.redirect(request, "customer", {"done": "updated"}, customer_id=found.id)

    @router.get("/customers/{customer_id}/delete", name="qzpay_admin_delete")
    async def delete_form(request: Request, customer_id: str) -> Response:
        session = admin.page_session(request)
        if isinstance(session, Response):
            return session
        found = await load(customer_id)
        if found is None:
            return not_found(request, session, customer_id)
        return page(
            request, "delete.html", session=session, title="Delete customer", customer=found
        )

    @router.post("/customers/{customer_id}/delete", name="qzpay_admin_delete_post")
    async def delete(request: Request, customer_id: str) -> Response:
        got = await admin.form(request)
        if isinstance(got, Response):
            return got
        session, _ = got
        assert session is not None
        found = await load(customer_id)
        if found is None:
            return not_found(request, session, customer_id)
        try:
            await billing.customers.delete(found.id)
        except (ConflictError, ProviderSyncError) as exc:
            return page(
                request,
                "delete.html",
                session=session,
                status=409,
                title="Delete customer",
                customer=found,
                error=exc.message,
            )
        return admin.redirect(request, "customer", {"done": "deleted"}, customer_id=found.id)
