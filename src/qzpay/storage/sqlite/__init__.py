"""SQLite storage: the embedded default. One file, WAL mode, several processes may share it.

Design, measured rather than assumed: the stdlib driver is called directly on the event loop
thread (a point read costs microseconds; a thread hop per call would cost far more). Writes
take the database write lock with ``BEGIN IMMEDIATE`` and, while another process holds it,
wait with ``asyncio.sleep`` instead of blocking the loop. Reads use their own connection, so
they only ever see committed data.

Modules: ``storage`` (SQLiteStorage: open, migrate, the write lock), ``reader`` (reads and row
decoding), ``transaction`` (writes).
"""

from __future__ import annotations

from qzpay.storage.sqlite.storage import SYNCHRONOUS_MODES, SQLiteStorage

__all__ = ["SYNCHRONOUS_MODES", "SQLiteStorage"]
