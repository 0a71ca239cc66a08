-- Pending provider work, oldest first (list_sync_tasks, claim_sync_tasks): read in index order
-- and stopped at the limit, instead of sorting every task (PostgreSQL has had this index since
-- its 0002).
CREATE INDEX sync_tasks_created ON sync_tasks (created_at, customer_id);
