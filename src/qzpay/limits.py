"""Every limit of the public API, defined once.

Validation, the HTTP schemas and query parameters, the CLI options and the docs import these;
nothing else writes the numbers. The text limits are Stripe's (the strictest provider), so
anything qzpay accepts can be synced.
"""

from __future__ import annotations

# Identifiers and keys.
MAX_ID_LENGTH = 255  # qzpay ids, provider ids, event ids, cursors
MAX_IDEMPOTENCY_KEY_LENGTH = 255  # ours, and the providers' Idempotency-Key headers
MAX_PROVIDER_NAME_LENGTH = 40
# POST /webhooks/{provider}: a longer segment is a 422; a name up to this long that no
# configured provider has is a 404 (the edge is looser than MAX_PROVIDER_NAME_LENGTH).
MAX_WEBHOOK_PROVIDER_SEGMENT = 64

# Customer fields.
MAX_NAME_LENGTH = 256
MAX_ADDRESS_FIELD_LENGTH = 200

# Metadata (Stripe's limits; with a provider configured one key holds our id there).
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500

# Paging.
DEFAULT_LIST_LIMIT = 10
MAX_LIST_LIMIT = 100
MAX_OFFSET = 2**63 - 1  # the largest integer SQLite and PostgreSQL (bigint) can take
DEFAULT_PAGE_SIZE = 100  # iterate(): keyset pages
MAX_PAGE_SIZE = 1000
DEFAULT_EVENT_PAGE = 100  # events.list
MAX_EVENT_PAGE = 1000
DEFAULT_SYNC_BATCH = 100  # sync_pending(limit=)
MAX_SYNC_BATCH = 1000

# Errors and requests.
MAX_FIELD_ERRORS = 100  # problems listed in one ValidationError; the rest are counted
DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # HTTP request bodies, webhooks included

# Catalog: plans and prices (Stripe's limits, the strictest provider's).
MAX_SLUG_LENGTH = 64  # plan keys, entitlements, limit names: [a-z0-9][a-z0-9_-]{0,63}
MAX_DESCRIPTION_LENGTH = 40_000  # a plan's description (a Stripe Product's)
MAX_ENTITLEMENTS = 100  # per plan, counted after de-duplication
MAX_PLAN_LIMITS = 100  # keys of a plan's ``limits``
MAX_LIMIT_VALUE = 2**63 - 1  # a plan limit's value (PostgreSQL bigint)
MAX_UNIT_AMOUNT = 99_999_999  # a price's amount, in the currency's minor unit
MAX_TRIAL_DAYS = 730
MAX_LOOKUP_KEY_LENGTH = 200
# A price's whole billing period (interval_count x interval) is at most three years.
MAX_PRICE_PERIOD = {"day": 1095, "week": 156, "month": 36, "year": 3}

# Subscriptions.
MAX_QUANTITY = 100_000  # a subscription's quantity (seats)
DEFAULT_DUE_BATCH = 100  # run_due: subscriptions read per batch
MAX_DUE_PASSES = 100_000  # run_due: batches in one run (a bound on catching up)
MAX_WORKER_INTERVAL = 86_400  # qzpay worker --interval, in seconds
