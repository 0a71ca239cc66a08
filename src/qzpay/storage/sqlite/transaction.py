"""Writes inside one SQLite write transaction (``BEGIN IMMEDIATE`` holds the file's write lock,
so there is one writer at a time and conflicts are checked by reading first)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime

from qzpay._time import to_micros
from qzpay.customers.models import Customer
from qzpay.errors import ConflictError
from qzpay.events import Event
from qzpay.storage.base import CreateKey, IdempotentCreate, SyncTask, TaskClaim
from qzpay.storage.rows import (
    CUSTOMER_COLUMNS,
    CUSTOMER_INSERT_COLUMNS,
    EVENT_COLUMNS,
    TASK_COLUMNS,
    TASK_WRITE_COLUMNS,
    customer_args,
    customer_update_args,
    customer_update_sql,
    event_args,
    task_args,
)
from qzpay.storage.sqlite.catalog import CatalogTransaction
from qzpay.storage.sqlite.reader import SELECT, customer_from_row, task_from_row
from qzpay.storage.sqlite.subscriptions import SubscriptionsTransaction


def _marks(columns: str) -> str:
    return ", ".join("?" for _ in columns.split(","))


_INSERT_CUSTOMER = (
    f"INSERT INTO customers ({CUSTOMER_INSERT_COLUMNS}) VALUES ({_marks(CUSTOMER_INSERT_COLUMNS)})"
)
_UPDATE_CUSTOMER = customer_update_sql(lambda number: f"?{number}")
_INSERT_EVENT = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({_marks(EVENT_COLUMNS)})"
_PUT_TASK = (
    f"INSERT OR REPLACE INTO sync_tasks ({TASK_WRITE_COLUMNS}) "
    f"VALUES ({_marks(TASK_WRITE_COLUMNS)})"
)
_SELECT_TASKS = f"SELECT {TASK_COLUMNS} FROM sync_tasks"
_INSERT_LINKS = (
    "INSERT INTO customer_links (provider, provider_customer_id, customer_id) VALUES (?, ?, ?)"
)


class SQLiteTransaction(CatalogTransaction, SubscriptionsTransaction):
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    async def get_customer(self, customer_id: str) -> Customer | None:
        row = self._db.execute(f"{SELECT} WHERE id = ?", (customer_id,)).fetchone()
        return None if row is None else customer_from_row(row)

    async def find_idempotent_create(self, idempotency_key: str) -> IdempotentCreate | None:
        row = self._db.execute(
            f"SELECT {CUSTOMER_COLUMNS}, request_fingerprint FROM customers "
            "WHERE idempotency_key = ?",
            (idempotency_key,),
        ).fetchone()
        return None if row is None else IdempotentCreate(customer_from_row(row), row[10])

    def _claim_links(self, customer_id: str, links: dict[str, str]) -> None:
        for provider, pcid in links.items():
            row = self._db.execute(
                "SELECT customer_id FROM customer_links WHERE provider = ? "
                "AND provider_customer_id = ?",
                (provider, pcid),
            ).fetchone()
            if row is not None and row[0] != customer_id:
                raise ConflictError(
                    f"{provider} customer {pcid!r} is already linked to customer {row[0]}",
                    code="provider_id_taken",
                )

    async def insert_customer(self, customer: Customer, key: CreateKey | None = None) -> None:
        db = self._db
        if (
            key is not None
            and db.execute(
                "SELECT 1 FROM customers WHERE idempotency_key = ?", (key.idempotency_key,)
            ).fetchone()
        ):
            raise ConflictError("idempotency key already used", code="idempotency_key_reused")
        self._claim_links(customer.id, customer.provider_customer_ids)
        args = customer_args(customer, encode_time=to_micros, key=key)
        db.execute(_INSERT_CUSTOMER, args)
        if customer.metadata:
            db.executemany(
                "INSERT INTO customer_metadata (customer_id, key, value) VALUES (?, ?, ?)",
                [(customer.id, k, v) for k, v in customer.metadata.items()],
            )
        if customer.provider_customer_ids:
            db.executemany(
                _INSERT_LINKS,
                [(p, pcid, customer.id) for p, pcid in customer.provider_customer_ids.items()],
            )

    async def update_customer(self, before: Customer, after: Customer) -> None:
        db = self._db
        old_links, new_links = before.provider_customer_ids, after.provider_customer_ids
        added_links = {p: v for p, v in new_links.items() if old_links.get(p) != v}
        self._claim_links(after.id, added_links)
        db.execute(_UPDATE_CUSTOMER, customer_update_args(after, encode_time=to_micros))
        old_meta, new_meta = before.metadata, after.metadata
        removed = [k for k in old_meta if k not in new_meta]
        if removed:
            db.executemany(
                "DELETE FROM customer_metadata WHERE customer_id = ? AND key = ?",
                [(after.id, k) for k in removed],
            )
        changed = [(after.id, k, v) for k, v in new_meta.items() if old_meta.get(k) != v]
        if changed:
            db.executemany(
                "INSERT INTO customer_metadata (customer_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (customer_id, key) DO UPDATE SET value = excluded.value",
                changed,
            )
        dropped = [(p, v) for p, v in old_links.items() if new_links.get(p) != v]
        if dropped:
            db.executemany(
                "DELETE FROM customer_links WHERE provider = ? AND provider_customer_id = ?",
                dropped,
            )
        if added_links:
            db.executemany(_INSERT_LINKS, [(p, v, after.id) for p, v in added_links.items()])

    async def append_event(self, event: Event) -> None:
        self._db.execute(_INSERT_EVENT, event_args(event, encode_time=to_micros))

    async def get_sync_task(self, record_id: str) -> SyncTask | None:
        row = self._db.execute(f"{_SELECT_TASKS} WHERE customer_id = ?", (record_id,)).fetchone()
        return None if row is None else task_from_row(row)

    async def find_sync_task_by_key(self, idempotency_key: str) -> SyncTask | None:
        row = self._db.execute(
            f"{_SELECT_TASKS} WHERE idempotency_key = ?", (idempotency_key,)
        ).fetchone()
        return None if row is None else task_from_row(row)

    async def put_sync_task(self, task: SyncTask) -> None:
        if task.idempotency_key is not None:
            holder = self._db.execute(
                "SELECT customer_id FROM sync_tasks WHERE idempotency_key = ?",
                (task.idempotency_key,),
            ).fetchone()
            if holder is not None and holder[0] != task.record_id:
                raise ConflictError("idempotency key already used", code="idempotency_key_reused")
        self._db.execute(_PUT_TASK, task_args(task, encode_time=to_micros))

    async def delete_sync_task(self, record_id: str) -> None:
        self._db.execute("DELETE FROM sync_tasks WHERE customer_id = ?", (record_id,))

    async def claim_sync_tasks(self, claim: TaskClaim) -> list[SyncTask]:
        stale, resource = sorted(claim.stale_owners), claim.resource
        marks = ", ".join("?" * len(stale))
        stale_clause = f" OR lease_owner IN ({marks})" if stale else ""
        rows = self._db.execute(
            f"{_SELECT_TASKS} WHERE (lease_until <= ? OR lease_owner IS NULL{stale_clause}) "
            "AND (? IS NULL OR resource = ?) ORDER BY created_at, customer_id LIMIT ?",
            (to_micros(claim.now), *stale, resource, resource, claim.limit),
        ).fetchall()
        owner, until = claim.owner, claim.lease_until
        claimed = [
            replace(task_from_row(row), lease_owner=owner, lease_until=until) for row in rows
        ]
        self._db.executemany(
            "UPDATE sync_tasks SET lease_owner = ?, lease_until = ? WHERE customer_id = ?",
            [(owner, to_micros(until), task.record_id) for task in claimed],
        )
        return claimed

    async def record_webhook_event(self, provider: str, event_id: str, now: datetime) -> bool:
        cursor = self._db.execute(
            "INSERT INTO webhook_events (provider, event_id, received_at) VALUES (?, ?, ?) "
            "ON CONFLICT (provider, event_id) DO NOTHING",
            (provider, event_id, to_micros(now)),
        )
        return cursor.rowcount == 1
