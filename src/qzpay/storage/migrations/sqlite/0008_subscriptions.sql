-- Subscriptions (issue 13): a customer's subscription to a price, billed by at most one
-- provider. Never deleted (a subscription ends as canceled). plan_id is the price's plan,
-- copied so the entitlement read joins plans directly. Times are microseconds since the epoch.
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    price_id TEXT NOT NULL REFERENCES prices (id),
    plan_id TEXT NOT NULL REFERENCES plans (id),
    quantity INTEGER NOT NULL,
    status TEXT NOT NULL,
    current_period_start INTEGER NOT NULL,
    current_period_end INTEGER NOT NULL,
    trial_start INTEGER,
    trial_end INTEGER,
    cancel_at_period_end INTEGER NOT NULL,
    canceled_at INTEGER,
    ended_at INTEGER,
    payment_url TEXT,
    provider TEXT,
    provider_subscription_id TEXT,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_fingerprint TEXT
) WITHOUT ROWID;

-- A provider subscription id names one subscription (at that provider).
CREATE UNIQUE INDEX subscriptions_provider_id
    ON subscriptions (provider_subscription_id, provider)
    WHERE provider_subscription_id IS NOT NULL;

-- list_subscriptions filters, each with the keyset order (newest first).
CREATE INDEX subscriptions_customer ON subscriptions (customer_id, id);
CREATE INDEX subscriptions_status ON subscriptions (status, id);
CREATE INDEX subscriptions_plan ON subscriptions (plan_id, id);
CREATE INDEX subscriptions_price ON subscriptions (price_id, id);

-- The entitlement read: a customer's subscriptions in a granting status only (never its
-- ended history), in subscription id order, with the plan id so the index alone finds the
-- plans. status is a column too: SQLite (3.40 checked) counts a partial index as covering
-- only if it holds every column the query names, its predicate's included; without it
-- the planner prefers subscriptions_customer and reads every row of the customer.
CREATE INDEX subscriptions_granting ON subscriptions (customer_id, id, plan_id, status)
    WHERE status IN ('trialing', 'active', 'past_due');

-- run_due: provider-less subscriptions that have not ended, by period end.
CREATE INDEX subscriptions_due ON subscriptions (current_period_end, id)
    WHERE provider IS NULL AND status NOT IN ('canceled', 'incomplete_expired');
