-- A record's events, newest first (list_record_events: the admin console's customer timeline),
-- as one backward index range read instead of a scan of the whole log. The column customer_id
-- holds the record's id for events of any resource; (txid, seq) is the log's order.
CREATE INDEX events_customer_id_txid_seq ON events (customer_id, txid, seq);
