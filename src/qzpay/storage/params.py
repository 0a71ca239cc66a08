"""The parameter objects of the storage protocol (``qzpay.storage.base``): what a call says in
one value where the protocol and its three backends would otherwise each spell out the same
long keyword list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CreateKey:
    """The idempotency key a create was made with, and a digest of that request (what a retry
    with the same key must match). ``insert_customer``, ``insert_plan``, ``insert_price`` and
    ``insert_subscription`` store it with the record; ``find_idempotent_*`` gives it back."""

    idempotency_key: str
    request_fingerprint: str | None = None


def create_key(idempotency_key: str | None, request_fingerprint: str | None) -> CreateKey | None:
    """The CreateKey of a create made with ``idempotency_key`` (None: a create without one)."""
    return None if idempotency_key is None else CreateKey(idempotency_key, request_fingerprint)


@dataclass(frozen=True, slots=True)
class TaskClaim:
    """What ``claim_sync_tasks`` takes: the lease of up to ``limit`` tasks whose lease ended by
    ``now`` or whose ``lease_owner`` is one of ``stale_owners``, given to ``owner`` until
    ``lease_until``; only tasks of ``resource`` if it is given."""

    owner: str
    now: datetime
    lease_until: datetime
    stale_owners: frozenset[str]
    limit: int
    resource: str | None = None
