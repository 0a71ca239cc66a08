"""The skeleton of the commands on records (customers, plans, prices, subscriptions): run a
call and show the record it returns, find a record by one of its keys, turn update options
into the changed fields, and list a page. One place, so that every resource answers "not
found", "give either" and "X and --clear-X exclude each other" alike."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, NoReturn, Protocol, TypeVar

import typer

from qzpay.billing import SyncBilling
from qzpay.cli.handling import EXIT_ERROR, fail
from qzpay.cli.options import Common, Paging, command
from qzpay.page import Page

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)


class Show(Protocol[R_contra]):
    """A ``show_…`` function of ``qzpay.cli.rendering``: a table, or JSON with ``--json``."""

    def __call__(self, shown: R_contra, /, *, as_json: bool) -> None: ...


def not_found(message: str, common: Common) -> NoReturn:
    fail(message, EXIT_ERROR, as_json=common.as_json, details={"code": "not_found"})


def show_result(
    common: Common,
    show: Show[R],
    call: Callable[[SyncBilling], R],
    *,
    providers: bool = False,
) -> None:
    """Open the billing (with the environment's providers if ``providers``), run ``call`` (a
    read or a write) on it and ``show`` what it returns."""
    with common.billing(providers=providers) as billing:
        show(call(billing), as_json=common.as_json)


@dataclass(frozen=True)
class Lookup(Generic[R]):
    """One way to find a record: the argument or option naming it (``PLAN_ID``, ``--key``),
    its value (None when not given), the read, and the message when nothing is found (a
    format string given the value)."""

    option: str
    value: str | None
    find: Callable[[SyncBilling, str], R | None]
    missing: str

    @classmethod
    def by_id(
        cls, noun: str, value: str | None, get: Callable[[SyncBilling], Callable[[str], R | None]]
    ) -> Lookup[R]:
        """The lookup by id: the ``<NOUN>_ID`` argument, ``get(billing)`` the read, and "no
        <noun> 'id'" when it finds none."""
        return cls(
            f"{noun.upper()}_ID", value, lambda billing, id_: get(billing)(id_), f"no {noun} {{!r}}"
        )


def show_found(common: Common, show: Show[R], *ways: Lookup[R]) -> None:
    """Show the record found the one way given; none or several given is a usage error, and
    nothing found is "not found" (exit 1)."""
    given = [way for way in ways if way.value is not None]
    if len(given) != 1:
        raise typer.BadParameter("give either " + " or ".join(way.option for way in ways))
    way, value = given[0], given[0].value
    assert value is not None
    with common.billing() as billing:
        record = way.find(billing, value)
        if record is None:
            not_found(way.missing.format(value), common)
        show(record, as_json=common.as_json)


def changed(given: bool, clear: bool, option: str, clear_option: str | None = None) -> bool:
    """Whether an update changes a field: set by ``option`` or cleared by its ``--clear-…``
    twin (``clear_option``, by default ``option`` with ``clear-`` in front); both at once is a
    usage error."""
    if given and clear:
        clearing = clear_option or f"--clear-{option.removeprefix('--')}"
        raise typer.BadParameter(f"{option} and {clearing} exclude each other")
    return given or clear


def list_command(
    filters: type[DataclassInstance],
    pages: Callable[[SyncBilling], Callable[..., Page[R]]],
    show: Show[Page[R]],
    doc: str,
) -> Callable[..., None]:
    """A ``list`` command (its help: ``doc``): the options of ``filters`` (an option group
    whose fields are keyword arguments of ``pages(billing)``, the list call), then ``--limit``
    and ``--offset``, and the page they name shown."""

    def list_page(*, filters: DataclassInstance, paging: Paging, common: Common) -> None:
        given = dataclasses.asdict(filters)
        show_result(
            common,
            show,
            lambda billing: pages(billing)(**given, limit=paging.limit, offset=paging.offset),
        )

    list_page.__doc__ = doc
    list_page.__annotations__ = {**list_page.__annotations__, "filters": filters}
    return command(list_page)
