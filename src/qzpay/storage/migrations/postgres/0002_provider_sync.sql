-- Provider work recorded before it is attempted (see qzpay.storage.base.SyncTask).
CREATE TABLE sync_tasks (
    customer_id text COLLATE "C" NOT NULL,
    operation text NOT NULL,
    customer jsonb NOT NULL,
    committed boolean NOT NULL,
    idempotency_key text,
    request_fingerprint text,
    lease_owner text,
    lease_until timestamptz NOT NULL,
    attempts integer NOT NULL,
    last_error text,
    created_at timestamptz NOT NULL,
    CONSTRAINT sync_tasks_pkey PRIMARY KEY (customer_id),
    CONSTRAINT sync_tasks_idempotency_key_key UNIQUE (idempotency_key)
);

CREATE INDEX sync_tasks_created ON sync_tasks (created_at, customer_id);

-- Provider webhook deliveries already processed, for de-duplication by the provider's event id.
CREATE TABLE webhook_events (
    provider text NOT NULL,
    event_id text NOT NULL,
    received_at timestamptz NOT NULL,
    CONSTRAINT webhook_events_pkey PRIMARY KEY (provider, event_id)
);
