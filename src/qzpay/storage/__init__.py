"""Storage backends and the URL scheme that picks one."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from qzpay.storage.base import CustomerFilter, Storage, Transaction
from qzpay.storage.memory import MemoryStorage
from qzpay.storage.sqlite import SQLiteStorage


def open_storage(storage: str | Storage, *, migrate: bool = True) -> Storage:
    """A Storage from a URL (``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs.db``,
    ``postgresql://...``) or the Storage object itself. Connecting happens on first use, and
    with ``migrate`` the schema is brought up to date then."""
    if not isinstance(storage, str):
        if isinstance(storage, Storage):
            return storage
        raise TypeError("storage must be a URL string or a Storage object")
    scheme, _, rest = storage.partition("://")
    if not rest and not storage.endswith("://"):
        raise ValueError(
            f"storage URL {storage!r} has no scheme (expected memory://, sqlite:///...)"
        )
    scheme = scheme.lower()
    if scheme == "memory":
        return MemoryStorage()
    if scheme == "sqlite":
        parts = urlsplit(storage)
        if parts.netloc:
            raise ValueError(
                "sqlite URLs have no host: use sqlite:///relative/path.db or sqlite:////abs/path.db"
            )
        path = unquote(parts.path[1:])  # drop the slash that ends the empty authority
        if not path:
            raise ValueError("sqlite URL needs a file path, e.g. sqlite:///billing.db")
        options = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(options) - {"synchronous"}
        if unknown:
            raise ValueError(f"unknown sqlite URL option(s): {', '.join(sorted(unknown))}")
        return SQLiteStorage(path, synchronous=options.get("synchronous", "FULL"), migrate=migrate)
    if scheme in ("postgres", "postgresql"):
        from qzpay.storage.postgres import PostgresStorage

        return PostgresStorage(storage, migrate=migrate)
    raise ValueError(f"unsupported storage URL scheme {scheme!r}")


__all__ = [
    "CustomerFilter",
    "MemoryStorage",
    "SQLiteStorage",
    "Storage",
    "Transaction",
    "open_storage",
]
