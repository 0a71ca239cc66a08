"""Customer pages: search and list, one customer, edit, delete."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qzpay.admin import views
from qzpay.admin.context import Admin, Fields
from qzpay.admin.forms import ADDRESS_FIELDS, ADDRESS_LABELS, CustomerForm, address_value
from qzpay.admin.render import page
from qzpay.admin.session import Session
from qzpay.customers.models import Customer
from qzpay.customers.service import scan_filters
from qzpay.customers.validation import check_id
from qzpay.errors import ConflictError, NotFoundError, ProviderSyncError, ValidationError
from qzpay.events import Event
from qzpay.storage.base import SubscriptionFilter, SyncTask
from qzpay.subscriptions.models import EntitlementsChange

PAGE_SIZE: Final = 50
TIMELINE_SIZE: Final = 50
SUBSCRIPTIONS_SHOWN: Final = 20


def _search(query: Fields) -> dict[str, str]:
    return {
        "email": query.get("email", "").strip(),
        "metadata": query.get("metadata", "").strip(),
        "provider_id": query.get("provider_id", "").strip(),
        "deleted": "1" if query.get("deleted") in ("1", "on", "true") else "",
        "before": query.get("before", "").strip(),
    }


def timeline_rows(events: list[Event[Any]]) -> list[dict[str, Any]]:
    """Each event with the fields it changed: (field, value before, value after); a change of
    what the customer may use shows its entitlements before and after."""
    rows = []
    for event in events:
        changes: list[tuple[str, object, object]]
        if isinstance(event.data, EntitlementsChange):
            changes = [("entitlements", event.data.before, event.data.after)]
        else:
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
    customer_route = views.record_route(router, admin, "customer", billing.customers.get)

    def customer_page(
        request: Request,
        session: Session,
        found: Customer,
        template: str,
        title: str,
        status: int = 200,
        **context: Any,
    ) -> Response:
        """A page about one customer (``customer`` in ``template``)."""
        return page(
            request,
            template,
            session=session,
            status=status,
            title=title,
            customer=found,
            **context,
        )

    @router.get("/customers", name="qzpay_admin_customers")
    @admin.signed_in
    async def customers(request: Request, session: Session, query: Fields) -> Response:
        search = _search(query)
        errors: dict[str, str] = {}
        batch: list[Customer] = []
        if search["provider_id"]:
            try:
                found = await billing.customers.get_by_external_id(search["provider_id"])
                batch = [] if found is None else [found]
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
        kept = {k: v for k, v in search.items() if k != "before"}
        return page(
            request,
            "customers.html",
            session=session,
            status=422 if errors else 200,
            title="Customers",
            search=search,
            errors=errors,
            pager=views.Pager.of(batch, PAGE_SIZE, kept, search["before"]),
            done=query.get("done"),
        )

    @customer_route("GET", "", "qzpay_admin_customer")
    async def customer(
        request: Request, session: Session, query: Fields, found: Customer
    ) -> Response:
        task: SyncTask | None = None
        if await billing.storage.count_sync_tasks():  # cheap when nothing is pending
            async with billing.storage.transaction() as tx:
                task = await tx.get_sync_task(found.id)
        events = await billing.storage.list_record_events(found.id, limit=TIMELINE_SIZE)
        # at most two indexed reads: the newest subscriptions (one more tells whether there
        # are more), then what the customer may use now, unless none of them all grants any
        subscriptions = await billing.subscriptions.scan_page(
            SubscriptionFilter(customer_id=found.id), None, SUBSCRIPTIONS_SHOWN + 1
        )
        access: list[str] = []
        if len(subscriptions) > SUBSCRIPTIONS_SHOWN or any(s.grants_access for s in subscriptions):
            access = await billing.entitlements.list(found.id)
        return customer_page(
            request,
            session,
            found,
            "customer.html",
            f"Customer {found.email}",
            address=address_value(found.address),
            task=task,
            timeline=timeline_rows(events),
            timeline_size=TIMELINE_SIZE,
            subscriptions=subscriptions[:SUBSCRIPTIONS_SHOWN],
            more_subscriptions=len(subscriptions) > SUBSCRIPTIONS_SHOWN,
            access=access,
            done=query.get("done"),
        )

    def edit_page(
        request: Request, session: Session, found: Customer, form: CustomerForm, status: int = 200
    ) -> Response:
        return customer_page(
            request,
            session,
            found,
            "edit.html",
            f"Edit {found.email}",
            status,
            form=form,
            address_fields=ADDRESS_FIELDS,
            address_labels=ADDRESS_LABELS,
        )

    @customer_route("GET", "/edit", "qzpay_admin_edit")
    async def edit_form(request: Request, session: Session, _: Fields, found: Customer) -> Response:
        return edit_page(request, session, found, CustomerForm.of(found))

    @customer_route("POST", "/edit", "qzpay_admin_edit_post")
    async def edit(request: Request, session: Session, fields: Fields, found: Customer) -> Response:
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
            return views.not_found(request, session, "customer", request.path_params["customer_id"])
        except (ConflictError, ProviderSyncError) as exc:
            form.add_error("form", exc.message)
            return edit_page(request, session, found, form, 409)
        return admin.redirect(request, "customer", {"done": "updated"}, customer_id=found.id)

    @customer_route("GET", "/delete", "qzpay_admin_delete")
    async def delete_form(
        request: Request, session: Session, _: Fields, found: Customer
    ) -> Response:
        return customer_page(request, session, found, "delete.html", "Delete customer")

    @customer_route("POST", "/delete", "qzpay_admin_delete_post")
    async def delete(request: Request, session: Session, _: Fields, found: Customer) -> Response:
        try:
            await billing.customers.delete(found.id)
        except (ConflictError, ProviderSyncError) as exc:
            return customer_page(
                request, session, found, "delete.html", "Delete customer", 409, error=exc.message
            )
        return admin.redirect(request, "customer", {"done": "deleted"}, customer_id=found.id)
