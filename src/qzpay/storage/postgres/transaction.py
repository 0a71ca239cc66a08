"""The Transaction protocol on PostgreSQL: what each customer, event, sync-task and webhook
method writes or reads (catalog and subscription methods come from their mix-ins). How the
writes reach the server is qzpay.storage.postgres.commit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from qzpay.customers.models import Customer
from qzpay.events import Event
from qzpay.storage.base import CreateKey, IdempotentCreate, SyncTask, TaskClaim
from qzpay.storage.postgres import catalog, checked, sql, subscriptions
from qzpay.storage.postgres.checked import (
    CHECKED_LINKS_DIFF,
    CHECKED_METADATA_CHANGE,
    CHECKED_METADATA_DIFF,
)
from qzpay.storage.postgres.connections import DRIVER_ERRORS, driver_error
from qzpay.storage.postgres.sql import Part, Write, customer_from_row, task_from_row
from qzpay.storage.rows import (
    as_is,
    customer_args,
    customer_update_args,
    dump_json,
    event_args,
    task_args,
)


class PostgresTransaction(catalog.CatalogTransaction, subscriptions.SubscriptionTransaction):
    """One transaction on one connection; also its own context manager (see TransactionCore)."""

    # -- the Transaction protocol --------------------------------------------------------
    async def get_customer(self, customer_id: str) -> Customer | None:
        if self._may_read_unlocked():
            return await self._read_versioned(
                checked.CUSTOMER, customer_id, Customer, customer_from_row
            )
        queue = sql.queue(sql.CUSTOMER_LOCK_CLASS, customer_id)
        row = await self._fetchrow(sql.GET_FOR_UPDATE, customer_id, queue=queue)
        self._versions.pop(customer_id, None)  # locked now: no check needed
        self._recalled.pop(customer_id, None)
        return None if row is None else customer_from_row(row)

    async def find_idempotent_create(self, idempotency_key: str) -> IdempotentCreate | None:
        row = await self._fetchrow(sql.GET_IDEMPOTENT, idempotency_key)
        return None if row is None else IdempotentCreate(customer_from_row(row), row[10])

    async def insert_customer(self, customer: Customer, key: CreateKey | None = None) -> None:
        links = customer.provider_customer_ids
        parts = [sql.INSERT_CUSTOMER]
        if customer.metadata:
            parts.append(sql.INSERT_METADATA)
        if links:
            parts.append(sql.INSERT_LINKS)
        args = customer_args(customer, encode_time=as_is, key=key)
        write = Write(tuple(parts), args, tuple(links.items()))
        await self._write(write, may_conflict=key is not None or bool(links))
        if not self._begun:
            self._inserted.append(customer)

    async def update_customer(self, before: Customer, after: Customer) -> None:
        if after == before:
            return  # nothing to write
        version = self._versions.pop(before.id, None)
        is_checked = version is not None
        if is_checked:
            self._recalled.pop(before.id, None)  # the checked statement compares it
            self._checked_after = after
        else:
            self._recent.forget(before.id)
        args = customer_update_args(after, encode_time=as_is)
        parts: list[Part] = [(sql.UPDATE_CUSTOMER, None)]
        # The side tables change by difference. Each key is touched by one statement only,
        # since the statements of one WITH run in no defined order.
        metadata_diff = CHECKED_METADATA_DIFF if is_checked else sql.METADATA_DIFF
        links_diff = CHECKED_LINKS_DIFF if is_checked else sql.LINKS_DIFF
        # Keys whose value changes are updated in place; the diff adds and removes the others.
        changed = {
            key: value
            for key, value in after.metadata.items()
            if key in before.metadata and before.metadata[key] != value
        }
        if changed:
            args.append(dump_json(changed))
            change = CHECKED_METADATA_CHANGE if is_checked else sql.METADATA_CHANGE
            parts.append((change.format(f"${len(args)}"), None))
        added = {key: value for key, value in after.metadata.items() if key not in changed}
        _diff(before.metadata, added, metadata_diff, parts, args, kept=after.metadata)
        linked = _diff(
            before.provider_customer_ids, after.provider_customer_ids, links_diff, parts, args
        )
        if version is not None:
            statements = [statement for statement, _ in parts]
            write = checked.checked_write(
                checked.CUSTOMER, statements, args, version=version, links=tuple(linked.items())
            )
        else:
            write = Write(tuple(parts), tuple(args), tuple(linked.items()))
        await self._write(write, may_conflict=bool(linked))

    async def append_event(self, event: Event) -> None:
        write = Write((sql.INSERT_EVENT,), event_args(event, encode_time=as_is), customer=False)
        await self._write(write, may_conflict=False)

    async def get_sync_task(self, record_id: str) -> SyncTask | None:
        row = await self._fetchrow(sql.GET_TASK, record_id)
        return None if row is None else task_from_row(row)

    async def find_sync_task_by_key(self, idempotency_key: str) -> SyncTask | None:
        row = await self._fetchrow(sql.GET_TASK_BY_KEY, idempotency_key)
        return None if row is None else task_from_row(row)

    async def put_sync_task(self, task: SyncTask) -> None:
        write = Write((sql.PUT_TASK,), task_args(task, encode_time=as_is), customer=False)
        await self._write(write, may_conflict=task.idempotency_key is not None)

    async def delete_sync_task(self, record_id: str) -> None:
        write = Write((sql.DELETE_TASK,), (record_id,), customer=False)
        await self._write(write, may_conflict=False)

    async def claim_sync_tasks(self, claim: TaskClaim) -> list[SyncTask]:
        stale = sorted(claim.stale_owners)
        args = (claim.now, stale, claim.limit, claim.owner, claim.lease_until, claim.resource)
        claimed = (task_from_row(row) for row in await self._fetch(sql.CLAIM_TASKS, *args))
        return sorted(claimed, key=lambda t: (t.created_at, t.record_id))

    async def record_webhook_event(self, provider: str, event_id: str, now: datetime) -> bool:
        # Deliveries of one event queue on an advisory lock and then look, so a duplicate
        # arriving at once waits for the first one's outcome (and nothing takes an id early).
        queue = sql.queue(sql.WEBHOOK_LOCK_CLASS, f"{provider}\0{event_id}")
        connection = await self._begin(queue)
        await self._flush(connection)
        try:
            seen = await connection.fetchval(sql.WEBHOOK_SEEN, provider, event_id)
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc
        if seen is not None:
            return False
        write = Write((sql.INSERT_WEBHOOK,), (provider, event_id, now), customer=False)
        await self._write(write, may_conflict=False)
        return True


def _diff(
    old: Mapping[str, str],
    new: Mapping[str, str],
    statements: tuple[str, str],
    parts: list[Part],
    args: list[object],
    *,
    kept: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Add to ``parts`` the (delete, upsert) ``statements`` that take a side table from
    ``old`` to ``new``, their arguments appended to ``args``; the pairs it upserts. The keys
    of ``old`` not in ``kept`` (``new`` unless given) are deleted."""
    delete, upsert = statements
    removed_keys = [key for key in old if key not in (new if kept is None else kept)]
    if removed_keys:
        args.append(removed_keys)
        parts.append((delete.format(f"${len(args)}"), None))
    changed = {key: value for key, value in new.items() if old.get(key) != value}
    if changed:
        args.append(dump_json(changed))
        parts.append((upsert.format(f"${len(args)}"), None))
    return changed
