"""The SQL the PostgreSQL backend sends: statement text, the customer query builders, and the
composition of several writes into one statement (one round trip instead of one each)."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
from pydantic import BaseModel

from qzpay.errors import ConflictError, StorageError
from qzpay.storage.base import CustomerFilter, email_key
from qzpay.storage.rows import (
    CUSTOMER_COLUMNS,
    CUSTOMER_INSERT_COLUMNS,
    EVENT_COLUMNS,
    TASK_COLUMNS,
    TASK_WRITE_COLUMNS,
    as_is,
    customer_mapper,
    customer_update_sql,
    task_mapper,
)

# Rows as asyncpg returns them: times as datetimes, JSONB as text.
customer_from_row = customer_mapper(decode_time=as_is, decode_json=json.loads)
task_from_row = task_mapper(decode_time=as_is)

GET = f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1"
GET_FOR_UPDATE = f"{GET} FOR UPDATE"
# An optimistic read: the row and its version (xmin, the id of the transaction that wrote this
# row version; every update makes a new version), for a checked update at commit.
GET_VERSIONED = f"SELECT {CUSTOMER_COLUMNS}, xmin FROM customers WHERE id = $1"
GET_IDEMPOTENT = (
    f"SELECT {CUSTOMER_COLUMNS}, request_fingerprint FROM customers WHERE idempotency_key = $1"
)
# The customer's columns of a query that names the customers table ``c``.
C_COLUMNS = ", ".join(f"c.{name.strip()}" for name in CUSTOMER_COLUMNS.split(","))
_BY_PROVIDER_ID = (
    f"SELECT {C_COLUMNS}"
    " FROM customer_links AS l JOIN customers AS c ON c.id = l.customer_id"
    " WHERE l.provider_customer_id = $1"
)
_BY_PROVIDER = f"{_BY_PROVIDER_ID} AND l.provider = $2"
GET_EVENT = "SELECT type, payload FROM events WHERE id = $1"
EVENT_EXISTS = "SELECT 1 FROM events WHERE id = $1"

# A write is one or more statements over the same arguments. Each part carries what makes
# sending it again a no-op once it has committed: a clause to append ("" if it is one already),
# or None if it has none (see _compose).
Part: TypeAlias = tuple[str, str | None]
INSERT_CUSTOMER: Part = (
    f"INSERT INTO customers ({CUSTOMER_INSERT_COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13)",
    " ON CONFLICT (id) DO NOTHING",
)
INSERT_METADATA: Part = (
    "INSERT INTO customer_metadata (customer_id, key, value) "
    "SELECT $1::text, key, value FROM jsonb_each_text($7::jsonb)",
    " ON CONFLICT (customer_id, key) DO NOTHING",
)
INSERT_LINKS: Part = (
    "INSERT INTO customer_links (provider, provider_customer_id, customer_id) "
    "SELECT key, value, $1::text FROM jsonb_each_text($8::jsonb)",
    " ON CONFLICT (provider, provider_customer_id) DO NOTHING",
)
UPDATE_CUSTOMER = customer_update_sql(lambda number: f"${number}")
# The side tables of an update change by difference: (delete the keys in $n, upsert the pairs
# in $n), each with the customer id as $1; see TransactionWrites.update_customer.
METADATA_DIFF = (
    "DELETE FROM customer_metadata WHERE customer_id = $1 AND key = ANY({}::text[])",
    "INSERT INTO customer_metadata (customer_id, key, value) "
    "SELECT $1::text, key, value FROM jsonb_each_text({}::jsonb) "
    "ON CONFLICT (customer_id, key) DO UPDATE SET value = excluded.value",
)
# A new value for keys the customer has: a plain UPDATE, which (unlike ON CONFLICT DO UPDATE)
# writes no separate row-lock record.
METADATA_CHANGE = (
    "UPDATE customer_metadata AS m SET value = x.value FROM jsonb_each_text({}::jsonb) AS x "
    "WHERE m.customer_id = $1 AND m.key = x.key"
)
LINKS_DIFF = (
    "DELETE FROM customer_links WHERE customer_id = $1 AND provider = ANY({}::text[])",
    "INSERT INTO customer_links (provider, provider_customer_id, customer_id) "
    "SELECT key, value, $1::text FROM jsonb_each_text({}::jsonb) "
    "ON CONFLICT (customer_id, provider) "
    "DO UPDATE SET provider_customer_id = excluded.provider_customer_id",
)
INSERT_EVENT: Part = (
    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4::jsonb, $5)",
    " ON CONFLICT (id) DO NOTHING",
)
PUT_TASK: Part = (
    f"INSERT INTO sync_tasks ({TASK_WRITE_COLUMNS}) "
    "VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb) "
    "ON CONFLICT (customer_id) DO UPDATE SET "
    + ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in TASK_WRITE_COLUMNS.split(",")[1:]),
    None,
)
DELETE_TASK: Part = ("DELETE FROM sync_tasks WHERE customer_id = $1", "")
GET_TASK = f"SELECT {TASK_COLUMNS} FROM sync_tasks WHERE customer_id = $1 FOR UPDATE"
GET_TASK_BY_KEY = f"SELECT {TASK_COLUMNS} FROM sync_tasks WHERE idempotency_key = $1 FOR UPDATE"
# SKIP LOCKED: processes claiming at once each take different tasks instead of queueing.
CLAIM_TASKS = f"""
    WITH claimable AS (
        SELECT customer_id FROM sync_tasks
        WHERE (lease_until <= $1 OR lease_owner IS NULL OR lease_owner = ANY($2::text[]))
            AND ($6::text IS NULL OR resource = $6)
        ORDER BY created_at, customer_id LIMIT $3
        FOR UPDATE SKIP LOCKED
    )
    UPDATE sync_tasks AS t SET lease_owner = $4, lease_until = $5
    FROM claimable WHERE t.customer_id = claimable.customer_id
    RETURNING {", ".join(f"t.{c.strip()}" for c in TASK_COLUMNS.split(","))}"""
LIST_TASKS = f"SELECT {TASK_COLUMNS} FROM sync_tasks ORDER BY created_at, customer_id LIMIT $1"
COUNT_TASKS = "SELECT count(*) FROM sync_tasks"
# Containment, so the GIN index of migration 0006 answers it; the matches are taken first
# (MATERIALIZED), so the planner never walks sync_tasks_created hoping for an early match.
TASK_BY_LINK = f"""
    WITH linked AS MATERIALIZED (
        SELECT {TASK_COLUMNS} FROM sync_tasks
        WHERE links @> jsonb_build_object($1::text, $2::text) AND resource = $3
    )
    SELECT * FROM linked ORDER BY created_at, customer_id LIMIT 1"""
WEBHOOK_SEEN = "SELECT 1 FROM webhook_events WHERE provider = $1 AND event_id = $2"
INSERT_WEBHOOK: Part = (
    "INSERT INTO webhook_events (provider, event_id, received_at) VALUES ($1, $2, $3)",
    " ON CONFLICT (provider, event_id) DO NOTHING",
)

# The event log's order is (txid, seq): seq alone is not commit order, as sequence numbers are
# taken before commit. Reads stop below the oldest transaction still running in this database,
# which may yet commit an event that sorts earlier, so a reader paging with ``after`` never
# skips one. Transactions of backends on other databases cannot write here and do not hold the
# log back. Changes to one customer queue before taking their txid (see queue), so for one
# customer this order is commit order.
_EVENT_BOUND = """(
    WITH snap AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
    elsewhere AS MATERIALIZED (
        SELECT backend_xid::text::bigint AS xid FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL
          AND datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
    )
    SELECT coalesce(
        (SELECT min(x) FROM snap, pg_snapshot_xip(snap.s) AS x
         WHERE x::text::bigint % 4294967296 NOT IN (SELECT xid FROM elsewhere)),
        (SELECT pg_snapshot_xmax(s) FROM snap))
)"""
EVENTS_FIRST = (
    f"SELECT type, payload FROM events WHERE txid < {_EVENT_BOUND} ORDER BY txid, seq LIMIT $1"
)
# A record's events, newest first: a backward range read of events_customer_id_txid_seq.
RECORD_EVENTS = (
    "SELECT type, payload FROM events WHERE customer_id = $1 ORDER BY txid DESC, seq DESC LIMIT $2"
)
EVENTS_AFTER = f"""
    WITH after_event AS MATERIALIZED (SELECT txid, seq FROM events WHERE id = $1)
    SELECT type, payload FROM events
    WHERE txid >= (SELECT txid FROM after_event)
      AND (txid, seq) > (SELECT txid, seq FROM after_event)
      AND txid < {_EVENT_BOUND}
    ORDER BY txid, seq LIMIT $2"""


_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
"""Every event type a resource can register (``qzpay.records``): nothing to quote."""


def backward_query(
    *, before: str | None, limit: int, event_type: str | None = None
) -> tuple[str, list[object]]:
    """The statement ``list_events_backward`` runs: newest first by (txid, seq), a backward
    range read of events_txid_seq, or of events_by_type when ``event_type`` is given, from the
    end of the log or from below ``before`` (no rows if it is unknown). Nothing is held back:
    no consumer pages with it.

    The type is a literal, not a parameter: a prepared statement's generic plan, blind to the
    value, would walk the whole log's primary key looking for a rare type (or one with no
    events), where a plan that knows the value reads that type's index. A type no resource
    could register has no events (``FALSE``)."""
    clauses: list[str] = []
    params: list[object] = []
    head = ""
    if event_type is not None:
        known = _EVENT_TYPE.fullmatch(event_type)
        clauses.append(f"type = '{event_type}'" if known else "FALSE")
    if before is not None:
        params.append(before)
        head = "WITH before_event AS MATERIALIZED (SELECT txid, seq FROM events WHERE id = $1) "
        clauses += [  # the first bounds the index range; the second is the exact cut
            "txid <= (SELECT txid FROM before_event)",
            "(txid, seq) < (SELECT txid, seq FROM before_event)",
        ]
    params.append(max(0, limit))
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    return (
        f"{head}SELECT type, payload FROM events{where} "
        f"ORDER BY txid DESC, seq DESC LIMIT ${len(params)}",
        params,
    )


MIGRATION_LOCK = 0x717A_7061_795F_6462  # "qzpay_db": pg_advisory_xact_lock key for upgrades
CUSTOMER_LOCK_CLASS = 0x717A_7079  # "qzpy": first key of the per-customer advisory lock
WEBHOOK_LOCK_CLASS = 0x717A_7077  # "qzpw": first key of the per-webhook-delivery lock
VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS qzpay_schema_version ("
    "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
)
_PARAM = re.compile(r"\$(\d+)")


def lock_key(name: str) -> int:
    """The second key of an advisory lock on ``name`` (the first is its class)."""
    digest = hashlib.blake2b(name.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def queue(lock_class: int, name: str) -> str:
    """SQL that waits until other transactions queued under ``name`` have finished.

    A transaction takes the id that orders the event log when it first writes or locks a row,
    and one that waits for a row lock may already have taken it. Queueing on an advisory lock
    (which needs no id) before touching the row makes one customer's changes take their ids in
    commit order. The key is computed here so the statement has no parameters and can travel
    with BEGIN.
    """
    return f"SELECT pg_advisory_xact_lock({lock_class}, {lock_key(name)})"


def where_clauses(filters: CustomerFilter, params: list[object]) -> list[str]:
    """SQL conditions for ``filters``, appending their arguments to ``params``."""
    clauses: list[str] = []
    if not filters.include_deleted:
        clauses.append("deleted_at IS NULL")
    if filters.email is not None:
        params.append(email_key(filters.email))
        clauses.append(f"email_key = ${len(params)}")
    for key, value in filters.metadata.items():
        params += [key, value]
        clauses.append(
            "EXISTS (SELECT 1 FROM customer_metadata AS m WHERE m.customer_id = customers.id "
            f"AND m.key = ${len(params) - 1} AND m.value = ${len(params)})"
        )
    return clauses


def list_query(filters: CustomerFilter, *, limit: int, offset: int) -> tuple[str, list[object]]:
    """The page query ``list_customers`` runs (also used by the index tests).

    No OFFSET clause for the first page: with ``OFFSET $n`` PostgreSQL plans the statement
    anew on every call (measured: 100-400 µs a call), as it cannot cost a generic plan.
    """
    params: list[object] = []
    clauses = where_clauses(filters, params)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(limit)
    sql = f"SELECT {CUSTOMER_COLUMNS} FROM customers{where} ORDER BY id DESC LIMIT ${len(params)}"
    if offset:
        params.append(offset)
        sql += f" OFFSET ${len(params)}"
    return sql, params


def count_query(filters: CustomerFilter) -> tuple[str, list[object]]:
    params: list[object] = []
    clauses = where_clauses(filters, params)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"SELECT count(*) FROM customers{where}", params


def scan_query(
    filters: CustomerFilter, *, before_id: str | None, limit: int
) -> tuple[str, list[object]]:
    """The keyset page query ``scan_customers`` runs."""
    params: list[object] = []
    clauses = where_clauses(filters, params)
    if before_id is not None:
        params.append(before_id)
        clauses.append(f"id < ${len(params)}")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(limit)
    sql = f"SELECT {CUSTOMER_COLUMNS} FROM customers{where} ORDER BY id DESC LIMIT ${len(params)}"
    return sql, params


def provider_query(provider_customer_id: str, provider: str | None) -> tuple[str, list[object]]:
    if provider is None:
        return _BY_PROVIDER_ID, [provider_customer_id]
    return _BY_PROVIDER, [provider_customer_id, provider]


@dataclass(frozen=True, slots=True, eq=False)
class Check:
    """A kind of row an optimistic transaction reads without a lock and changes by a checked
    statement (qzpay.storage.postgres.checked): its name in messages, its table, the first key
    of its advisory lock, its read with its version (``xmin`` last), the checked statement's
    answer, the unique constraints its writes may break (name -> ConflictError code, message),
    and its row mapper."""

    noun: str
    table: str
    lock_class: int
    read: str
    result: str
    conflicts: Mapping[str, tuple[str, str]]
    from_row: Callable[[Any], BaseModel]

    @property
    def version(self) -> str:
        return f"SELECT xmin FROM {self.table} WHERE id = $1"


@dataclass(frozen=True, slots=True)
class Write:
    parts: tuple[Part, ...]
    args: tuple[object, ...]
    links: tuple[tuple[str, str], ...] = ()  # provider links it adds, for the conflict message
    customer: bool = True  # it writes a record's rows (not only the event log)
    # A checked update (qzpay.storage.postgres.checked): parts[0] queues, parts[1] is the
    # compare-and-set, the record id is args[0] and the version read args[-1].
    checked: Check | None = None

    @property
    def resendable(self) -> bool:
        return all(again is not None for _, again in self.parts)


def _shifted(match: re.Match[str], *, shift: int) -> str:
    return f"${int(match[1]) + shift}"


def shifted(sql: str, shift: int) -> str:
    """``sql`` with its parameters renumbered from ``$1 + shift`` (it follows ``shift``
    arguments of other writes in one statement)."""
    return _PARAM.sub(functools.partial(_shifted, shift=shift), sql) if shift else sql


# What a statement that commits on its own returns when asked for its version: the xmin of
# every row it wrote (the id of its transaction, in the 32 bits a row keeps).
_VERSION_TAIL = "SELECT pg_current_xact_id()::xid"


@functools.lru_cache(maxsize=256)
def _compose(
    shape: tuple[tuple[tuple[Part, ...], int], ...], resend: bool, versioned: bool = False
) -> str:
    """One statement running every write's parts; ``resend`` makes each a no-op if its row
    already exists (the statement committed before the connection dropped); ``versioned``
    makes it return the version (xmin) of the rows it writes."""
    statements: list[str] = []
    shift = 0
    for parts, count in shape:
        for sql, again in parts:
            if resend:
                assert again is not None
                sql += again
            statements.append(shifted(sql, shift))
        shift += count
    if len(statements) == 1 and not versioned:
        return statements[0]
    ctes = ", ".join(f"w{index} AS ({sql})" for index, sql in enumerate(statements))
    return f"WITH {ctes} {_VERSION_TAIL if versioned else 'SELECT 1'}"


def statement(
    writes: Sequence[Write], *, resend: bool = False, versioned: bool = False
) -> tuple[str, list[object]]:
    shape = tuple((write.parts, len(write.args)) for write in writes)
    args = [arg for write in writes for arg in write.args]
    return _compose(shape, resend, versioned), args


def same_row(first: Write, second: Write) -> bool:
    """Whether two deferred writes may touch the same row (then they cannot share a statement),
    or are two events: PostgreSQL runs the writes of one WITH in an order of its own and an
    event takes its seq then, so a second event (a catalog change records several) is sent after
    the first, and the log keeps the order the events were recorded in."""
    if first.customer and second.customer:
        return True
    if first.parts == second.parts == (INSERT_EVENT,):
        return True
    # Other writes are keyed by their first argument (a task's customer id, an event's id):
    # a CTE does not see another CTE's change, so an upsert then a delete must not share one.
    return first.args[:1] == second.args[:1]


def conflict(exc: asyncpg.UniqueViolationError, writes: Sequence[Write]) -> Exception:
    """Translate a unique violation by its constraint name."""
    links = [link for write in writes for link in write.links]
    constraint = exc.constraint_name
    for write in writes:
        known = None if write.checked is None else write.checked.conflicts.get(constraint or "")
        if known is not None:
            return ConflictError(known[1], code=known[0])
    if constraint in ("customers_idempotency_key_key", "sync_tasks_idempotency_key_key"):
        return ConflictError("idempotency key already used", code="idempotency_key_reused")
    if constraint == "customer_links_pkey":
        taken = ", ".join(f"{provider} customer {pcid!r}" for provider, pcid in links)
        return ConflictError(
            f"{taken or 'a provider customer id'} is already linked to another customer",
            code="provider_id_taken",
        )
    if constraint == "customer_links_customer_provider_key":
        return ConflictError(
            "the customer is already linked at this provider", code="provider_already_linked"
        )
    return StorageError(f"PostgreSQL error: {exc!r}")
