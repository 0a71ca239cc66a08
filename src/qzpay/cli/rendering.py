"""Output: Rich tables for people, JSON (``--json``) for scripts.

User data is printed as plain text, never interpreted as Rich markup."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from qzpay.catalog.diff import CatalogDiff
from qzpay.catalog.models import Plan, Price
from qzpay.customers.models import Customer
from qzpay.customers.reconcile import ReconcileReport
from qzpay.customers.service import SyncReport
from qzpay.events import Event
from qzpay.page import Page


def console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False))


def _cell(value: object) -> Text:
    """Plain text: user data is never interpreted as Rich markup."""
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, dict):
        return Text(", ".join(f"{k}={v}" for k, v in value.items()) or "-")
    return Text(str(value))


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


# -- customers and events -------------------------------------------------------------------


def show_customer(customer: Customer, *, as_json: bool) -> None:
    if as_json:
        print_json(customer.model_dump(mode="json"))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for field, value in customer.model_dump(mode="json").items():
        if field == "address" and value is not None:
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
        table.add_row(field, _cell(value))
    console().print(table)


def show_customers(
    customers: list[Customer],
    *,
    total: int,
    limit: int,
    offset: int,
    has_more: bool,
    as_json: bool,
) -> None:
    if as_json:
        print_json(
            {
                "data": [c.model_dump(mode="json") for c in customers],
                "total": total,
                "limit": limit,
                "offset": offset,
                "has_more": has_more,
            }
        )
        return
    table = Table(title=None, show_lines=False)
    table.add_column("id", no_wrap=True)  # ids stay whole, to copy and paste
    for column in ("email", "name", "metadata", "created_at", "deleted_at"):
        table.add_column(column, overflow="fold")
    for c in customers:
        table.add_row(
            _cell(c.id),
            _cell(c.email),
            _cell(c.name),
            _cell(c.metadata),
            _cell(_when(c.created_at)),
            _cell(_when(c.deleted_at)),
        )
    out = console()
    out.print(table)
    shown = f"{offset + 1}-{offset + len(customers)}" if customers else "none"
    more = f"; next page: --offset {offset + len(customers)}" if has_more else ""
    out.print(Text(f"{shown} of {total}{more}", style="dim"))


def show_events(events: list[Event], *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "data": [e.model_dump(mode="json") for e in events],
                "next_after": events[-1].id if events else None,
            }
        )
        return
    table = Table()
    for column in ("id", "type", "customer"):
        table.add_column(column, no_wrap=True)
    for column in ("created_at", "changed"):
        table.add_column(column, overflow="fold")
    for e in events:
        table.add_row(
            _cell(e.id),
            _cell(e.type),
            _cell(e.data.id),
            _cell(_when(e.created_at)),
            _cell(", ".join(sorted(e.previous)) if e.previous else None),
        )
    console().print(table)


# -- plans, prices and the catalog ---------------------------------------------------------


def _show_record(record: Plan | Price, *, as_json: bool) -> None:
    if as_json:
        print_json(record.model_dump(mode="json"))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for field, value in record.model_dump(mode="json").items():
        if isinstance(value, list):
            value = ", ".join(value) or None
        table.add_row(field, _cell(value))
    console().print(table)


def show_plan(plan: Plan, *, as_json: bool) -> None:
    _show_record(plan, as_json=as_json)


def show_price(price: Price, *, as_json: bool) -> None:
    _show_record(price, as_json=as_json)


def _page_footer(out: Console, page: Page[Any]) -> None:
    shown = f"{page.offset + 1}-{page.offset + len(page.data)}" if page.data else "none"
    more = f"; next page: --offset {page.offset + len(page.data)}" if page.has_more else ""
    out.print(Text(f"{shown} of {page.total}{more}", style="dim"))


def show_plans(page: Page[Plan], *, as_json: bool) -> None:
    if as_json:
        print_json(page.model_dump(mode="json"))
        return
    table = Table()
    for column in ("id", "key"):
        table.add_column(column, no_wrap=True)
    for column in ("name", "active", "entitlements", "limits", "created_at"):
        table.add_column(column, overflow="fold")
    for plan in page.data:
        table.add_row(
            _cell(plan.id),
            _cell(plan.key),
            _cell(plan.name),
            _cell("yes" if plan.active else "no"),
            _cell(", ".join(plan.entitlements) or None),
            _cell(plan.limits),
            _cell(_when(plan.created_at)),
        )
    out = console()
    out.print(table)
    _page_footer(out, page)


def show_prices(page: Page[Price], *, as_json: bool) -> None:
    if as_json:
        print_json(page.model_dump(mode="json"))
        return
    table = Table()
    for column in ("id", "plan_id"):
        table.add_column(column, no_wrap=True)
    for column in ("amount", "every", "lookup_key", "active", "created_at"):
        table.add_column(column, overflow="fold")
    for price in page.data:
        count = price.interval_count
        table.add_row(
            _cell(price.id),
            _cell(price.plan_id),
            _cell(f"{price.major_amount()} {price.currency}"),
            _cell(price.interval if count == 1 else f"{count} {price.interval}s"),
            _cell(price.lookup_key),
            _cell("yes" if price.active else "no"),
            _cell(_when(price.created_at)),
        )
    out = console()
    out.print(table)
    _page_footer(out, page)


def show_catalog_diff(diff: CatalogDiff, *, as_json: bool) -> None:
    """The diff as text (``str(diff)``: one line per change) or as ``diff.as_dict()``."""
    if as_json:
        print_json(diff.as_dict())
        return
    typer.echo(str(diff))


# -- provider reports -----------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value of a report, as JSON-ready data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def reconcile_json(report: ReconcileReport) -> dict[str, Any]:
    """The report as JSON: its fields, ``in_sync``, and each drifted field as
    ``{"local": ..., "provider": ...}``."""
    fields = dataclasses.asdict(report)
    fields["drift"] = [
        {
            "customer_id": drift.customer_id,
            "provider_customer_id": drift.provider_customer_id,
            "fields": {
                name: {"local": _plain(local), "provider": _plain(remote)}
                for name, (local, remote) in drift.fields.items()
            },
        }
        for drift in report.drift
    ]
    return {"provider": fields.pop("provider"), "in_sync": report.in_sync, **fields}


def _ids(values: Sequence[str], shown: int = 5) -> Text:
    if not values:
        return Text("-", style="dim")
    more = f" … (+{len(values) - shown} more)" if len(values) > shown else ""
    return Text(", ".join(values[:shown]) + more)


def _listed(value: object) -> list[str]:
    """A report field's entries as text (a dict's as ``key: value``)."""
    if isinstance(value, dict):
        return [
            f"{key}: {' + '.join(item) if isinstance(item, list) else item}"
            for key, item in value.items()
        ]
    if isinstance(value, list):
        return [str(item) for item in value]
    return []


def show_reconcile(report: ReconcileReport, *, fixed_now: bool) -> None:
    """The report as a table of checks; ids only (field values, perhaps personal data, are
    left to --json). Report fields this table does not know get a row of their own."""
    name = report.provider
    out = console()
    out.print(
        Text(
            f"{name}: {report.local_customers} customers here, "
            f"{report.provider_customers} at {name}"
        )
    )
    table = Table()
    table.add_column("check")
    table.add_column("count", justify="right")
    table.add_column("customers", overflow="fold")
    labels = {
        "unlinked": f"not linked to {name}",
        "missing_at_provider": f"linked, missing at {name}",
        "missing_locally": f"at {name}, unknown here [{name} ids]",
        "duplicates": f"several copies at {name} [{name} ids]",
        "deleted_locally_live_at_provider": f"deleted here, live at {name}",
        "drift": "fields differ",
        "pending": "skipped: sync pending",
        "unmanaged": f"not from qzpay [{name} ids]",
    }
    values: dict[str, list[str]] = {
        "drift": [f"{d.customer_id} ({', '.join(d.fields)})" for d in report.drift]
    }
    for field in dataclasses.fields(report):
        if field.name not in values and field.name != "fixed":
            values[field.name] = _listed(getattr(report, field.name))
    for field_name, label in labels.items():
        table.add_row(Text(label), Text(str(len(values[field_name]))), _ids(values[field_name]))
    for field_name, entries in values.items():
        if field_name not in labels and isinstance(getattr(report, field_name), list | dict):
            label = field_name.replace("_", " ")
            table.add_row(Text(label), Text(str(len(entries))), _ids(entries))
    out.print(table)
    for line in report.fixed:
        out.print(Text(f"fixed: {line}"))
    if report.in_sync:
        out.print(Text("in sync", style="green"))
    elif fixed_now:
        out.print(
            Text(
                f"not in sync; {len(report.fixed)} fixed: run again without --fix to see "
                "what remains",
                style="yellow",
            )
        )
    else:
        out.print(Text("not in sync: --fix repairs what is safe", style="yellow"))


def show_sync_report(report: SyncReport, *, as_json: bool) -> None:
    if as_json:
        print_json(dataclasses.asdict(report))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for field, value in dataclasses.asdict(report).items():
        table.add_row(field, str(value))
    console().print(table)


def show_checks(
    summary: str,
    column: str,
    rows: list[tuple[str, list[str]]],
    *,
    fixed: list[str],
    in_sync: bool,
    fixed_now: bool,
) -> None:
    """A reconcile report as a table of checks (label, count, the first ids), then what was
    fixed and the verdict: the catalog's and the subscriptions' reports."""
    out = console()
    out.print(Text(summary))
    table = Table()
    table.add_column("check")
    table.add_column("count", justify="right")
    table.add_column(column, overflow="fold")
    for label, ids in rows:
        shown = ", ".join(ids[:5]) + (f" … (+{len(ids) - 5} more)" if len(ids) > 5 else "")
        table.add_row(label, str(len(ids)), shown or Text("-", style="dim"))
    out.print(table)
    for line in fixed:
        out.print(Text(f"fixed: {line}"))
    if in_sync:
        out.print(Text("in sync", style="green"))
    elif fixed_now:
        out.print(Text("fixed what is safe; run again to confirm", style="yellow"))
    else:
        out.print(Text("not in sync", style="yellow"))
