"""``qzpay demo`` and ``qzpay serve``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import typer

from qzpay.billing import DEFAULT_STORAGE, Billing
from qzpay.cli.handling import EXIT_ERROR, fail, handled
from qzpay.cli.options import DatabaseUrl, Debug, checked_database_url, provider_config, redact
from qzpay.config import MAX_BODY_BYTES_ENV
from qzpay.limits import DEFAULT_MAX_BODY_BYTES


def demo() -> None:
    """Walk through the Customers API on a throwaway SQLite database."""
    from qzpay.demo import main as run

    run()


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    database_url: DatabaseUrl = DEFAULT_STORAGE,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", help="Serve without an API key (refused unless HOST is loopback)."
        ),
    ] = False,
    log_level: Annotated[
        Literal["critical", "error", "warning", "info", "debug"],
        typer.Option(help="uvicorn's log level."),
    ] = "info",
    access_log: Annotated[
        bool, typer.Option(help="Log every request (credentials in its URL are redacted).")
    ] = True,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar=MAX_BODY_BYTES_ENV,
            show_envvar=True,
            show_default=False,
            help="Largest request body accepted, in bytes; a larger one is a 413 (default: 1 MiB).",
        ),
    ] = None,
    debug: Debug = False,
) -> None:
    """Run the HTTP API with uvicorn.

    Clients authenticate with the key in QZPAY_API_KEY (comma-separate several to rotate);
    the key is never printed, and the access log redacts credentials (?api_key=, token,
    secret, password, Authorization). Payment providers come from STRIPE_API_KEY,
    STRIPE_WEBHOOK_SECRET, STRIPE_API_BASE and QZPAY_PROVIDER_SYNC_ERRORS; webhooks arrive
    at POST /webhooks/<provider>.
    """
    from qzpay.api.auth import API_KEY_ENV, APIKeyAuth, MissingAPIKeyError
    from qzpay.api.server import is_loopback
    from qzpay.api.server import serve as run_server

    if no_auth and not is_loopback(host):
        raise typer.BadParameter(
            f"--no-auth is only allowed on a loopback address, not {host!r}",
            param_hint="'--host'",
        )
    with handled(debug=debug, as_json=False):
        auth: APIKeyAuth | None = None
        if not no_auth:
            try:
                auth = APIKeyAuth.from_env()
            except MissingAPIKeyError:
                fail(
                    f"{API_KEY_ENV} is not set: set it to the API key clients must send, or "
                    "pass --no-auth to serve on a loopback address without authentication",
                    EXIT_ERROR,
                    as_json=False,
                    details={},
                )
            except ValueError as exc:
                fail(f"{API_KEY_ENV}: {exc}", EXIT_ERROR, as_json=False, details={})
        config = provider_config(as_json=False)
        for warning in config.warnings:
            typer.echo(f"warning: {warning}", err=True)
        with checked_database_url(config.providers):
            billing = Billing(
                database_url,
                provider=config.providers or None,
                provider_sync_errors=config.sync_errors,
            )
        # Connect (and migrate) once up front, so an unreachable or outdated database is a
        # one-line error here rather than a traceback from the server's startup.
        asyncio.run(_preflight(database_url))
        shown_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        typer.echo(
            f"qzpay API on http://{shown_host}:{port} (database {redact(database_url)}; "
            f"providers: {', '.join(config.names) or 'none'}; "
            f"{'API key required' if auth else 'NO AUTHENTICATION'})",
            err=True,
        )
        try:
            run_server(
                billing,
                host=host,
                port=port,
                auth=auth,
                log_level=log_level,
                access_log=access_log,
                max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
            )
        except SystemExit as exc:  # uvicorn exits on a busy port or a failed startup
            if exc.code not in (None, 0):
                fail("the server stopped; see its log above", EXIT_ERROR, as_json=False, details={})
            raise


async def _preflight(database_url: str) -> None:
    async with Billing(database_url):
        pass
