"""API keys: ``Authorization: Bearer <key>``, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, Iterable

from fastapi import Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from qzpay.api.problems import Unauthorized

API_KEY_ENV = "QZPAY_API_KEY"
MIN_KEY_LENGTH = 16


class MissingAPIKeyError(RuntimeError):
    """The standalone server was asked to require a key, and none is configured."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


class APIKeyAuth:
    """Accepts requests bearing one of ``keys``; several keys allow rotation without downtime.

    Keys are kept only as SHA-256 digests, and a presented key is compared against every one
    of them with ``hmac.compare_digest`` (no early exit), so the time taken reveals neither a
    key's content nor its length, nor which key matched.
    """

    def __init__(self, keys: str | Iterable[str]) -> None:
        listed = [keys] if isinstance(keys, str) else list(keys)
        if not listed:
            raise ValueError("APIKeyAuth needs at least one API key")
        for key in listed:
            if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"API keys must be strings of at least {MIN_KEY_LENGTH} characters"
                )
            if not key.isascii() or not key.isprintable() or " " in key or "," in key:
                raise ValueError("API keys must be printable ASCII without spaces or commas")
        self._digests = tuple(_digest(key) for key in listed)

    @classmethod
    def from_env(cls, name: str = API_KEY_ENV) -> APIKeyAuth:
        """Keys from an environment variable (comma-separated for rotation)."""
        raw = os.environ.get(name, "")
        keys = [part.strip() for part in raw.split(",") if part.strip()]
        if not keys:
            raise MissingAPIKeyError(f"{name} is not set")
        return cls(keys)

    def __repr__(self) -> str:  # never show the digests
        return f"APIKeyAuth(<{len(self._digests)} key(s)>)"

    def accepts(self, presented: str | None) -> bool:
        if presented is None:
            return False
        candidate = _digest(presented)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="APIKey",
    description="An API key: `Authorization: Bearer <key>`.",
)


def require_api_key(
    auth: APIKeyAuth,
) -> Callable[[HTTPAuthorizationCredentials | None], Awaitable[None]]:
    """A FastAPI dependency enforcing ``auth`` (and documenting the scheme in OpenAPI)."""

    async def check(
        credentials: HTTPAuthorizationCredentials | None = Security(BEARER),  # noqa: B008
    ) -> None:
        if credentials is None:
            raise Unauthorized("This request needs an API key: 'Authorization: Bearer <key>'.")
        if not auth.accepts(credentials.credentials):
            raise Unauthorized("The API key is not valid.")

    return check
