"""Admin sessions: signed cookies, per-session CSRF tokens, sign-in rate limiting.

A session cookie is ``<payload>.<signature>``: the payload is base64url JSON holding a random
session id and an expiry (Unix seconds), the signature HMAC-SHA256 of the payload under the
server secret. Nothing else is stored server-side, except the ids of sessions signed out before
their expiry (kept until that expiry, so a copied cookie dies with the sign-out in this
process). The CSRF token of a session is HMAC-SHA256(secret, "csrf:" + session id): the forms
carry it in a hidden field and every change compares it in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from qzpay.api.auth import APIKeyAuth

COOKIE_NAME: Final = "qzpay_admin"
DEFAULT_SESSION_SECONDS: Final = 8 * 3600
DEFAULT_SIGN_IN_ATTEMPTS: Final = 5
DEFAULT_SIGN_IN_WINDOW: Final = 60.0
_MAX_COOKIE: Final = 512
_MAX_TRACKED_CLIENTS: Final = 10_000
_SECRET_LABEL: Final = b"qzpay.admin.session.v1"

Clock = Callable[[], float]


def secret_from(auth: APIKeyAuth | None, explicit: str | bytes | None) -> bytes:
    """The signing secret: ``explicit`` if given; else derived from the API keys' digests (so
    changing the keys signs everyone out); else (no keys at all) random for this process."""
    if explicit is not None:
        raw = explicit.encode() if isinstance(explicit, str) else bytes(explicit)
        if len(raw) < 16:
            raise ValueError("session_secret must be at least 16 bytes")
        return hmac.new(_SECRET_LABEL, raw, hashlib.sha256).digest()
    if auth is not None:
        digests = sorted(auth._digests)  # SHA-256 digests of the keys, never the keys
        return hmac.new(_SECRET_LABEL, b"".join(digests), hashlib.sha256).digest()
    return secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    expires: int
    csrf: str


class Sessions:
    """Issues and checks session cookies and CSRF tokens under one secret."""

    def __init__(
        self, secret: bytes, *, ttl: int = DEFAULT_SESSION_SECONDS, clock: Clock = time.time
    ) -> None:
        self._secret = secret
        self.ttl = ttl
        self._clock = clock
        self._revoked: dict[str, int] = {}

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest()
        return _b64(mac)

    def csrf_for(self, session_id: str) -> str:
        mac = hmac.new(self._secret, f"csrf:{session_id}".encode(), hashlib.sha256).digest()
        return _b64(mac)

    def issue(self, *, expires: int | None = None) -> tuple[str, Session]:
        """A new session and its cookie value."""
        session_id = secrets.token_urlsafe(18)
        until = int(self._clock()) + self.ttl if expires is None else expires
        body = json.dumps({"sid": session_id, "exp": until}, separators=(",", ":"))
        payload = _b64(body.encode("ascii"))
        cookie = f"{payload}.{self._sign(payload)}"
        return cookie, Session(session_id, until, self.csrf_for(session_id))

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, or None (absent, forged, expired or signed out)."""
        if not cookie or len(cookie) > _MAX_COOKIE or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(
            self._sign(payload).encode(), signature.encode("ascii", "replace")
        ):
            return None
        try:
            data = json.loads(_unb64(payload))
            session_id, expires = data["sid"], data["exp"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if not isinstance(session_id, str) or not isinstance(expires, int):
            return None
        if expires <= self._clock() or session_id in self._revoked:
            return None
        return Session(session_id, expires, self.csrf_for(session_id))

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        if presented is None:
            return False
        return hmac.compare_digest(session.csrf.encode(), presented.encode("utf-8", "replace"))

    def revoke(self, session: Session) -> None:
        now = self._clock()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
        self._revoked[session.id] = session.expires


class SignInLimiter:
    """At most ``attempts`` failed sign-ins per client address in any ``window`` seconds."""

    def __init__(
        self,
        attempts: int = DEFAULT_SIGN_IN_ATTEMPTS,
        window: float = DEFAULT_SIGN_IN_WINDOW,
        clock: Clock = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = self._clock()
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None if it may now."""
        failures = self._recent(client)
        if len(failures) < self.attempts:
            return None
        return max(1, int(failures[0] + self.window - self._clock()) + 1)

    def failed(self, client: str) -> None:
        if len(self._failures) >= _MAX_TRACKED_CLIENTS:  # forget the quiet ones first
            for name in [c for c in self._failures if not self._recent(c)]:
                del self._failures[name]
            while len(self._failures) >= _MAX_TRACKED_CLIENTS:
                del self._failures[next(iter(self._failures))]
        failures = self._recent(client)
        failures.append(self._clock())
        self._failures[client] = failures
