-- Look-ups by provider id (without the provider) read the customer id from the index itself
-- instead of a second B-tree descent into customer_links: measured 20 µs -> 36 µs from 10k to 1M
-- customers with the old index.
DROP INDEX customer_links_provider_customer_id;

CREATE INDEX customer_links_provider_customer_id ON customer_links (provider_customer_id, customer_id);
