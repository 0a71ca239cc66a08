-- Event relays (qzpay.relay), one row per relay name: the last event the broker acknowledged
-- (written only after its ack) and the lease of the one process publishing. Times in µs.
CREATE TABLE relay_state (
    name TEXT PRIMARY KEY,
    position TEXT,
    published INTEGER NOT NULL DEFAULT 0,
    holder TEXT,
    lease_until INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
