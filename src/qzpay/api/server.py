"""``create_app``: the standalone qzpay API server (also what ``qzpay serve`` runs)."""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import qzpay
from qzpay.api.auth import API_KEY_ENV, APIKeyAuth
from qzpay.api.problems import problem_for_exception
from qzpay.api.router import create_router
from qzpay.billing import DEFAULT_STORAGE, Billing
from qzpay.config import providers_from_env

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
    app.include_router(create_router(billing, auth=resolved))

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
    ``qzpay.config`` (none when unset); a ``ConfigError`` names a variable set wrong."""
    auth = APIKeyAuth.from_env()
    url = os.environ.get(DATABASE_URL_ENV) or DEFAULT_STORAGE
    config = providers_from_env()
    for warning in config.warnings:
        logger.warning("%s", warning)
    billing = Billing(
        url, provider=config.providers or None, provider_sync_errors=config.sync_errors
    )
    return create_app(billing, auth=auth)


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
) -> None:
    """Run the standalone server with uvicorn until interrupted. Refuses (ValueError) to run
    without authentication on anything but a loopback address."""
    import uvicorn

    if auth is None and not is_loopback(host):
        raise ValueError(
            f"refusing to serve without authentication on {host}: "
            "only a loopback address (127.0.0.1, ::1, localhost) may run without an API key"
        )
    app = create_app(billing, auth=auth)
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
    "FROM_ENV",
    "app_from_env",
    "create_app",
    "is_loopback",
    "serve",
]
