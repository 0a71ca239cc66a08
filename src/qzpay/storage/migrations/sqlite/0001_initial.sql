-- Customers. metadata, address and provider_ids are JSON copies kept for single-row reads;
-- customer_metadata and customer_links are the indexed forms used for filtering and look-ups.
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    name TEXT,
    phone TEXT,
    address TEXT,
    metadata TEXT NOT NULL,
    provider_ids TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER,
    idempotency_key TEXT UNIQUE,
    request_fingerprint TEXT
) WITHOUT ROWID;

CREATE INDEX customers_email_key ON customers (email_key, id);

CREATE TABLE customer_metadata (
    customer_id TEXT NOT NULL REFERENCES customers (id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (customer_id, key)
) WITHOUT ROWID;

CREATE INDEX customer_metadata_key_value ON customer_metadata (key, value, customer_id);

CREATE TABLE customer_links (
    provider TEXT NOT NULL,
    provider_customer_id TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    PRIMARY KEY (provider, provider_customer_id),
    UNIQUE (customer_id, provider)
) WITHOUT ROWID;

CREATE INDEX customer_links_provider_customer_id ON customer_links (provider_customer_id);

-- The durable event log. seq is assigned inside the writing transaction, and SQLite has one
-- writer at a time, so seq order is commit order.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
