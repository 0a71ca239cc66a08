-- Customers. metadata, address and provider_ids are JSONB copies kept so a customer is one row
-- read; customer_metadata and customer_links are the indexed forms used for filters and look-ups.
-- Ids sort bytewise (COLLATE "C"), as in SQLite, so newest-first is ORDER BY id DESC.
CREATE TABLE customers (
    id text COLLATE "C" NOT NULL,
    email text NOT NULL,
    email_key text COLLATE "C" NOT NULL,
    name text,
    phone text,
    address jsonb,
    metadata jsonb NOT NULL,
    provider_ids jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    idempotency_key text,
    request_fingerprint text,
    CONSTRAINT customers_pkey PRIMARY KEY (id),
    CONSTRAINT customers_idempotency_key_key UNIQUE (idempotency_key)
);

CREATE INDEX customers_email_key ON customers (email_key, id);

-- A side table rather than a GIN index on customers.metadata: prepared statements get generic
-- plans, and a generic plan for "metadata @> $1" cannot tell a rare value from a common one.
CREATE TABLE customer_metadata (
    customer_id text COLLATE "C" NOT NULL REFERENCES customers (id),
    key text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL,
    CONSTRAINT customer_metadata_pkey PRIMARY KEY (customer_id, key)
);

CREATE INDEX customer_metadata_key_value ON customer_metadata (key, value, customer_id);

CREATE TABLE customer_links (
    provider text COLLATE "C" NOT NULL,
    provider_customer_id text COLLATE "C" NOT NULL,
    customer_id text COLLATE "C" NOT NULL REFERENCES customers (id),
    CONSTRAINT customer_links_pkey PRIMARY KEY (provider, provider_customer_id),
    CONSTRAINT customer_links_customer_provider_key UNIQUE (customer_id, provider)
);

CREATE INDEX customer_links_provider_customer_id ON customer_links (provider_customer_id);

-- The durable event log. seq order is not commit order across concurrent transactions, so each
-- event records its transaction id; readers page by (txid, seq) and only return events whose
-- transaction is older than every transaction still running in this database.
CREATE TABLE events (
    seq bigserial NOT NULL,
    id text COLLATE "C" NOT NULL,
    type text NOT NULL,
    customer_id text COLLATE "C" NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT events_pkey PRIMARY KEY (seq),
    CONSTRAINT events_id_key UNIQUE (id)
);

CREATE INDEX events_txid_seq ON events (txid, seq);
