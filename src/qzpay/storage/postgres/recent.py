"""The records this storage recently created, changed or read for a change (customers, and plans,
prices and subscriptions changed or read for a change), each with its row version (xmin), so an
optimistic update or delete of one of them skips its read: one round trip (the checked statement)
instead of two. Plain reads (``get``) are not remembered: that made a get
about 5 % slower (tens of thousands of gets, remembering on and off taking turns), and gets far
outnumber updates.

Nothing read from here is trusted: the checked statement updates the row only if it is still at
the remembered version, and a transaction that read a remembered customer but wrote nothing
through the check (a no-op update, a delete of a deleted customer, an error raised from what it
read) asks the database whether the version is still current before it commits or raises
(qzpay.storage.postgres.transaction). A stale entry therefore costs one more round trip and a
retry from a fresh read, never a wrong result. Entries expire after ``RECENT_VERSION_SECONDS``
(so a 32-bit xmin cannot come round again while one is held, and a customer another process
changes is not tried stale for long) and the oldest go beyond ``capacity``.

Only versions that name exactly one row state are kept: a row read outside a transaction, or
written by a statement that committed on its own (one statement changes a row once), or found by
a checked statement that refused a stale copy (it answers with the row as it is, so the retry
needs no read), or inserted by a BEGIN ... COMMIT transaction that did not change it again
(remembered once that transaction has committed). Any other write in a BEGIN ... COMMIT
transaction, which may change the row again under the same xmin, forgets it.
Measured in docs/benchmarks.md ("PostgreSQL writes (issue 16)").
"""

from __future__ import annotations

import time
from typing import TypeVar

from pydantic import BaseModel

from qzpay.customers.models import Customer
from qzpay.storage.copies import copy_customer, copy_flat_record

M = TypeVar("M", bound=BaseModel)

RECENT_VERSION_SECONDS = 60.0
"""How long a remembered version is used before the row is read again."""

RECENT_VERSIONS = 4_096
"""How many records a PostgresStorage remembers by default (``recent_versions=``): about 10 MB
of typical customers (a copy with an address, three metadata pairs and a link is ~2.5 KB of
Python objects, measured with tracemalloc), at most ~30 MB (see REMEMBERED_METADATA_CHARS)."""

REMEMBERED_METADATA_CHARS = 4_096
"""A customer whose metadata keys and values hold more characters than this is not remembered
(its updates read first): it bounds what one entry can hold, since metadata may reach 50 pairs
of 500-character values. For a plan, price or subscription the bound counts the text of all its
maps and lists (metadata, entitlements, limits, provider ids)."""


class RecentVersions:
    """A bounded, expiring map from record id (ids are unique across kinds: each kind has its
    prefix) to (a private copy of the record, its xmin)."""

    __slots__ = ("_capacity", "_entries", "_seconds")

    def __init__(self, capacity: int, *, seconds: float = RECENT_VERSION_SECONDS) -> None:
        if capacity < 0:
            raise ValueError("recent_versions must be 0 (off) or more")
        self._capacity = capacity
        self._seconds = seconds
        self._entries: dict[str, tuple[BaseModel, int, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def recall(self, customer_id: str) -> tuple[Customer, int] | None:
        """The customer as last seen and its version, if seen recently; a copy the caller may
        keep."""
        return self.recall_record(customer_id, Customer)

    def recall_record(self, record_id: str, kind: type[M]) -> tuple[M, int] | None:
        """The record of model ``kind`` as last seen and its version, if seen recently; a copy
        the caller may keep."""
        entry = self._entries.get(record_id)
        if entry is None:
            return None
        record, version, expires = entry
        if time.monotonic() >= expires or not isinstance(record, kind):
            del self._entries[record_id]
            return None
        return _copy(record), version

    def remember(self, record: BaseModel, version: int) -> None:
        """Note that the record's row is ``record`` at ``version``."""
        if not self._capacity:
            return
        entries = self._entries
        record_id: str = getattr(record, "id")  # noqa: B009 - every record kind has one
        if _text_chars(record) > REMEMBERED_METADATA_CHARS:
            entries.pop(record_id, None)  # too big to keep: an older copy must go too
            return
        entries.pop(record_id, None)  # the newest go last, so the oldest go first
        entries[record_id] = (_copy(record), version, time.monotonic() + self._seconds)
        if len(entries) > self._capacity:
            del entries[next(iter(entries))]

    def forget(self, record_id: str) -> None:
        self._entries.pop(record_id, None)


def _copy(record: M) -> M:
    if isinstance(record, Customer):
        return copy_customer(record)  # type: ignore[return-value]  # M is Customer here
    return copy_flat_record(record)


def _text_chars(record: BaseModel) -> int:
    """What REMEMBERED_METADATA_CHARS bounds."""
    if isinstance(record, Customer):
        metadata = record.metadata
        return sum(map(len, metadata)) + sum(map(len, metadata.values()))
    total = 0
    for value in record.__dict__.values():
        if isinstance(value, dict):
            total += sum(map(len, value)) + sum(
                len(v) for v in value.values() if isinstance(v, str)
            )
        elif isinstance(value, list):
            total += sum(len(v) for v in value if isinstance(v, str))
    return total
