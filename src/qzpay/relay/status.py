"""``relay_status``: where a relay stands (position, lag, lease holder), without NATS unless
asked to describe the stream too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qzpay._time import utcnow
from qzpay.billing import Billing
from qzpay.relay.backends import relay_state_for

LAG_COUNT_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class RelayStatus:
    """``lag_events`` counts the events not yet relayed (at most ``LAG_COUNT_LIMIT``;
    ``lag_capped`` says the count stopped there); ``lag_seconds`` is the age of the oldest."""

    name: str
    position: str | None
    published: int
    holder: str | None
    lease_active: bool
    lease_until: datetime | None
    updated_at: datetime | None
    lag_events: int
    lag_capped: bool
    lag_seconds: float
    stream: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "position": self.position,
            "published": self.published,
            "holder": self.holder if self.lease_active else None,
            "lease_until": self.lease_until.isoformat() if self.lease_until else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "lag_events": self.lag_events,
            "lag_capped": self.lag_capped,
            "lag_seconds": round(self.lag_seconds, 3),
            "stream": self.stream,
        }


async def relay_status(
    billing: Billing,
    *,
    stream: str = "QZPAY",
    name: str | None = None,
    nats_url: str | None = None,
    subject_prefix: str = "qzpay",
) -> RelayStatus:
    """The stored state of relay ``name`` (default: the stream name) and its lag; with
    ``nats_url``, also the stream's message count and any settings that differ."""
    name = name or stream
    record = await relay_state_for(billing.storage).get(name)
    position = record.position if record else None
    lag, oldest, cursor = 0, None, position
    while lag < LAG_COUNT_LIMIT:
        page = await billing.events.list(after=cursor, limit=1000)
        if not page:
            break
        oldest = oldest or page[0]
        lag += len(page)
        cursor = page[-1].id
    lag_seconds = (utcnow() - oldest.created_at).total_seconds() if oldest else 0.0
    return RelayStatus(
        name=name,
        position=position,
        published=record.published if record else 0,
        holder=record.holder if record else None,
        lease_active=record.lease_active if record else False,
        lease_until=record.lease_until if record and record.holder else None,
        updated_at=record.updated_at if record else None,
        lag_events=min(lag, LAG_COUNT_LIMIT),
        lag_capped=lag >= LAG_COUNT_LIMIT,
        lag_seconds=max(0.0, lag_seconds),
        stream=await _describe(nats_url, stream, subject_prefix) if nats_url else None,
    )


async def _describe(nats_url: str, stream: str, subject_prefix: str) -> dict[str, Any]:
    from qzpay.relay.jetstream import BROKER_ERRORS, Connection, StreamSettings, describe

    try:
        connection = await Connection.open(nats_url, name="qzpay-relay status", max_in_flight=1)
    except BROKER_ERRORS as exc:
        return {"name": stream, "error": f"NATS unavailable: {exc or type(exc).__name__}"}
    try:
        return await describe(connection.js, StreamSettings(stream, subject_prefix))
    except BROKER_ERRORS as exc:
        return {"name": stream, "error": str(exc) or type(exc).__name__}
    finally:
        await connection.close()
