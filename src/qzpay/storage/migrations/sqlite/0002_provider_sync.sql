-- Provider work recorded before it is attempted (see qzpay.storage.base.SyncTask).
CREATE TABLE sync_tasks (
    customer_id TEXT PRIMARY KEY,
    operation TEXT NOT NULL,
    customer TEXT NOT NULL,
    committed INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_fingerprint TEXT,
    lease_owner TEXT,
    lease_until INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX sync_tasks_lease ON sync_tasks (lease_until);

-- Provider webhook deliveries already processed, for de-duplication by the provider's event id.
CREATE TABLE webhook_events (
    provider TEXT NOT NULL,
    event_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (provider, event_id)
) WITHOUT ROWID;
