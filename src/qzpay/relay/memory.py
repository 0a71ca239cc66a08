"""Relay state for ``memory://`` storage: a plain object per storage instance (one process)."""

from __future__ import annotations

import weakref
from dataclasses import replace
from datetime import timedelta

from qzpay._time import EPOCH, utcnow
from qzpay.relay.state import RelayRecord

_STATES: weakref.WeakKeyDictionary[object, MemoryRelayState] = weakref.WeakKeyDictionary()


def memory_relay_state(storage: object) -> MemoryRelayState:
    """The one state of this storage instance (relays sharing a Billing share it)."""
    state = _STATES.get(storage)
    if state is None:
        state = _STATES[storage] = MemoryRelayState()
    return state


class MemoryRelayState:
    def __init__(self) -> None:
        self._rows: dict[str, RelayRecord] = {}

    def _row(self, name: str) -> RelayRecord:
        now = utcnow()
        row = self._rows.get(name)
        if row is None:
            row = RelayRecord(name, None, 0, None, EPOCH, now, now)
        return replace(row, now=now)

    async def get(self, name: str) -> RelayRecord | None:
        return None if name not in self._rows else self._row(name)

    async def try_acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        row = self._row(name)
        if row.holder not in (None, holder) and row.lease_active:
            return False
        until = row.now + timedelta(seconds=seconds)
        self._rows[name] = replace(row, holder=holder, lease_until=until, updated_at=row.now)
        return True

    async def renew_lease(self, name: str, holder: str, seconds: float) -> bool:
        row = self._row(name)
        if row.holder != holder:
            return False
        until = row.now + timedelta(seconds=seconds)
        self._rows[name] = replace(row, lease_until=until, updated_at=row.now)
        return True

    async def set_position(
        self, name: str, holder: str, position: str, published: int, seconds: float
    ) -> bool:
        row = self._row(name)
        if row.holder != holder:
            return False
        self._rows[name] = replace(
            row,
            position=position,
            published=row.published + published,
            lease_until=row.now + timedelta(seconds=seconds),
            updated_at=row.now,
        )
        return True

    async def release_lease(self, name: str, holder: str) -> None:
        row = self._row(name)
        if row.holder == holder:
            self._rows[name] = replace(row, holder=None, lease_until=row.now, updated_at=row.now)
