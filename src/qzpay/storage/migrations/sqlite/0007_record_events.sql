-- A record's events, newest first (list_record_events: the admin console's customer timeline),
-- as one index range read instead of a scan of the whole log. The column customer_id holds the
-- record's id for events of any resource.
CREATE INDEX events_customer_id_seq ON events (customer_id, seq);
