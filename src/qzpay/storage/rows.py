"""The row layouts SQLite and PostgreSQL share: column lists, row mappers, argument tuples.

Both backends store the same columns and differ only in how times and JSON cross the driver:
SQLite keeps integer microseconds and JSON text, asyncpg gives datetimes and JSONB as text,
psycopg datetimes and decoded JSONB. So each record type has one mapper and one argument
builder here, and each backend passes its decoders or time encoder. A mapper is built once per
backend as a closure, as a customer read is the hot path: measured, it costs what the copies it
replaced did (best of 25: asyncpg row 8.7 µs, SQLite row 9.6 µs, nearly all of it pydantic's
model_construct); an identity decoder call is lost in that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeAlias

from qzpay.customers.models import Address, Customer
from qzpay.events import Event
from qzpay.records import record_type
from qzpay.storage.base import SyncTask, email_key
from qzpay.storage.params import CreateKey

# Read back in this order by customer_mapper (the idempotency fingerprint, where a query adds
# it, is the 11th column).
CUSTOMER_COLUMNS = (
    "id, email, name, phone, address, metadata, provider_ids, created_at, updated_at, deleted_at"
)
# Written in this order by customer_args; metadata is the 7th and provider_ids the 8th argument.
CUSTOMER_INSERT_COLUMNS = (
    "id, email, email_key, name, phone, address, metadata, provider_ids, "
    "created_at, updated_at, deleted_at, idempotency_key, request_fingerprint"
)
# Read by task_mapper in this order. A task's record id and snapshot keep the column names
# they had when tasks carried only customers (customer_id, customer); ``resource`` names the
# record's kind (rows from before it default to 'customer').
TASK_COLUMNS = (
    "customer_id, operation, customer, committed, idempotency_key, request_fingerprint, "
    "lease_owner, lease_until, attempts, last_error, created_at, resource"
)
# Written by task_args in this order: the read columns and the snapshot's provider links (the
# resource's links field, copied so that one look-up serves every resource).
TASK_WRITE_COLUMNS = f"{TASK_COLUMNS}, links"
# As written by event_args; customer_id is the record id of an event of any resource.
EVENT_COLUMNS = "id, type, customer_id, payload, created_at"
# Set by customer_update_sql from customer_update_args, whose first argument is the id.
CUSTOMER_UPDATE_COLUMNS = (
    "email, email_key, name, phone, address, metadata, provider_ids, updated_at, deleted_at"
)


class Row(Protocol):
    """A row as any of the drivers returns it (a tuple, an asyncpg Record), read by position."""

    def __getitem__(self, index: int, /) -> Any: ...


Decode: TypeAlias = Callable[[Any], Any]
EncodeTime: TypeAlias = Callable[[datetime], Any]


def as_is(value: Any) -> Any:
    """The decoder (or encoder) for a value the driver already converts."""
    return value


def dump_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def customer_mapper(*, decode_time: Decode, decode_json: Decode) -> Callable[[Row], Customer]:
    """Row (CUSTOMER_COLUMNS) -> Customer, with the driver's time and JSON decoders."""

    def customer(row: Row) -> Customer:
        address = row[4]
        deleted = row[9]
        return Customer.model_construct(
            id=row[0],
            email=row[1],
            name=row[2],
            phone=row[3],
            address=None if address is None else Address.model_construct(**decode_json(address)),
            metadata=decode_json(row[5]),
            provider_customer_ids=decode_json(row[6]),
            created_at=decode_time(row[7]),
            updated_at=decode_time(row[8]),
            deleted_at=None if deleted is None else decode_time(deleted),
        )

    return customer


def task_mapper(*, decode_time: Decode) -> Callable[[Row], SyncTask]:
    """Row (TASK_COLUMNS) -> SyncTask; the record snapshot arrives as JSON text, decoded as
    its resource's model (qzpay.records)."""

    def task(row: Row) -> SyncTask:
        resource = row[11]
        return SyncTask(
            resource=resource,
            record_id=row[0],
            operation=row[1],
            record=record_type(resource).decode(row[2]),
            committed=bool(row[3]),
            idempotency_key=row[4],
            request_fingerprint=row[5],
            lease_owner=row[6],
            lease_until=decode_time(row[7]),
            attempts=row[8],
            last_error=row[9],
            created_at=decode_time(row[10]),
        )

    return task


def _optional_time(moment: datetime | None, encode_time: EncodeTime) -> Any:
    return None if moment is None else encode_time(moment)


def _values(customer: Customer) -> tuple[object, ...]:
    """What an insert and an update both write: id, email, email_key, name, phone, address,
    metadata, provider_ids."""
    address = customer.address
    return (
        customer.id,
        customer.email,
        email_key(customer.email),
        customer.name,
        customer.phone,
        None if address is None else dump_json(address.model_dump()),
        dump_json(customer.metadata),
        dump_json(customer.provider_customer_ids),
    )


def customer_args(
    customer: Customer, *, encode_time: EncodeTime, key: CreateKey | None
) -> tuple[object, ...]:
    """The arguments of an insert into CUSTOMER_INSERT_COLUMNS."""
    return (
        *_values(customer),
        encode_time(customer.created_at),
        encode_time(customer.updated_at),
        _optional_time(customer.deleted_at, encode_time),
        None if key is None else key.idempotency_key,
        None if key is None else key.request_fingerprint,
    )


def customer_update_sql(placeholder: Callable[[int], str]) -> str:
    """The update statement, with the backend's placeholder for the n-th argument (from 1)."""
    sets = ", ".join(
        f"{column.strip()} = {placeholder(number)}"
        for number, column in enumerate(CUSTOMER_UPDATE_COLUMNS.split(","), start=2)
    )
    return f"UPDATE customers SET {sets} WHERE id = {placeholder(1)}"


def customer_update_args(customer: Customer, *, encode_time: EncodeTime) -> list[object]:
    """The arguments of customer_update_sql: the id, then CUSTOMER_UPDATE_COLUMNS."""
    return [
        *_values(customer),
        encode_time(customer.updated_at),
        _optional_time(customer.deleted_at, encode_time),
    ]


def task_args(task: SyncTask, *, encode_time: EncodeTime) -> tuple[object, ...]:
    """The arguments of a write of TASK_WRITE_COLUMNS (SQLite stores the bool as 0 or 1)."""
    return (
        task.record_id,
        task.operation,
        task.record.model_dump_json(),
        task.committed,
        task.idempotency_key,
        task.request_fingerprint,
        task.lease_owner,
        encode_time(task.lease_until),
        task.attempts,
        task.last_error,
        encode_time(task.created_at),
        task.resource,
        dump_json(task.links),
    )


def event_args(event: Event[Any], *, encode_time: EncodeTime) -> tuple[object, ...]:
    """The arguments of an insert into EVENT_COLUMNS. An event of any resource: the column
    ``customer_id`` (its name from when only customers had events) holds its record's id, and
    readers decode ``payload`` by ``type`` (``qzpay.events.decode_event``)."""
    return (
        event.id,
        event.type,
        event.data.id,
        event.model_dump_json(),
        encode_time(event.created_at),
    )
