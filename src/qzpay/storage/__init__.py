"""Storage backends and the URL scheme that picks one."""

from __future__ import annotations

from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

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
        from qzpay.storage.postgres.recent import RECENT_VERSIONS

        dsn, options = _split_qzpay_options(storage)
        unknown = set(options) - {
            "qzpay_pool_size",
            "qzpay_connect_timeout",
            "qzpay_recent_versions",
        }
        if unknown:
            raise ValueError(f"unknown postgresql URL option(s): {', '.join(sorted(unknown))}")
        try:
            pool_size = int(options.get("qzpay_pool_size", "10"))
            timeout = float(options.get("qzpay_connect_timeout", "10"))
            recent = int(options.get("qzpay_recent_versions", str(RECENT_VERSIONS)))
        except ValueError as exc:
            raise ValueError(f"bad postgresql URL option: {exc}") from exc
        if recent < 0:
            raise ValueError("bad postgresql URL option: qzpay_recent_versions must be 0 or more")
        return PostgresStorage(
            dsn,
            migrate=migrate,
            min_size=min(1, pool_size),
            max_size=pool_size,
            connect_timeout=timeout,
            recent_versions=recent,
        )
    raise ValueError(f"unsupported storage URL scheme {scheme!r}")


def _split_qzpay_options(url: str) -> tuple[str, dict[str, str]]:
    """Take qzpay's own ``qzpay_*`` query options out of a DSN (the driver gets the rest)."""
    parts = urlsplit(url)
    kept, ours = [], {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower().startswith("qzpay_"):
            ours[key.lower()] = value
        else:
            kept.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), ours


__all__ = [
    "CustomerFilter",
    "MemoryStorage",
    "SQLiteStorage",
    "Storage",
    "Transaction",
    "open_storage",
]
