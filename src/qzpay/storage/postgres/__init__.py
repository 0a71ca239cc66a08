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

Updates and deletes (issue 16). ``transaction()`` reads a customer for change under the
customer's advisory lock and FOR UPDATE: BEGIN with the lock, the SELECT, the write, COMMIT,
four round trips. ``optimistic_transaction()`` (qzpay.storage.base.SupportsOptimisticWrites)
reads without BEGIN or lock, noting the row's xmin, and commits the change, its side-table
rows and its event as one checked statement (sql.checked_statement): it takes the customer's
advisory xact lock, updates the row only if xmin is still the one read (a concurrent committed
update makes PostgreSQL re-check the row and skip it), and writes the metadata, links and
events only if the update happened. A stale write writes nothing and raises WriteConflict; the
caller re-reads and retries. So an update is two round trips, a read and one statement, and a
no-op update or a delete of a deleted customer is the read alone. A customer this storage
created or changed in the last minute (``recent_versions``, qzpay.storage.postgres.recent) is not
read again: its remembered version goes into the checked statement, so the update is one round
trip; a stale copy is refused by the check like any concurrent change, and the refusal answers
with the row as it is, so the retry needs no read either. Per-customer event order
holds: a writer takes its txid only after the advisory lock (and a stale one commits no event).
The shape was chosen by measurement: the issue's prototype measured 1,222 updates/s for the
four-round-trip shape, 1,728/s for an optimistic read and one compare-and-set statement, and
2,211/s for one server-side statement doing lock, read, merge, write and event; the last needs
the service's merge and event building in SQL, outside the Transaction protocol, so the
optimistic shape is the fastest one that keeps the protocol and every guarantee; remembering
versions makes it one round trip in the common case (same-run ratio to the raw driver's BEGIN,
UPDATE, COMMIT: update 0.84–1.00, delete 0.95–1.14, against 0.66–0.80 and 0.71–0.88 reading
first). Figures on this machine are in docs/benchmarks.md ("PostgreSQL writes (issue 16)").

Plans, prices and subscriptions take the same path (qzpay.storage.postgres.checked, one
``Check`` per kind): an optimistic transaction's first read for change is unlocked, and the
change is one checked statement with its events; a record seen recently is not read at all.
A later read in the same transaction first locks the record read so (BEGIN with its advisory
lock, then its row, checking the version), so a subscription change that alters access, which
reads the customer's grants under the customer's lock, takes its locks in the locking path's
order (subscription, then customer). Same-run ratio to the raw driver's BEGIN, UPDATE, COMMIT
(bench.record_writes, medians of 3 repeats, two runs): plan update 0.93–0.96 remembered,
0.67–0.73 read first, 0.44–0.50 locked; a free subscription's uncancel 0.96–0.98, 0.72–0.73,
0.43–0.50. A record created here is remembered once its transaction commits, unless that
transaction changed it again (both versions carry its xmin).

Write amplification (migration 0004, measured with pg_walinspect, bench.postgres_writes): the
event table's key on seq alone (a third index each event wrote, read by nothing) is gone,
(txid, seq) is the primary key; customers has fillfactor 80, so an update that changes no
indexed column is HOT; a metadata value that changes is a plain UPDATE rather than INSERT ...
ON CONFLICT DO UPDATE, which wrote a separate row-lock record; the optimistic path takes no
FOR UPDATE row lock (another record), the advisory queue and the check doing its work.

Connection loss: reads are retried once on a fresh connection. A write is retried only where it
cannot have committed (connecting, BEGIN), or where re-sending it is harmless (the one-statement
commit, re-sent with ON CONFLICT DO NOTHING on ids chosen by the client). A lost COMMIT is never
retried; it raises StorageError. An optimistic commit's checked statement is re-sent
once: if the first copy committed, the check fails and its event, found by id, tells so.

Modules: ``storage`` (PostgresStorage: open, migrate, reads), ``transaction`` (the Transaction
protocol's writes), ``commit`` (how they reach the server: kept writes, commit, rollback),
``recent`` (recently seen versions), ``checked`` (the checked statement of every record kind),
``sql`` (statements, query builders, write composition),
``connections`` (where connections come from, which errors mean one is lost), ``blocking``
(psycopg reads for SyncBilling).
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
