-- Subscriptions (issue 13): a customer's subscription to a price, billed by at most one
-- provider. Never deleted (a subscription ends as canceled). plan_id is the price's plan,
-- copied so the entitlement read joins plans directly. Ids sort bytewise (COLLATE "C"), so
-- newest first is ORDER BY id DESC.
CREATE TABLE subscriptions (
    id text COLLATE "C" NOT NULL,
    customer_id text COLLATE "C" NOT NULL REFERENCES customers (id),
    price_id text COLLATE "C" NOT NULL REFERENCES prices (id),
    plan_id text COLLATE "C" NOT NULL REFERENCES plans (id),
    quantity integer NOT NULL,
    status text COLLATE "C" NOT NULL,
    current_period_start timestamptz NOT NULL,
    current_period_end timestamptz NOT NULL,
    trial_start timestamptz,
    trial_end timestamptz,
    cancel_at_period_end boolean NOT NULL,
    canceled_at timestamptz,
    ended_at timestamptz,
    payment_url text,
    provider text COLLATE "C",
    provider_subscription_id text COLLATE "C",
    metadata jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    idempotency_key text,
    request_fingerprint text,
    CONSTRAINT subscriptions_pkey PRIMARY KEY (id),
    CONSTRAINT subscriptions_idempotency_key_key UNIQUE (idempotency_key)
) WITH (fillfactor = 80);

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
-- ended history), with the plan id so the index alone finds the plans.
CREATE INDEX subscriptions_granting ON subscriptions (customer_id, plan_id)
    WHERE status IN ('trialing', 'active', 'past_due');

-- run_due: provider-less subscriptions that have not ended, by period end.
CREATE INDEX subscriptions_due ON subscriptions (current_period_end, id)
    WHERE provider IS NULL AND status NOT IN ('canceled', 'incomplete_expired');
