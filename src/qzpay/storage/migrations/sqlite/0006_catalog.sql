-- The catalog (issue 12): plans and their recurring prices. Both are archived (active = 0),
-- never deleted. metadata, entitlements, limits and provider_ids are JSON copies kept so a
-- record is one row read; plan_links and price_links are the indexed provider ids (one id
-- per provider and record, and a provider id linked to one record), as customer_links.
CREATE TABLE plans (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    entitlements TEXT NOT NULL,
    limits TEXT NOT NULL,
    metadata TEXT NOT NULL,
    active INTEGER NOT NULL,
    provider_ids TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_fingerprint TEXT
) WITHOUT ROWID;

-- list_plans(active=...) and its keyset scan, newest first.
CREATE INDEX plans_active ON plans (active, id);

CREATE TABLE plan_links (
    provider TEXT NOT NULL,
    provider_plan_id TEXT NOT NULL,
    plan_id TEXT NOT NULL REFERENCES plans (id),
    PRIMARY KEY (provider, provider_plan_id),
    UNIQUE (plan_id, provider)
) WITHOUT ROWID;

CREATE INDEX plan_links_provider_plan_id ON plan_links (provider_plan_id, plan_id);

-- recurring_interval: "interval" is a keyword in SQL.
CREATE TABLE prices (
    id TEXT PRIMARY KEY,
    plan_id TEXT NOT NULL REFERENCES plans (id),
    currency TEXT NOT NULL,
    unit_amount INTEGER NOT NULL,
    recurring_interval TEXT NOT NULL,
    interval_count INTEGER NOT NULL,
    trial_days INTEGER,
    lookup_key TEXT,
    metadata TEXT NOT NULL,
    active INTEGER NOT NULL,
    provider_ids TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_fingerprint TEXT
) WITHOUT ROWID;

-- A lookup key names one active price (archived prices may keep theirs); this index also
-- answers get_price_by_lookup_key.
CREATE UNIQUE INDEX prices_active_lookup_key ON prices (lookup_key)
    WHERE active = 1 AND lookup_key IS NOT NULL;

-- list_prices filters (plan, active, currency), each with the keyset order.
CREATE INDEX prices_plan ON prices (plan_id, active, id);

CREATE INDEX prices_active ON prices (active, id);

CREATE INDEX prices_currency ON prices (currency, active, id);

CREATE TABLE price_links (
    provider TEXT NOT NULL,
    provider_price_id TEXT NOT NULL,
    price_id TEXT NOT NULL REFERENCES prices (id),
    PRIMARY KEY (provider, provider_price_id),
    UNIQUE (price_id, provider)
) WITHOUT ROWID;

CREATE INDEX price_links_provider_price_id ON price_links (provider_price_id, price_id);
