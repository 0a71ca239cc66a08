"""The skeleton of the commands on one record (customers, plans, prices, subscriptions): run a
call and show the record it returns, find a record by one of its keys, and turn update options
into the changed fields. One place, so that every resource answers "not found", "give either"
and "X and --clear-X exclude each other" alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, Protocol, TypeVar

import typer

from qzpay.billing import SyncBilling
from qzpay.cli.handling import EXIT_ERROR, fail
from qzpay.cli.options import Common, parse_pairs

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


def merge_metadata(
    changes: dict[str, Any], metadata: Sequence[str] | None, unset: Sequence[str] | None
) -> None:
    """Add the ``--metadata``/``--unset-metadata`` patch to ``changes``, if there is one."""
    patch: dict[str, str | None] = dict(parse_pairs(metadata))
    for key in unset or ():
        if key in patch:
            raise typer.BadParameter(f"key {key!r} is both set and unset")
        patch[key] = None
    if patch:
        changes["metadata"] = patch
