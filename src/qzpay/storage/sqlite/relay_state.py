"""Relay position and lease in the SQLite file (see qzpay.relay.state).

Each call is one ``BEGIN IMMEDIATE`` transaction through the storage's writer, so the lease is
safe between processes sharing the file: the check and the write hold the write lock together.
Times are the local clock in µs (the processes sharing a file share a host).
"""

from __future__ import annotations

import sqlite3
import time

from qzpay._time import from_micros
from qzpay.relay.state import RelayRecord
from qzpay.storage.sqlite.storage import SQLiteStorage

_COLUMNS = "position, published, holder, lease_until, updated_at"


def _now() -> int:
    return time.time_ns() // 1000


def _until(now: int, seconds: float) -> int:
    return now + int(seconds * 1_000_000)


class SQLiteRelayState:
    def __init__(self, storage: SQLiteStorage) -> None:
        self._storage = storage

    async def get(self, name: str) -> RelayRecord | None:
        await self._storage.open()
        reader = sqlite3.connect(f"file:{self._storage.path}?mode=ro", uri=True)
        try:
            reader.execute("PRAGMA busy_timeout = 5000")
            row = reader.execute(
                f"SELECT {_COLUMNS} FROM relay_state WHERE name = ?", (name,)
            ).fetchone()
        finally:
            reader.close()
        if row is None:
            return None
        position, published, holder, lease_until, updated_at = row
        return RelayRecord(
            name,
            position,
            int(published),
            holder,
            from_micros(lease_until),
            from_micros(updated_at),
            from_micros(_now()),
        )

    async def try_acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        async with self._storage.transaction() as tx:
            db: sqlite3.Connection = tx._db
            now = _now()
            row = db.execute(
                "SELECT holder, lease_until FROM relay_state WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO relay_state (name, holder, lease_until, updated_at) "
                    "VALUES (?, ?, ?, ?)",
                    (name, holder, _until(now, seconds), now),
                )
                return True
            current, lease_until = row
            if current not in (None, holder) and lease_until > now:
                return False
            db.execute(
                "UPDATE relay_state SET holder = ?, lease_until = ?, updated_at = ? WHERE name = ?",
                (holder, _until(now, seconds), now, name),
            )
            return True

    async def renew_lease(self, name: str, holder: str, seconds: float) -> bool:
        async with self._storage.transaction() as tx:
            now = _now()
            cursor = tx._db.execute(
                "UPDATE relay_state SET lease_until = ?, updated_at = ? "
                "WHERE name = ? AND holder = ?",
                (_until(now, seconds), now, name, holder),
            )
            return cursor.rowcount == 1

    async def set_position(
        self, name: str, holder: str, position: str, published: int, seconds: float
    ) -> bool:
        async with self._storage.transaction() as tx:
            now = _now()
            cursor = tx._db.execute(
                "UPDATE relay_state SET position = ?, published = published + ?, "
                "lease_until = ?, updated_at = ? WHERE name = ? AND holder = ?",
                (position, published, _until(now, seconds), now, name, holder),
            )
            return cursor.rowcount == 1

    async def release_lease(self, name: str, holder: str) -> None:
        async with self._storage.transaction() as tx:
            now = _now()
            tx._db.execute(
                "UPDATE relay_state SET holder = NULL, lease_until = ?, updated_at = ? "
                "WHERE name = ? AND holder = ?",
                (now, now, name, holder),
            )
