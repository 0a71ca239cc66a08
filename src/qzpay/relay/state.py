"""Where a relay keeps its position and its lease: a small protocol over qzpay's own database.

One row per relay name. ``position`` is the last event JetStream acknowledged, written only
after the ack; ``holder`` and ``lease_until`` say which process may publish. Every write names
the holder and only succeeds for the current one, so a relay that lost its lease (paused longer
than the lease, say) can neither move the position nor keep publishing past its next write.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


def new_holder_id() -> str:
    """``host:pid:random``: unique per relay process, readable in ``qzpay relay --status``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class RelayRecord:
    """A relay's stored state; ``now`` is the clock the lease is judged by (the database's)."""

    name: str
    position: str | None
    published: int
    holder: str | None
    lease_until: datetime
    updated_at: datetime
    now: datetime

    @property
    def lease_active(self) -> bool:
        return self.holder is not None and self.lease_until > self.now


class RelayState(Protocol):
    async def get(self, name: str) -> RelayRecord | None:
        """The relay's state, or None if no relay of that name ever ran."""
        ...

    async def try_acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take the lease for ``seconds`` if it is free, expired, or already ``holder``'s."""
        ...

    async def renew_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Extend ``holder``'s lease; False if another process holds it now."""
        ...

    async def set_position(
        self, name: str, holder: str, position: str, published: int, seconds: float
    ) -> bool:
        """Store ``position`` (acknowledged by the broker), add ``published`` to the count and
        extend the lease, in one small transaction; False (nothing written) unless ``holder``
        holds the lease."""
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (a clean stop), so another relay takes over at once."""
        ...
