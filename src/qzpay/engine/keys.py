"""Idempotency keys of provider requests, for every resource.

A key names one request to one provider object: it is sent again only for that very request.

* A create is about the object-to-be, which nothing at the provider names yet, so its key is
  derived from the qzpay record id and the stored version of the record the provider copy is
  made from (:func:`create_key`, given the values that are sent). Every retry of that create,
  from any process, sends the same key, so a create that landed unseen is deduplicated by the
  provider; a create from a changed record is another request with another key (a provider
  that replays a key's first answer would otherwise answer with an earlier, perhaps deleted,
  object, and Stripe refuses a key reused with different parameters).
* Deleting a given provider object is always the same request (:func:`delete_key`).
* A write that sets absolute values (update, adopt, release) gets a fresh key per attempt
  (:func:`fresh_key`): sending it again is harmless, reusing a key is not.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from qzpay.limits import MAX_IDEMPOTENCY_KEY_LENGTH

MAX_KEY_LENGTH = MAX_IDEMPOTENCY_KEY_LENGTH
"""The longest Idempotency-Key Stripe accepts; longer keys are shortened by hashing."""


def create_key(
    record_id: str, updated_at: datetime | None = None, sent: Sequence[object] = ()
) -> str:
    """The key of creating the record ``record_id`` at a provider, at the version stored at
    ``updated_at`` and sending the values ``sent`` (JSON-serialisable, in a fixed order).

    Without ``updated_at`` the key depends on the id alone.
    """
    if updated_at is None:
        return fit(f"qzpay-create-{record_id}")
    version = json.dumps(
        [updated_at.astimezone(UTC).isoformat(), *sent],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    digest = hashlib.sha256(version.encode()).hexdigest()[:32]
    return fit(f"qzpay-create-{record_id}-{digest}")


def delete_key(provider_id: str) -> str:
    """The key of deleting one provider object, named by the provider's id.

    Two different provider objects (a copy and a leftover copy of one record) never share one.
    """
    return fit(f"qzpay-delete-{provider_id}")


def fresh_key(operation: str, provider_id: str) -> str:
    """A key for one attempt of a write that sets absolute values (update, adopt, release) to
    the provider object ``provider_id``.

    Sending such a write again is harmless, while reusing a key is not: the provider would
    replay its earlier answer instead of applying the write (after a change was reverted and
    is made again, or after a 5xx it saved), so every attempt gets its own key.
    """
    return fit(f"qzpay-{operation}-{provider_id}-{secrets.token_hex(12)}")


def update_key(provider_id: str) -> str:
    """The key of one attempt to push a change (see :func:`fresh_key`)."""
    return fresh_key("update", provider_id)


def fit(key: str) -> str:
    """``key``, or a same-prefixed digest of it when it is longer than a provider accepts."""
    if len(key) <= MAX_KEY_LENGTH:
        return key
    operation = key.split("-", 2)[1]
    return f"qzpay-{operation}-{hashlib.sha256(key.encode()).hexdigest()}"
