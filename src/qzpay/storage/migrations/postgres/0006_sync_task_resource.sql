-- Sync tasks carry a record of any resource (issue 11). ``resource`` names the record's kind, a
-- name registered in qzpay.records; rows written before are customer tasks (a constant default:
-- adding the column rewrites nothing). The columns customer_id and customer keep their names and
-- hold the record's id and JSON snapshot (qzpay.storage.rows maps them to SyncTask.record_id and
-- SyncTask.record): renaming them would gain nothing but a harder upgrade.
ALTER TABLE sync_tasks ADD COLUMN resource text COLLATE "C" NOT NULL DEFAULT 'customer';

-- find_sync_task_by_link for every resource: ``links`` copies the snapshot's provider links (the
-- field the resource declares), and the GIN index of migration 0003, on the customer field,
-- moves to it (same options, see 0003 for the measurements).
ALTER TABLE sync_tasks ADD COLUMN links jsonb NOT NULL DEFAULT '{}'::jsonb;

UPDATE sync_tasks SET links = coalesce(customer -> 'provider_customer_ids', '{}'::jsonb);

CREATE INDEX sync_tasks_links ON sync_tasks
    USING gin (links jsonb_path_ops) WITH (fastupdate = off);

DROP INDEX sync_tasks_provider_ids;
