-- Sync tasks carry a record of any resource (issue 11). ``resource`` names the record's kind, a
-- name registered in qzpay.records; rows written before are customer tasks. The columns
-- customer_id and customer keep their names and hold the record's id and JSON snapshot
-- (qzpay.storage.rows maps them to SyncTask.record_id and SyncTask.record). ``links`` copies
-- the snapshot's provider links (the field the resource declares) for find_sync_task_by_link.
ALTER TABLE sync_tasks ADD COLUMN resource TEXT NOT NULL DEFAULT 'customer';

ALTER TABLE sync_tasks ADD COLUMN links TEXT NOT NULL DEFAULT '{}';

UPDATE sync_tasks
SET links = coalesce(json_extract(customer, '$.provider_customer_ids'), '{}');
