"""The checked (compare-and-set) write of an optimistic transaction, for every kind of row it
changes: customers, plans, prices and subscriptions.

An optimistic transaction reads its first record without BEGIN or lock, noting the row's
version (xmin), and commits the change as one statement that queues on the record's advisory
lock, updates the row only if it is still at that version (a concurrent committed update makes
PostgreSQL re-check the row and skip it), and writes the side tables and the events only if it
did: each refers to ``cas``, which also makes PostgreSQL run the update first. Its answer is
one row: the record's columns and version as the statement found them when the check refused
the write (NULLs when it wrote, or when the record is gone), then ``written``, the new version,
when it wrote. A refused write writes nothing and raises WriteConflict; the caller re-reads and
retries (qzpay.engine.unit_of_work.retrying). Only the first read of a transaction is unlocked:
a later read first locks the record read so (BEGIN with its advisory lock, then its row, checking
the version), so the locks are taken in the order the locking path takes them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from qzpay.storage.base import WriteConflict
from qzpay.storage.layout import Table
from qzpay.storage.postgres.sql import (
    CUSTOMER_LOCK_CLASS,
    GET_VERSIONED,
    INSERT_EVENT,
    LINKS_DIFF,
    METADATA_CHANGE,
    METADATA_DIFF,
    Check,
    Part,
    Write,
    customer_from_row,
    lock_key,
    shifted,
)
from qzpay.storage.rows import CUSTOMER_COLUMNS, EVENT_COLUMNS

QUEUE = "SELECT pg_advisory_xact_lock({lock_class}, {key}::int)"
INSERT_EVENT_CHECKED = (
    f"INSERT INTO events ({EVENT_COLUMNS}) SELECT $1, $2, $3, $4::jsonb, $5 FROM cas"
)


def only_if_written(diff: tuple[str, str]) -> tuple[str, str]:
    """A side table's (delete, upsert-from-JSON) pair, each made to write only if ``cas`` did."""
    delete, upsert = diff
    assert " FROM jsonb_each_text(" in upsert
    gated_upsert = upsert.replace(" FROM jsonb_each_text(", " FROM cas, jsonb_each_text(")
    return f"{delete} AND EXISTS (SELECT FROM cas)", gated_upsert


def answer(table: str, columns: str) -> str:
    """The checked statement's one row (see the module docstring). The NOT EXISTS is
    uncorrelated, so PostgreSQL evaluates it once and skips the look-up when the write
    happened."""
    found = ", ".join(f"r.{name.strip()}" for name in columns.split(","))
    return (
        f"SELECT {found}, r.xmin AS version, (SELECT xmin FROM cas) AS written "
        f"FROM (SELECT) AS one LEFT JOIN {table} AS r ON r.id = $1 AND NOT EXISTS (SELECT FROM cas)"
    )


CUSTOMER = Check(
    "customer",
    "customers",
    CUSTOMER_LOCK_CLASS,
    read=GET_VERSIONED,
    result=answer("customers", CUSTOMER_COLUMNS),
    conflicts={},  # sql.conflict knows the customer tables' constraints
    from_row=customer_from_row,
)
CHECKED_METADATA_DIFF = only_if_written(METADATA_DIFF)
CHECKED_LINKS_DIFF = only_if_written(LINKS_DIFF)
CHECKED_METADATA_CHANGE = METADATA_CHANGE.replace(
    " WHERE m.customer_id = $1", ", cas WHERE m.customer_id = $1"
)


def record_check(
    table: Table[Any, Any], lock_class: int, conflicts: Mapping[str, tuple[str, str]]
) -> Check:
    """The Check of a record kind kept as one row (plans, prices, subscriptions)."""
    columns = table.rows.columns
    read = f"SELECT {columns}, xmin FROM {table.table} WHERE id = $1"
    return Check(
        table.kind,
        table.table,
        lock_class,
        read=read,
        result=answer(table.table, columns),
        conflicts=conflicts,
        from_row=table.from_row,
    )


def checked_write(
    check: Check,
    parts: Sequence[str],
    args: Sequence[object],
    *,
    version: int,
    links: tuple[tuple[str, str], ...] = (),
) -> Write:
    """The checked Write of a plain update's statements (the ``UPDATE … WHERE id = $1`` first,
    the record id its first argument, its side-table writes already made ``only_if_written``):
    queue on the record's advisory lock, then update only if the row is still at ``version``."""
    checked = (*_queue_then_check(parts[0], check.lock_class, len(args)), *parts[1:])
    record_id = str(args[0])
    return Write(
        tuple((statement, None) for statement in checked),
        (*args, lock_key(record_id), version),
        links,
        checked=check,
    )


@functools.lru_cache(maxsize=64)
def _queue_then_check(update: str, lock_class: int, arguments: int) -> tuple[str, str]:
    """The queue and compare-and-set statements of ``update`` with ``arguments`` arguments
    (the lock key and the version follow them). Cached: building them is a third of the
    Python a remembered customer's update spends here (measured with cProfile)."""
    assert update.endswith(" WHERE id = $1"), update
    key_at, version_at = arguments + 1, arguments + 2
    compare_and_set = (
        update.replace(" WHERE id = $1", " FROM queued WHERE id = $1")
        + f" AND xmin = ${version_at}::xid RETURNING xmin"
    )
    return QUEUE.format(lock_class=lock_class, key=f"${key_at}"), compare_and_set


def split_checked(writes: Sequence[Write]) -> tuple[list[Write], list[Write]]:
    """The checked update among ``writes`` with the events that go with it (which then refer to
    it, so they are written only if it is), and the other writes."""
    checked = [write for write in writes if write.checked]
    if not checked:
        return [], list(writes)
    assert len(checked) == 1, "one statement changes a record once"
    events = [w for w in writes if not w.customer and w.parts == (INSERT_EVENT,)]
    rest = [w for w in writes if not w.checked and w not in events]
    return [checked[0], *events], rest


@functools.lru_cache(maxsize=256)
def _compose(shape: tuple[tuple[tuple[Part, ...], int], ...], result: str) -> str:
    statements: list[str] = []
    shift = 0
    for index, (parts, count) in enumerate(shape):
        for part in parts:
            sql = INSERT_EVENT_CHECKED if index and part == INSERT_EVENT else part[0]
            statements.append(shifted(sql, shift))
        shift += count
    queue_lock, update, *others = statements
    ctes = [f"queued AS MATERIALIZED ({queue_lock})", f"cas AS ({update})"]
    ctes += [f"w{index} AS ({sql})" for index, sql in enumerate(others)]
    return f"WITH {', '.join(ctes)} {result}"


def checked_statement(writes: Sequence[Write]) -> tuple[str, list[object]]:
    """One statement for a checked update and its events (as split_checked returns them)."""
    check = writes[0].checked
    assert check is not None
    shape = tuple((write.parts, len(write.args)) for write in writes)
    args = [arg for write in writes for arg in write.args]
    return _compose(shape, check.result), args


def changed(check: Check, record_id: object) -> WriteConflict:
    return WriteConflict(
        f"{check.noun} {record_id} changed since it was read; read it again and retry"
    )
