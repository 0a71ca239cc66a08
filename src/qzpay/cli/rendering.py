"""Output: Rich tables for people, JSON (``--json``) for scripts.

Each resource declares how it is shown, as data (its ``View``): one record as a table of its
fields, each value as the view reads it, and a page as a table with a row per record, whose
columns say how to read each cell. User data is printed as plain text, never interpreted as
Rich markup. The reconcile reports are in ``qzpay.cli.reports``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from qzpay.catalog.diff import CatalogDiff
from qzpay.catalog.models import Plan, Price
from qzpay.customers.models import Customer
from qzpay.engine.pending import SyncReport
from qzpay.events import Event
from qzpay.page import Page
from qzpay.subscriptions.due import DueReport
from qzpay.subscriptions.models import Subscription

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)
M = TypeVar("M", bound=BaseModel)


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


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


# -- one record, or one report's counts: a table of name and value -------------------------------


def _fields_table(justify: Literal["left", "right"]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify=justify)
    return table


def show_record(record: BaseModel, shown: Callable[[str, Any], object], *, as_json: bool) -> None:
    """The record's JSON fields, each value as ``shown(field, value)`` gives it."""
    fields = record.model_dump(mode="json")
    if as_json:
        print_json(fields)
        return
    table = _fields_table("left")
    for field, value in fields.items():
        table.add_row(field, _cell(shown(field, value)))
    console().print(table)


def show_counts(report: SyncReport | DueReport, *, as_json: bool) -> None:
    """A report of counts (``sync-pending``, ``run-due``), one a line."""
    counts = dataclasses.asdict(report)
    if as_json:
        print_json(counts)
        return
    table = _fields_table("right")
    for name, count in counts.items():
        table.add_row(name, str(count))
    console().print(table)


# -- a list: a table with a row per record --------------------------------------------------------


@dataclass(frozen=True)
class Column(Generic[R_contra]):
    """A column of a list: its heading and a record's cell. An id column (``whole``) never
    wraps, so that its ids can be copied and pasted; the others fold."""

    heading: str
    cell: Callable[[R_contra], object]
    whole: bool = False


class _Listed(Protocol):
    """What every record listed has: an id, and the time it was created."""

    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


# The columns every list has, alike: first the id, and (but for subscriptions) created_at.
ID: Column[_Listed] = Column("id", lambda record: record.id, whole=True)
CREATED_AT: Column[_Listed] = Column("created_at", lambda record: _when(record.created_at))


def _rows(columns: Sequence[Column[R]], records: Sequence[R]) -> Table:
    table = Table()
    for column in columns:
        if column.whole:
            table.add_column(column.heading, no_wrap=True)
        else:
            table.add_column(column.heading, overflow="fold")
    for record in records:
        table.add_row(*(_cell(column.cell(record)) for column in columns))
    return table


@dataclass(frozen=True)
class View(Generic[M]):
    """How one resource is shown: its list's columns, and how a field's (JSON) value reads in
    the one-record table."""

    columns: Sequence[Column[M]]
    value: Callable[[str, Any], object]

    def one(self, record: M, *, as_json: bool) -> None:
        show_record(record, self.value, as_json=as_json)

    def page(self, page: Page[M], *, as_json: bool) -> None:
        """A page as a table, then which of the total it holds and the next page's offset."""
        if as_json:
            print_json(page.model_dump(mode="json"))
            return
        out = console()
        out.print(_rows(self.columns, page.data))
        shown = f"{page.offset + 1}-{page.offset + len(page.data)}" if page.data else "none"
        more = f"; next page: --offset {page.offset + len(page.data)}" if page.has_more else ""
        out.print(Text(f"{shown} of {page.total}{more}", style="dim"))


# -- customers and events -------------------------------------------------------------------------


def _customer_value(field: str, value: Any) -> object:
    if field == "address" and value is not None:
        return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
    return value


CUSTOMERS: View[Customer] = View(
    (
        ID,
        Column("email", lambda c: c.email),
        Column("name", lambda c: c.name),
        Column("metadata", lambda c: c.metadata),
        CREATED_AT,
        Column("deleted_at", lambda c: _when(c.deleted_at)),
    ),
    _customer_value,
)
show_customer, show_customers = CUSTOMERS.one, CUSTOMERS.page

EVENT_COLUMNS: tuple[Column[Event], ...] = (
    ID,
    Column("type", lambda e: e.type, whole=True),
    Column("customer", lambda e: e.data.id, whole=True),
    CREATED_AT,
    Column("changed", lambda e: ", ".join(sorted(e.previous)) if e.previous else None),
)


def show_events(events: list[Event], *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "data": [e.model_dump(mode="json") for e in events],
                "next_after": events[-1].id if events else None,
            }
        )
        return
    console().print(_rows(EVENT_COLUMNS, events))


# -- plans, prices and the catalog ----------------------------------------------------------------


def _every(price: Price) -> str:
    count = price.interval_count
    return price.interval if count == 1 else f"{count} {price.interval}s"


def _catalog_value(field: str, value: Any) -> object:
    return ", ".join(value) or None if isinstance(value, list) else value


PLANS: View[Plan] = View(
    (
        ID,
        Column("key", lambda plan: plan.key, whole=True),
        Column("name", lambda plan: plan.name),
        Column("active", lambda plan: _yes_no(plan.active)),
        Column("entitlements", lambda plan: ", ".join(plan.entitlements) or None),
        Column("limits", lambda plan: plan.limits),
        CREATED_AT,
    ),
    _catalog_value,
)
PRICES: View[Price] = View(
    (
        ID,
        Column("plan_id", lambda price: price.plan_id, whole=True),
        Column("amount", lambda price: f"{price.major_amount()} {price.currency}"),
        Column("every", _every),
        Column("lookup_key", lambda price: price.lookup_key),
        Column("active", lambda price: _yes_no(price.active)),
        CREATED_AT,
    ),
    _catalog_value,
)
show_plan, show_plans = PLANS.one, PLANS.page
show_price, show_prices = PRICES.one, PRICES.page


def show_catalog_diff(diff: CatalogDiff, *, as_json: bool) -> None:
    """The diff as text (``str(diff)``: one line per change) or as ``diff.as_dict()``."""
    if as_json:
        print_json(diff.as_dict())
        return
    typer.echo(str(diff))


# -- subscriptions --------------------------------------------------------------------------------


def _subscription_value(field: str, value: Any) -> object:
    if value == {}:
        return None
    return _yes_no(value) if isinstance(value, bool) else value


SUBSCRIPTIONS: View[Subscription] = View(
    (
        ID,
        Column("customer_id", lambda sub: sub.customer_id, whole=True),
        Column("plan_id", lambda sub: sub.plan_id),
        Column("status", lambda sub: sub.status),
        Column("qty", lambda sub: sub.quantity),
        Column("period_end", lambda sub: _when(sub.current_period_end)),
        Column("cancels", lambda sub: _yes_no(sub.cancel_at_period_end)),
        Column("provider", lambda sub: sub.provider),
    ),
    _subscription_value,
)
show_subscription, show_subscriptions = SUBSCRIPTIONS.one, SUBSCRIPTIONS.page
