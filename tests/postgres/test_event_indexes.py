"""Reading the event log backward uses its indexes on a log of 60k events: newest first
through the primary key (txid, seq), of one type through events_by_type (type, txid, seq),
from the end or below an event, never a scan of the log nor a sort.

As in test_subscription_indexes, each plan is checked both as PostgreSQL first plans the query
(with the values) and as it plans a prepared statement it reuses (a generic plan, blind to the
values), since asyncpg prepares and caches every statement: the statement is PREPAREd and
EXPLAINed through EXECUTE.
"""

from __future__ import annotations

import pytest

from qzpay import Billing
from qzpay.events import new_event
from qzpay.storage.postgres import PostgresStorage
from qzpay.storage.postgres.sql import backward_query
from tests.contract.test_subscription_storage import T0, customer
from tests.postgres.conftest import Admin
from tests.postgres.test_subscription_indexes import PLANS, _plan, _scans

pytestmark = pytest.mark.postgres

EVENTS = 60_000
# Of every 20 events: 17 updates, 2 creations, 1 deletion; three events per transaction.
TYPES = ("customer.updated",) * 17 + ("customer.created",) * 2 + ("customer.deleted",)


@pytest.fixture
async def loaded(pg_url: str, admin: Admin) -> list[tuple[str, str]]:
    """The log, written straight into the table; (id, type) of each event in the log's order."""
    async with Billing(storage=pg_url) as billing:
        await billing.open()  # the schema
    template = new_event(
        "customer.updated", customer(), id="evt_x", previous=None, created_at=T0
    ).model_dump_json()
    kinds = "ARRAY[" + ", ".join(f"'{t}'" for t in TYPES) + "]"
    await admin.execute(
        f"""
        INSERT INTO events (id, type, customer_id, payload, created_at, txid)
        SELECT 'evt_' || lpad(i::text, 8, '0'), t,
               'cus_' || (i % 1000),
               jsonb_set(jsonb_set($1::jsonb, '{{id}}', to_jsonb('evt_' || lpad(i::text, 8, '0'))),
                         '{{type}}', to_jsonb(t)),
               now(), (1000 + i / 3)::text::xid8
        FROM generate_series(0, {EVENTS - 1}) AS i,
             LATERAL (SELECT ({kinds})[i % {len(TYPES)} + 1] AS t) AS k
        ORDER BY i
        """,
        template,
    )
    await admin.execute("ANALYZE events")
    rows = await admin.fetch("SELECT id, type FROM events ORDER BY txid, seq")
    return [(row["id"], row["type"]) for row in rows]


async def _assert_indexed(
    admin: Admin, mode: str, sql: str, args: list[object], *indexes: str
) -> None:
    """The log is read through one of ``indexes`` (and events_id_key, which finds
    ``before``), in the order the query asks for: no scan of the log, no sort."""
    nodes = await _plan(admin, mode, sql, args)
    scans = _scans(nodes, "events")
    assert scans, nodes
    assert all(node["Node Type"] != "Seq Scan" for node in scans), nodes
    assert all(node["Node Type"] != "Sort" for node in nodes), nodes
    used = {node.get("Index Name") for node in scans} - {"events_id_key"}
    assert used, nodes
    assert used <= set(indexes), nodes


class TestAtScale:
    async def test_reads_use_their_indexes_and_answer_correctly(
        self, loaded: list[tuple[str, str]], admin: Admin, pg_url: str
    ) -> None:
        middle = loaded[EVENTS // 2][0]
        for mode in PLANS:
            for before in (None, middle):
                # A rare type, and one with no events at all: its index, never a walk of the
                # whole log looking for it (what a plan blind to the type would do).
                for rare in ("customer.deleted", "plan.archived"):
                    sql, args = backward_query(before=before, limit=100, event_type=rare)
                    await _assert_indexed(admin, mode, sql, args, "events_by_type")
                # Most of the log: walking the log's order and skipping the rest costs as
                # little, so PostgreSQL may take either.
                sql, args = backward_query(before=before, limit=100, event_type="customer.updated")
                await _assert_indexed(admin, mode, sql, args, "events_by_type", "events_txid_seq")
                sql, args = backward_query(before=before, limit=100)
                await _assert_indexed(admin, mode, sql, args, "events_txid_seq")
        await self._check_answers(loaded, pg_url)

    @staticmethod
    async def _check_answers(loaded: list[tuple[str, str]], pg_url: str) -> None:
        storage = PostgresStorage(pg_url)
        try:
            newest = await storage.list_events_backward(before=None, limit=50)
            assert [e.id for e in newest] == [i for i, _ in reversed(loaded[-50:])]
            at = EVENTS // 2
            for event_type in ("customer.deleted", "customer.created"):
                found = await storage.list_events_backward(
                    before=loaded[at][0], limit=200, event_type=event_type
                )
                expected = [i for i, t in reversed(loaded[:at]) if t == event_type][:200]
                assert [e.id for e in found] == expected
                assert {e.type for e in found} == {event_type}
        finally:
            await storage.close()
