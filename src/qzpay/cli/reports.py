"""The reconcile reports (customers, catalog, subscriptions): one JSON shape for all, and a table
of checks that each resource declares as data (a ``Checklist``: what it counts and its checks,
worded from one vocabulary of labels).

Tables list ids only: field values, perhaps personal data, are left to ``--json``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel
from rich.table import Table
from rich.text import Text

from qzpay.cli.rendering import console
from qzpay.customers.reconcile import ReconcileReport


class Reconciled(Protocol):
    """What the reconcile reports have in common: dataclasses naming their provider, with
    ``drift`` (dataclasses whose ``fields`` map a name to a (local, provider) pair)."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    provider: str
    fixed: list[str]

    @property
    def drift(self) -> Sequence[Any]: ...

    @property
    def in_sync(self) -> bool: ...


def _plain(value: Any) -> Any:
    """A drifted value as JSON-ready data (models dumped, times in ISO 8601)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else value


def reconcile_json(report: Reconciled) -> dict[str, Any]:
    """The report as JSON: its fields, ``in_sync``, and each drifted field as
    ``{"local": ..., "provider": ...}``."""
    fields = dataclasses.asdict(report)
    fields["drift"] = [
        {
            **drift,
            "fields": {
                name: {"local": _plain(local), "provider": _plain(remote)}
                for name, (local, remote) in drift["fields"].items()
            },
        }
        for drift in fields["drift"]
    ]
    return {"provider": fields.pop("provider"), "in_sync": report.in_sync, **fields}


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


def _fields(report: Reconciled) -> dict[str, Any]:
    return {field.name: getattr(report, field.name) for field in dataclasses.fields(report)}


# What each check is called, whichever resource's report it is in: a format string over the
# report's fields. A resource may call one of its own otherwise (``Checklist.labels``).
LABELS: Mapping[str, str] = {
    "unlinked": "not linked to {provider}",
    "missing_at_provider": "linked, missing at {provider}",
    "missing_locally": "at {provider}, unknown here [{provider} ids]",
    "duplicates": "several copies at {provider} [{provider} ids]",
    "deleted_locally_live_at_provider": "deleted here, live at {provider}",
    "archived_locally_active_at_provider": "archived here, active at {provider}",
    "drift": "fields differ",
    "pending": "skipped: sync pending",
    "unmanaged": "not from qzpay [{provider} ids]",
}


def _check_rows(
    report: Reconciled, checks: Sequence[str], labels: Mapping[str, str], *, drift_id: str
) -> list[tuple[str, list[str]]]:
    """A row per check (a report field): its label and its entries; a drift entry is the
    record's id (the drift's ``drift_id`` field) and the names of the fields that differ."""
    fields = _fields(report)
    rows: list[tuple[str, list[str]]] = []
    for field in checks:
        if field == "drift":
            entries = [f"{getattr(d, drift_id)} ({', '.join(d.fields)})" for d in report.drift]
        else:
            entries = _listed(fields[field])
        label = labels.get(field) or LABELS.get(field) or field.replace("_", " ")
        rows.append((label.format(**fields), entries))
    return rows


def _summary(report: Reconciled, counted: Sequence[str]) -> str:
    """The line above the table: how many of each ``counted`` kind of record (``plans``: the
    report's ``local_plans`` and ``provider_plans``) are on each side, as in "stripe: 3 plans
    and 2 prices here, 4 plans and 2 prices at stripe"; with one kind, "stripe: 3 customers
    here, 4 at stripe"."""
    fields = _fields(report)

    def counts(side: str) -> str:
        return " and ".join(f"{fields[f'{side}_{noun}']} {noun}" for noun in counted)

    there = counts("provider") if len(counted) > 1 else fields[f"provider_{counted[0]}"]
    return f"{report.provider}: {counts('local')} here, {there} at {report.provider}"


def _print_checks(
    report: Reconciled,
    counted: Sequence[str],
    rows: Iterable[tuple[str, Sequence[str]]],
    *,
    not_in_sync: str,
) -> None:
    """The summary line (``_summary``), the table of checks (label, count, the first ids,
    under the ``counted`` nouns), what was fixed, and the verdict (``not_in_sync`` when not in
    sync). Every cell is plain text, never markup: labels say "[stripe ids]" and ids are the
    provider's."""
    out = console()
    out.print(Text(_summary(report, counted)))
    table = Table()
    table.add_column("check")
    table.add_column("count", justify="right")
    table.add_column(" and ".join(counted), overflow="fold")
    for label, ids in rows:
        shown = Text(_first(ids)) if ids else Text("-", style="dim")
        table.add_row(Text(label), Text(str(len(ids))), shown)
    out.print(table)
    for line in report.fixed:
        out.print(Text(f"fixed: {line}"))
    if report.in_sync:
        out.print(Text("in sync", style="green"))
    else:
        out.print(Text(not_in_sync, style="yellow"))


@dataclass(frozen=True)
class Checklist:
    """How one resource's report reads as a table of checks: the kinds of record it counts
    (``_summary``; the ids column is headed with them), the drift's id field, the checks
    (report fields, in order) and the labels it words its own way."""

    counted: Sequence[str]
    drift_id: str
    checks: Sequence[str]
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def show(self, report: Reconciled, *, fixed_now: bool) -> None:
        rows = _check_rows(report, self.checks, self.labels, drift_id=self.drift_id)
        _print_checks(
            report,
            self.counted,
            rows,
            not_in_sync="fixed what is safe; run again to confirm" if fixed_now else "not in sync",
        )


def _first(ids: Sequence[str], shown: int = 5) -> str:
    more = f" … (+{len(ids) - shown} more)" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more if ids else ""


# -- customers ------------------------------------------------------------------------------------

CUSTOMER_CHECKS = (
    "unlinked",
    "missing_at_provider",
    "missing_locally",
    "duplicates",
    "deleted_locally_live_at_provider",
    "drift",
    "pending",
    "unmanaged",
)


def show_reconcile(report: ReconcileReport, *, fixed_now: bool) -> None:
    """The customers' report as a table of checks, every cell plain text. Report fields this
    table does not know get a row of their own."""
    known = {*CUSTOMER_CHECKS, "fixed"}
    others = [
        field.name
        for field in dataclasses.fields(report)
        if field.name not in known and isinstance(getattr(report, field.name), list | dict)
    ]
    rows = _check_rows(report, [*CUSTOMER_CHECKS, *others], {}, drift_id="customer_id")
    _print_checks(
        report,
        ("customers",),
        rows,
        not_in_sync=(
            f"not in sync; {len(report.fixed)} fixed: run again without --fix to see what remains"
            if fixed_now
            else "not in sync: --fix repairs what is safe"
        ),
    )
