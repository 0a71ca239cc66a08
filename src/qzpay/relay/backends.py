"""The RelayState for a Billing's storage: SQLite and PostgreSQL keep it in their database,
memory in the process."""

from __future__ import annotations

from qzpay.relay.memory import memory_relay_state
from qzpay.relay.state import RelayState
from qzpay.storage.base import Storage
from qzpay.storage.memory import MemoryStorage
from qzpay.storage.sqlite import SQLiteStorage


def relay_state_for(storage: Storage) -> RelayState:
    if isinstance(storage, SQLiteStorage):
        from qzpay.storage.sqlite.relay_state import SQLiteRelayState

        return SQLiteRelayState(storage)
    if isinstance(storage, MemoryStorage):
        return memory_relay_state(storage)
    try:
        from qzpay.storage.postgres import PostgresStorage
    except ImportError:  # pragma: no cover - asyncpg not installed
        PostgresStorage = None  # type: ignore[assignment,misc]
    if PostgresStorage is not None and isinstance(storage, PostgresStorage):
        from qzpay.storage.postgres.relay_state import PostgresRelayState

        return PostgresRelayState(storage)
    raise TypeError(f"the event relay does not support {type(storage).__name__} storage")
