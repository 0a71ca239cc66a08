"""The event relay: qzpay's durable event log delivered to NATS JetStream, in order, at least
once, de-duplicated by event id (``pip install "qzpay[nats]"``; ``qzpay relay``)."""

from __future__ import annotations

from qzpay.relay.runner import RelayStats, run_relay
from qzpay.relay.state import RelayRecord, RelayState
from qzpay.relay.status import RelayStatus, relay_status

__all__ = [
    "RelayRecord",
    "RelayState",
    "RelayStats",
    "RelayStatus",
    "relay_status",
    "run_relay",
]
