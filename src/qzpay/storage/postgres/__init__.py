"""PostgreSQL storage (asyncpg): for several application processes sharing one database.

Design, measured rather than assumed: every operation is as few round trips as it can be.
Connections come from a small stack of our own rather than an asyncpg Pool (whose acquire and
release cost as much as a primary-key read, plus a reset round trip); asyncpg prepares and
caches each statement per connection; a customer is one row (metadata, address and provider
ids are JSONB copies), so a read is one query. Writes that cannot conflict are kept until the
transaction next reads or commits, then sent as one statement; a transaction that only wrote
such writes commits them as one statement without BEGIN, so a create costs one round trip
instead of four (BEGIN, two INSERTs, COMMIT). Writes that can raise a ConflictError are sent
at once, so the call raises it.

Connection loss: reads are retried once on a fresh connection. A write is retried only where it
cannot have committed (connecting, BEGIN), or where re-sending it is harmless (the one-statement
commit, re-sent with ON CONFLICT DO NOTHING on ids chosen by the client). A lost COMMIT is never
retried; it raises StorageError.

Modules: ``storage`` (PostgresStorage: open, migrate, reads), ``transaction`` (writes),
``sql`` (statements, query builders, write composition), ``connections`` (where connections
come from, which errors mean one is lost), ``blocking`` (psycopg reads for SyncBilling).
"""

from __future__ import annotations

from qzpay.storage.postgres.blocking import BlockingReader
from qzpay.storage.postgres.sql import (
    count_query,
    list_query,
    provider_query,
    scan_query,
    where_clauses,
)
from qzpay.storage.postgres.storage import PostgresStorage

__all__ = [
    "BlockingReader",
    "PostgresStorage",
    "count_query",
    "list_query",
    "provider_query",
    "scan_query",
    "where_clauses",
]
