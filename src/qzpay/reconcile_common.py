"""The reconcile walk shared by every record qzpay copies to providers (customers, plans,
prices): the provider's objects indexed by the qzpay id they carry, records with provider work
pending left alone, a retired record's live copies retired there, duplicates, linking or
creating an unlinked record's copy, a linked copy gone. Written once so that the three
reconciles report and repair these cases alike; each kind keeps its own field comparison.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import Field, dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from qzpay.errors import ConflictError
from qzpay.storage.base import Storage

# Every pending task at once: reconcile runs rarely, and a task left out would be repaired twice.
PENDING_SCAN = 100_000


class Identified(Protocol):
    @property
    def id(self) -> str: ...


L = TypeVar("L", bound=Identified)
C = TypeVar("C", bound=Identified)


DIFFERS: Mapping[str, bool] = MappingProxyType({"differs": True})
"""The metadata of a report field whose entries mean the two sides differ: while any such
field lists anything, the report is not ``in_sync`` (what is pending, fixed or unmanaged is
not a difference)."""


class Verdict:
    """Base of a reconcile report (a dataclass): ``in_sync`` from its fields marked
    :data:`DIFFERS`."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @property
    def in_sync(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self) if f.metadata.get("differs"))


class Findings(Protocol):
    """The report fields the shared walk fills (every copied kind's report has them)."""

    provider: str
    unlinked: list[str]
    missing_at_provider: list[str]
    duplicates: dict[str, list[str]]
    pending: list[str]
    fixed: list[str]
    conflicts: dict[str, str]


@dataclass
class Copies(Generic[C]):
    """The provider's objects of one kind, by id and by the qzpay id they carry."""

    listed: int = 0
    by_id: dict[str, C] = field(default_factory=dict)
    by_qzpay: dict[str, list[C]] = field(default_factory=dict)

    @classmethod
    async def index(
        cls,
        found: AsyncIterator[C],
        qzpay_id: Callable[[C], str | None],
        *,
        unmanaged: list[str],
    ) -> Copies[C]:
        """Every object listed; those carrying no qzpay id go to ``unmanaged``."""
        copies = cls()
        async for copy in found:
            copies.listed += 1
            copies.by_id[copy.id] = copy
            owner = qzpay_id(copy)
            if owner is None:
                unmanaged.append(copy.id)
            else:
                copies.by_qzpay.setdefault(owner, []).append(copy)
        return copies

    def missing_locally(
        self, seen: set[str], pending: set[str], *, live: Callable[[C], bool]
    ) -> list[str]:
        """The ``live`` copies carrying a qzpay id that is neither walked nor pending here."""
        return [
            copy.id
            for owner, copies in self.by_qzpay.items()
            if owner not in seen and owner not in pending
            for copy in copies
            if live(copy)
        ]


async def pending_records(storage: Storage) -> set[str]:
    """Ids of records with provider work pending: reconcile leaves them to ``sync_pending``."""
    return {task.record_id for task in await storage.list_sync_tasks(limit=PENDING_SCAN)}


@dataclass(frozen=True)
class RecordKind(Generic[L, C]):
    """How the walk treats one kind of record and its copies at one provider."""

    name: str
    """``customer``, ``plan``, ``price``: in the notes of what ``fix`` did."""
    links: Callable[[L], Mapping[str, str]]
    alive: Callable[[L], bool]
    """Not deleted (customers) or active (catalog): it should have a live copy there."""
    live_copy: Callable[[C], bool]
    create: Callable[[L], Awaitable[C]]
    """Make the missing copy there; a ConflictError is reported in ``conflicts``."""
    link: Callable[[str, str], Awaitable[object]]
    """``(record_id, copy_id)``: store the link here, nothing sent."""
    retire: Callable[[str], Awaitable[object]]
    """Delete or archive a copy there, by its id (each with its own key)."""
    retired: list[str]
    """The report's list of retired records still live there."""
    retired_note: str
    """What ``fix`` notes per retired copy; formatted with ``copy`` and ``record``."""


async def linked_copy(
    report: Findings,
    kind: RecordKind[L, C],
    record: L,
    copies: Copies[C],
    pending: set[str],
    *,
    fix: bool,
) -> C | None:
    """The walk every record takes before its fields are compared. The linked copy when they
    are to be compared with it, else None (the record was reported or fixed already)."""
    if record.id in pending:
        report.pending.append(record.id)
        return None
    linked_id = kind.links(record).get(report.provider)
    linked = None if linked_id is None else copies.by_id.get(linked_id)
    carrying = copies.by_qzpay.get(record.id, [])
    live = [copy for copy in carrying if kind.live_copy(copy)]
    if kind.alive(record):
        if len(live) > 1:
            report.duplicates[record.id] = [copy.id for copy in live]
    else:
        targets = [linked.id] if linked is not None and kind.live_copy(linked) else []
        targets += [copy.id for copy in live if copy.id not in targets]
        if targets:
            await _retire(report, kind, record, targets, fix=fix)
            return None
        if linked is None:
            return None
        return linked  # an inactive linked copy: its other fields may still have drifted
    if linked_id is None:
        await _unlinked(report, kind, record, live or carrying, fix=fix)
        return None
    if linked is None:
        report.missing_at_provider.append(record.id)
    return linked


async def _retire(
    report: Findings, kind: RecordKind[L, C], record: L, targets: Iterable[str], *, fix: bool
) -> None:
    """A retired record's live copies (the linked one and any other carrying its id) all go,
    so that the next reconcile reports nothing for it."""
    kind.retired.append(record.id)
    if not fix:
        return
    for copy_id in targets:
        await kind.retire(copy_id)
        note = kind.retired_note.format(provider=report.provider, copy=copy_id, record=record.id)
        report.fixed.append(note)


async def _unlinked(
    report: Findings, kind: RecordKind[L, C], record: L, candidates: list[C], *, fix: bool
) -> None:
    """Report an unlinked live record; with ``fix``, link it to its one copy there (the live
    one, if several carry its id), or create the copy when none carries it."""
    report.unlinked.append(record.id)
    if not fix:
        return
    if len(candidates) == 1:
        await kind.link(record.id, candidates[0].id)
        report.fixed.append(f"linked {record.id} to {candidates[0].id}")
        return
    if candidates:
        return  # which of several is its copy is for a person to say (live ones: duplicates)
    try:
        made = await kind.create(record)
    except ConflictError as conflict:
        report.conflicts[record.id] = conflict.message
        return
    await kind.link(record.id, made.id)
    report.fixed.append(f"created {report.provider} {kind.name} {made.id} for {record.id}")


def field_drift(local: object, seen: object, fields: Iterable[str]) -> dict[str, tuple[Any, Any]]:
    """``fields`` whose value differs in ``seen`` (the record as the provider's copy would
    make it): field -> (local, provider). Links are not compared: they are qzpay's own."""
    return {
        name: (getattr(local, name), getattr(seen, name))
        for name in fields
        if not name.startswith("provider_") and getattr(local, name) != getattr(seen, name)
    }
