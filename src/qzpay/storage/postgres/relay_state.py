"""Relay position and lease in PostgreSQL (see qzpay.relay.state).

Each call is one autocommitted statement: the lease is taken with ``INSERT ... ON CONFLICT DO
UPDATE ... WHERE`` (the row lock makes concurrent takers queue, and each re-checks the holder
on the row the previous one left), and every write carries ``WHERE holder = $2``. Lease times
are the server's clock. A statement whose connection was lost is re-sent once: each is
idempotent for the same holder.
"""

from __future__ import annotations

from qzpay.relay.state import RelayRecord
from qzpay.storage.postgres.storage import PostgresStorage

_LEASE = "clock_timestamp() + make_interval(secs => $3)"

_GET = """
    SELECT position, published, holder, lease_until, updated_at, clock_timestamp()
    FROM relay_state WHERE name = $1"""
_ACQUIRE = f"""
    INSERT INTO relay_state (name, holder, lease_until, updated_at)
    VALUES ($1, $2, {_LEASE}, clock_timestamp())
    ON CONFLICT (name) DO UPDATE
        SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until,
            updated_at = EXCLUDED.updated_at
        WHERE relay_state.holder IS NULL OR relay_state.holder = EXCLUDED.holder
           OR relay_state.lease_until < clock_timestamp()
    RETURNING 1"""
_RENEW = f"""
    UPDATE relay_state SET lease_until = {_LEASE}, updated_at = clock_timestamp()
    WHERE name = $1 AND holder = $2 RETURNING 1"""
_SET_POSITION = f"""
    UPDATE relay_state
    SET position = $4, published = published + $5, lease_until = {_LEASE},
        updated_at = clock_timestamp()
    WHERE name = $1 AND holder = $2 RETURNING 1"""
_RELEASE = """
    UPDATE relay_state SET holder = NULL, lease_until = clock_timestamp(),
        updated_at = clock_timestamp()
    WHERE name = $1 AND holder = $2"""


class PostgresRelayState:
    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage

    async def get(self, name: str) -> RelayRecord | None:
        row = await self._storage._read(lambda c: c.fetchrow(_GET, name))
        if row is None:
            return None
        return RelayRecord(name, row[0], int(row[1]), row[2], row[3], row[4], row[5])

    async def try_acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        found = await self._storage._read(lambda c: c.fetchval(_ACQUIRE, name, holder, seconds))
        return found is not None

    async def renew_lease(self, name: str, holder: str, seconds: float) -> bool:
        found = await self._storage._read(lambda c: c.fetchval(_RENEW, name, holder, seconds))
        return found is not None

    async def set_position(
        self, name: str, holder: str, position: str, published: int, seconds: float
    ) -> bool:
        args = (name, holder, seconds, position, published)
        found = await self._storage._read(lambda c: c.fetchval(_SET_POSITION, *args))
        return found is not None

    async def release_lease(self, name: str, holder: str) -> None:
        await self._storage._read(lambda c: c.execute(_RELEASE, name, holder))
