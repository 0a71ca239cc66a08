-- Event relays (qzpay.relay), one row per relay name: the last event the broker acknowledged
-- (written only after its ack) and the lease of the one process publishing. Lease times come
-- from the server's clock, so relays on several hosts agree on when a lease ends.
CREATE TABLE relay_state (
    name text COLLATE "C" NOT NULL,
    position text COLLATE "C",
    published bigint NOT NULL DEFAULT 0,
    holder text,
    lease_until timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT relay_state_pkey PRIMARY KEY (name)
);
