"""``create_app``: the standalone qzpay API server (also what ``qzpay serve`` runs)."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, Literal
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import qzpay
from qzpay.api.auth import API_KEY_ENV, APIKeyAuth
from qzpay.api.problems import problem_for_exception
from qzpay.api.router import create_router
from qzpay.billing import DEFAULT_STORAGE, Billing
from qzpay.config import max_body_bytes_from_env, providers_from_env
from qzpay.limits import DEFAULT_MAX_BODY_BYTES

DATABASE_URL_ENV = "QZPAY_DATABASE_URL"
logger = logging.getLogger("qzpay.api")


class _FromEnv:
    def __repr__(self) -> str:
        return "FROM_ENV"


FROM_ENV: Final = _FromEnv()

DESCRIPTION = """\
Customers kept in one consistent store, in step with payment providers.

Every route but `/health` and `POST /webhooks/{provider}` (which checks the provider's
signature instead) needs `Authorization: Bearer <API key>`. Errors are RFC 9457
`application/problem+json` bodies whose `code` is qzpay's stable error code.
"""


def create_app(
    billing: Billing,
    *,
    auth: APIKeyAuth | _FromEnv | None = FROM_ENV,
    manage_billing: bool = True,
    title: str = "qzpay",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """A FastAPI app serving the qzpay API for ``billing``.

    ``auth`` defaults to the keys in ``QZPAY_API_KEY`` (comma-separated for rotation) and
    raises ``MissingAPIKeyError`` when it is unset; pass an ``APIKeyAuth``, or ``None`` to
    serve without authentication (only ever on a loopback address: ``qzpay serve --no-auth``
    enforces that).

    With ``manage_billing`` (the default) the app owns ``billing``: its lifespan opens it at
    startup (connecting, and migrating if ``billing`` was made with ``migrate=True``) and
    closes it at shutdown. Pass ``manage_billing=False`` to keep that to yourself.

    Payment providers are ``billing``'s (``Billing(provider=...)``); ``app_from_env`` builds
    them from the environment (``qzpay.config.providers_from_env``).

    A request body over ``max_body_bytes`` (1 MiB by default) is a 413 problem (see
    ``create_router``).
    """
    resolved = APIKeyAuth.from_env() if isinstance(auth, _FromEnv) else auth

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not manage_billing:
            yield
            return
        await billing.open()
        try:
            yield
        finally:
            await billing.close()

    app = FastAPI(
        title=title,
        version=qzpay.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.include_router(create_router(billing, auth=resolved, max_body_bytes=max_body_bytes))
    # The admin console (HTML pages, its own sign-in with the same API keys) at /admin.
    from qzpay.admin import create_admin_router

    app.include_router(create_admin_router(billing, auth=resolved), prefix="/admin")

    # Errors outside the router's routes (unknown path, wrong method, middleware failures)
    # are problem+json too.
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return problem_for_exception(exc, request)

    app.add_exception_handler(StarletteHTTPException, on_error)
    app.add_exception_handler(RequestValidationError, on_error)
    app.add_exception_handler(Exception, on_error)
    return app


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory qzpay.api.server:app_from_env``: the database from
    ``QZPAY_DATABASE_URL`` (default ``sqlite:///qzpay.db``), keys from ``QZPAY_API_KEY``
    (required), payment providers from ``STRIPE_API_KEY`` and the rest of
    ``qzpay.config`` (none when unset), the body limit from ``QZPAY_MAX_BODY_BYTES`` (default
    1 MiB); a ``ConfigError`` names a variable set wrong. It installs ``RedactCredentials`` on
    uvicorn's loggers, as ``qzpay serve`` does."""
    auth = APIKeyAuth.from_env()
    url = os.environ.get(DATABASE_URL_ENV) or DEFAULT_STORAGE
    max_body_bytes = max_body_bytes_from_env() or DEFAULT_MAX_BODY_BYTES
    config = providers_from_env()
    for warning in config.warnings:
        logger.warning("%s", warning)
    billing = Billing(
        url, provider=config.providers or None, provider_sync_errors=config.sync_errors
    )
    redact_credentials_in_logs()
    return create_app(billing, auth=auth, max_body_bytes=max_body_bytes)


# -- credentials never reach a log line ------------------------------------------------------

REDACTED: Final = "[REDACTED]"
SENSITIVE_QUERY_PARAMETERS: Final = frozenset(
    {"api_key", "apikey", "key", "token", "access_token", "secret", "password", "authorization"}
)
"""Query parameters whose values ``RedactCredentials`` replaces. Names are compared after
percent-decoding, case-insensitively and with ``-`` read as ``_``; a name ending in ``_key``,
``_token``, ``_secret`` or ``_password`` (``x-api-key``, ``client_secret``) counts too, and so
does a bracketed one (``metadata[token]``)."""
_SENSITIVE_SUFFIXES: Final = ("_key", "_token", "_secret", "_password")
REDACTED_LOGGERS: Final = ("uvicorn.access", "uvicorn.error", "uvicorn.asgi", "qzpay.api")
"""The loggers ``redact_credentials_in_logs()`` installs the filter on by default."""

# ``?name=value`` / ``&name=value``: the value runs to the next ``&``, ``#`` or whitespace.
_QUERY_PAIR = re.compile(r"(?P<head>[?&](?P<name>[^=&#?\s]+)=)(?P<value>[^&#\s]*)")
# ``Authorization: <value>``, ``'authorization': '<value>'``, ``(b'authorization', b'<value>')``
_AUTHORIZATION = re.compile(
    r"""(?P<head>\bauthorization\b(?:['"]?\s*[:=]|['"]\s*,)\s*(?:b?['"])?)[^'"\r\n]+""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"""(?P<head>\bbearer\s+)[^\s'",;]+""", re.IGNORECASE)


def _sensitive_name(raw: str) -> bool:
    name = raw
    for _ in range(3):  # percent-encoded names, even twice over (``Api%255Fkey``)
        decoded = unquote(name)
        if decoded == name:
            break
        name = decoded
    name = name.replace("+", " ").strip().casefold().replace("-", "_")
    candidates = [name, *re.findall(r"\[([^\]]*)\]", name)]
    return any(
        candidate in SENSITIVE_QUERY_PARAMETERS or candidate.endswith(_SENSITIVE_SUFFIXES)
        for candidate in candidates
    )


def _redact_pair(match: re.Match[str]) -> str:
    if _sensitive_name(match["name"]):
        return match["head"] + REDACTED
    value = match["value"]  # it may hold a URL with a query of its own (``?next=/x?token=``)
    return match["head"] + (_QUERY_PAIR.sub(_redact_pair, value) if "=" in value else value)


def redact_credentials(text: str) -> str:
    """``text`` with credential query parameter values (see ``SENSITIVE_QUERY_PARAMETERS``),
    ``Authorization`` values and bearer tokens replaced by ``[REDACTED]``."""
    folded = text.casefold()
    if "=" not in text and "authorization" not in folded and "bearer" not in folded:
        return text
    text = _QUERY_PAIR.sub(_redact_pair, text)
    text = _AUTHORIZATION.sub(lambda m: m["head"] + REDACTED, text)
    return _BEARER.sub(lambda m: m["head"] + REDACTED, text)


def _is_authorization(name: object) -> bool:
    if isinstance(name, bytes | bytearray):
        name = bytes(name).decode("latin-1")
    return isinstance(name, str) and name.strip().casefold() == "authorization"


def _redacted_like(value: object) -> object:
    return REDACTED.encode() if isinstance(value, bytes | bytearray) else REDACTED


def _scrub(value: object, depth: int = 0) -> object:
    """A log argument with its credentials redacted: strings and bytes by text, headers (in
    pairs, dicts or any mapping) by name. Anything else is left as it is."""
    if isinstance(value, str):
        return redact_credentials(value)
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("latin-1")
        redacted = redact_credentials(text)
        return value if redacted == text else redacted.encode("latin-1")
    if depth > 4:
        return value
    if isinstance(value, tuple | list) and type(value) in (tuple, list):  # not namedtuples
        items: list[Any] = list(value)
        if len(items) == 2 and _is_authorization(items[0]):
            items[1] = _redacted_like(items[1])
        else:
            items = [_scrub(item, depth + 1) for item in items]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, Mapping):
        scrubbed = {
            key: _redacted_like(item) if _is_authorization(key) else _scrub(item, depth + 1)
            for key, item in value.items()
        }
        if all(scrubbed[key] is item for key, item in value.items()):
            return value  # unchanged: keep its type (and its repr)
        return scrubbed
    return value


class RedactCredentials(logging.Filter):
    """A logging filter that lets every record through with its credentials redacted: the
    values of credential query parameters (``?api_key=``, ``token``, ``secret``, ``password``,
    ..., however their names are cased or percent-encoded) and of any ``Authorization``
    header become ``[REDACTED]``, in the message, its arguments and a traceback.

    It keeps uvicorn's access log format working (it edits the request line's path argument
    in place). ``redact_credentials_in_logs()`` installs it where qzpay's server needs it;
    install it on your own loggers or handlers likewise
    (``logging.getLogger("uvicorn.access").addFilter(RedactCredentials())``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = _scrub(record.args)  # type: ignore[assignment]
        if isinstance(record.msg, str) and redact_credentials(record.msg) != record.msg:
            try:
                message = record.getMessage()
            except Exception:  # a format that does not fit its arguments: show it bare
                message = record.msg
            record.msg, record.args = redact_credentials(message), ()
        color = record.__dict__.get("color_message")  # uvicorn's coloured variant of msg
        if isinstance(color, str) and redact_credentials(color) != color:
            del record.__dict__["color_message"]
        if record.exc_info and not record.exc_text:
            trace = logging.Formatter().formatException(record.exc_info)
            if redact_credentials(trace) != trace:
                record.exc_text = redact_credentials(trace)
        if record.stack_info:
            record.stack_info = redact_credentials(record.stack_info)
        return True


def redact_credentials_in_logs(*logger_names: str) -> None:
    """Install ``RedactCredentials`` on these loggers (once each): by default on uvicorn's
    access and error loggers and on ``qzpay.api`` (``REDACTED_LOGGERS``). ``qzpay serve``,
    ``serve()`` and ``app_from_env`` call it; call it yourself when you run the router or
    ``create_app`` under your own server. A logger's filters see only the records logged on
    it: for children, or records from other libraries, add the filter to a handler instead."""
    for name in logger_names or REDACTED_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in target.filters):
            target.addFilter(RedactCredentials())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


LogLevel = Literal["critical", "error", "warning", "info", "debug"]


def serve(
    billing: Billing,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    auth: APIKeyAuth | _FromEnv | None = FROM_ENV,
    log_level: LogLevel = "info",
    access_log: bool = True,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Run the standalone server with uvicorn until interrupted. Refuses (ValueError) to run
    without authentication on anything but a loopback address.

    Its logs never hold credentials: ``RedactCredentials`` is installed on uvicorn's loggers
    (and ``qzpay.api``), so the access log shows ``?api_key=[REDACTED]``."""
    import uvicorn

    if auth is None and not is_loopback(host):
        raise ValueError(
            f"refusing to serve without authentication on {host}: "
            "only a loopback address (127.0.0.1, ::1, localhost) may run without an API key"
        )
    app = create_app(billing, auth=auth, max_body_bytes=max_body_bytes)
    # uvicorn's logging setup (dictConfig) replaces handlers, never a logger's filters.
    redact_credentials_in_logs()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        server_header=False,
    )


__all__ = [
    "API_KEY_ENV",
    "DATABASE_URL_ENV",
    "DEFAULT_MAX_BODY_BYTES",
    "FROM_ENV",
    "REDACTED",
    "REDACTED_LOGGERS",
    "SENSITIVE_QUERY_PARAMETERS",
    "RedactCredentials",
    "app_from_env",
    "create_app",
    "is_loopback",
    "redact_credentials",
    "redact_credentials_in_logs",
    "serve",
]
