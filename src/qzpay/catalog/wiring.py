"""What ``Billing`` builds the catalog and subscription services from, in one value: the same
storage, event bus, configured providers, ``provider_sync_errors`` mode and metadata limit
reach every one of them, so they are named once rather than at each constructor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qzpay.engine.strategy import SyncErrors
from qzpay.events import EventBus
from qzpay.limits import MAX_METADATA_KEYS
from qzpay.providers.base import PaymentProvider
from qzpay.storage.base import Storage


@dataclass(frozen=True)
class Wiring:
    storage: Storage
    bus: EventBus
    providers: Sequence[PaymentProvider] = ()
    sync_errors: SyncErrors = "raise"
    metadata_limit: int = MAX_METADATA_KEYS
    """``MAX_METADATA_KEYS``, less the slot a provider keeps for qzpay's id when there is one."""
