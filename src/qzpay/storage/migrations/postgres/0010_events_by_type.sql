-- The log of one event type, newest first (list_events_backward with a type: the admin console's
-- Events page filtered by type), as one backward index range read instead of a scan of the
-- whole log. (txid, seq) is the log's order.
CREATE INDEX events_by_type ON events (type, txid, seq);
