-- The catalog (issue 12): plans and their recurring prices. Both are archived (active false),
-- never deleted. metadata, entitlements, limits and provider_ids are JSONB copies kept so a
-- record is one row read; plan_links and price_links are the indexed provider ids (one id per
-- provider and record, and a provider id linked to one record), as customer_links. Ids sort
-- bytewise (COLLATE "C"), so newest first is ORDER BY id DESC.
CREATE TABLE plans (
    id text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    name text NOT NULL,
    description text,
    entitlements jsonb NOT NULL,
    limits jsonb NOT NULL,
    metadata jsonb NOT NULL,
    active boolean NOT NULL,
    provider_ids jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    idempotency_key text,
    request_fingerprint text,
    CONSTRAINT plans_pkey PRIMARY KEY (id),
    CONSTRAINT plans_idempotency_key_key UNIQUE (idempotency_key),
    CONSTRAINT plans_key_key UNIQUE (key)
) WITH (fillfactor = 80);

-- The idempotency key's index comes before the key's: PostgreSQL checks a new row against
-- the unique indexes in creation order, so a create racing a retry of itself with the same
-- idempotency key (and so the same plan key) fails on the idempotency key, which the engine
-- answers by replaying the first create.

-- list_plans(active=...) and its keyset scan, newest first.
CREATE INDEX plans_active ON plans (active, id);

CREATE TABLE plan_links (
    provider text COLLATE "C" NOT NULL,
    provider_plan_id text COLLATE "C" NOT NULL,
    plan_id text COLLATE "C" NOT NULL REFERENCES plans (id),
    CONSTRAINT plan_links_pkey PRIMARY KEY (provider, provider_plan_id),
    CONSTRAINT plan_links_plan_provider_key UNIQUE (plan_id, provider)
);

CREATE INDEX plan_links_provider_plan_id ON plan_links (provider_plan_id, plan_id);

-- recurring_interval: "interval" is a keyword in SQL.
CREATE TABLE prices (
    id text COLLATE "C" NOT NULL,
    plan_id text COLLATE "C" NOT NULL REFERENCES plans (id),
    currency text COLLATE "C" NOT NULL,
    unit_amount bigint NOT NULL,
    recurring_interval text NOT NULL,
    interval_count integer NOT NULL,
    trial_days integer,
    lookup_key text COLLATE "C",
    metadata jsonb NOT NULL,
    active boolean NOT NULL,
    provider_ids jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    idempotency_key text,
    request_fingerprint text,
    CONSTRAINT prices_pkey PRIMARY KEY (id),
    CONSTRAINT prices_idempotency_key_key UNIQUE (idempotency_key)
) WITH (fillfactor = 80);

-- A lookup key names one active price (archived prices may keep theirs); this index also
-- answers get_price_by_lookup_key.
CREATE UNIQUE INDEX prices_active_lookup_key ON prices (lookup_key)
    WHERE active AND lookup_key IS NOT NULL;

-- list_prices filters (plan, active, currency), each with the keyset order.
CREATE INDEX prices_plan ON prices (plan_id, active, id);

CREATE INDEX prices_active ON prices (active, id);

CREATE INDEX prices_currency ON prices (currency, active, id);

CREATE TABLE price_links (
    provider text COLLATE "C" NOT NULL,
    provider_price_id text COLLATE "C" NOT NULL,
    price_id text COLLATE "C" NOT NULL REFERENCES prices (id),
    CONSTRAINT price_links_pkey PRIMARY KEY (provider, provider_price_id),
    CONSTRAINT price_links_price_provider_key UNIQUE (price_id, provider)
);

CREATE INDEX price_links_provider_price_id ON price_links (provider_price_id, price_id);
