"""The ``qzpay`` command line (an edge: it calls the public API only).

Exit codes: 0 ok; 1 operational error (not found, conflict, storage or provider failure: a
message on stderr, a traceback only with ``--debug``); 2 usage error (bad options, input the
library rejects as invalid, or provider environment variables set wrong or missing); 3 only
from ``customers reconcile --check``: differences remain. ``--json`` prints machine-readable
output on stdout (and, on failure, a JSON error object on stderr).

Payment providers come from the environment (``qzpay.config``: ``STRIPE_API_KEY``, ...); the
commands that write (create, update, delete, sync-pending, reconcile, serve) use them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal, NoReturn
from urllib.parse import urlsplit, urlunsplit

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from qzpay.billing import DEFAULT_STORAGE, Billing, SyncBilling
from qzpay.config import (
    MAX_BODY_BYTES_ENV,
    PROVIDER_ENV,
    ConfigError,
    ProviderConfig,
    providers_from_env,
)
from qzpay.customers.models import Customer
from qzpay.customers.reconcile import ReconcileReport
from qzpay.customers.service import SyncReport
from qzpay.errors import ProviderSyncError, QZPayError, ValidationError
from qzpay.events import Event
from qzpay.providers.base import PaymentProvider

DATABASE_URL_ENV = "QZPAY_DATABASE_URL"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DIFFERENCES = 0, 1, 2, 3

app = typer.Typer(
    name="qzpay",
    help="qzpay: provider-agnostic billing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)
customers_app = typer.Typer(help="Create, read, update and delete customers.", no_args_is_help=True)
events_app = typer.Typer(help="Read the durable event log.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(customers_app, name="customers")
app.add_typer(events_app, name="events")
app.add_typer(db_app, name="db")

# -- shared options ------------------------------------------------------------------------

DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar=DATABASE_URL_ENV,
        show_envvar=True,
        help="Storage URL: sqlite:///path.db, postgresql://..., memory://",
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
Debug = Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")]
MetadataPairs = Annotated[
    list[str] | None,
    typer.Option("--metadata", "-m", help="KEY=VALUE; repeat for several.", show_default=False),
]


def redact(url: str) -> str:
    """A storage URL fit to print: any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0] + ":***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}"))


def _fail(message: str, code: int, *, as_json: bool, details: Mapping[str, Any]) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"error": {"message": message, **details}}), err=True)
    else:
        typer.echo(f"error: {message}", err=True)
        for error in details.get("errors", ()):
            typer.echo(f"  {error['field']}: {error['message']} ({error['code']})", err=True)
    raise typer.Exit(code)


@contextmanager
def handled(*, debug: bool, as_json: bool) -> Iterator[None]:
    """Turn errors into a message on stderr and an exit code (and a traceback with --debug).

    With ``--json`` (and no ``--debug``) the library's own log lines are kept off stderr, so
    that stderr holds nothing but the JSON error object."""
    library_logs = logging.getLogger("qzpay")
    silence = logging.NullHandler() if as_json and not debug else None
    if silence is not None:
        library_logs.addHandler(silence)
    try:
        yield
    except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt):
        raise
    except QZPayError as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        details: dict[str, Any] = {"code": exc.code}
        if isinstance(exc, ValidationError):
            details["errors"] = list(exc.errors)
        if isinstance(exc, ProviderSyncError):
            details.update(provider=exc.provider, operation=exc.operation, ambiguous=exc.ambiguous)
        if isinstance(exc, ValidationError):
            message = exc.message if as_json else "invalid input"
            _fail(message, EXIT_USAGE, as_json=as_json, details=details)
        _fail(exc.message, EXIT_ERROR, as_json=as_json, details=details)
    except Exception as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        message = f"{type(exc).__name__}: {exc}"
        if not debug:
            message += " (run with --debug for the traceback)"
        _fail(message, EXIT_ERROR, as_json=as_json, details={"code": "unexpected_error"})
    finally:
        if silence is not None:
            library_logs.removeHandler(silence)


def provider_config(*, as_json: bool) -> ProviderConfig:
    """The providers the environment enables; a variable set wrong is a usage error (2)."""
    try:
        return providers_from_env()
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE, as_json=as_json, details={"code": "configuration_error"})


def _close_providers(providers: Sequence[PaymentProvider]) -> None:
    async def close() -> None:
        for provider in providers:
            await provider.close()

    if providers:
        asyncio.run(close())


@contextmanager
def sync_billing(url: str, config: ProviderConfig | None = None) -> Iterator[SyncBilling]:
    """A SyncBilling on ``url``, with ``config``'s providers (none without it)."""
    providers = config.providers if config is not None else []
    try:
        billing = SyncBilling(
            url,
            provider=providers or None,
            provider_sync_errors=config.sync_errors if config is not None else "raise",
        )
    except (ValueError, TypeError) as exc:
        _close_providers(providers)
        raise typer.BadParameter(str(exc), param_hint="'--database-url'") from None
    with billing:
        yield billing


def parse_pairs(pairs: Sequence[str] | None, option: str = "--metadata") -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        if key in result:
            raise typer.BadParameter(f"key {key!r} given twice", param_hint=option)
        result[key] = value
    return result


# -- output ---------------------------------------------------------------------------------


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False))


def _cell(value: object) -> Text:
    """Plain text: user data is never interpreted as Rich markup."""
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, dict):
        return Text(", ".join(f"{k}={v}" for k, v in value.items()) or "-")
    return Text(str(value))


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def show_customer(customer: Customer, *, as_json: bool) -> None:
    if as_json:
        _print_json(customer.model_dump(mode="json"))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for field, value in customer.model_dump(mode="json").items():
        if field == "address" and value is not None:
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
        table.add_row(field, _cell(value))
    _console().print(table)


def show_customers(
    customers: list[Customer],
    *,
    total: int,
    limit: int,
    offset: int,
    has_more: bool,
    as_json: bool,
) -> None:
    if as_json:
        _print_json(
            {
                "data": [c.model_dump(mode="json") for c in customers],
                "total": total,
                "limit": limit,
                "offset": offset,
                "has_more": has_more,
            }
        )
        return
    table = Table(title=None, show_lines=False)
    table.add_column("id", no_wrap=True)  # ids stay whole, to copy and paste
    for column in ("email", "name", "metadata", "created_at", "deleted_at"):
        table.add_column(column, overflow="fold")
    for c in customers:
        table.add_row(
            _cell(c.id),
            _cell(c.email),
            _cell(c.name),
            _cell(c.metadata),
            _cell(_when(c.created_at)),
            _cell(_when(c.deleted_at)),
        )
    console = _console()
    console.print(table)
    shown = f"{offset + 1}-{offset + len(customers)}" if customers else "none"
    more = f"; next page: --offset {offset + len(customers)}" if has_more else ""
    console.print(Text(f"{shown} of {total}{more}", style="dim"))


def show_events(events: list[Event], *, as_json: bool) -> None:
    if as_json:
        _print_json(
            {
                "data": [e.model_dump(mode="json") for e in events],
                "next_after": events[-1].id if events else None,
            }
        )
        return
    table = Table()
    for column in ("id", "type", "customer"):
        table.add_column(column, no_wrap=True)
    for column in ("created_at", "changed"):
        table.add_column(column, overflow="fold")
    for e in events:
        table.add_row(
            _cell(e.id),
            _cell(e.type),
            _cell(e.data.id),
            _cell(_when(e.created_at)),
            _cell(", ".join(sorted(e.previous)) if e.previous else None),
        )
    _console().print(table)


# -- commands -------------------------------------------------------------------------------


@app.callback()
def _root() -> None:
    """qzpay: provider-agnostic billing."""


@app.command()
def demo() -> None:
    """Walk through the Customers API on a throwaway SQLite database."""
    from qzpay.demo import main as run

    run()


@app.command()
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
    from qzpay.api.server import DEFAULT_MAX_BODY_BYTES, is_loopback
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
                _fail(
                    f"{API_KEY_ENV} is not set: set it to the API key clients must send, or "
                    "pass --no-auth to serve on a loopback address without authentication",
                    EXIT_ERROR,
                    as_json=False,
                    details={},
                )
            except ValueError as exc:
                _fail(f"{API_KEY_ENV}: {exc}", EXIT_ERROR, as_json=False, details={})
        config = provider_config(as_json=False)
        for warning in config.warnings:
            typer.echo(f"warning: {warning}", err=True)
        try:
            billing = Billing(
                database_url,
                provider=config.providers or None,
                provider_sync_errors=config.sync_errors,
            )
        except (ValueError, TypeError) as exc:
            _close_providers(config.providers)
            raise typer.BadParameter(str(exc), param_hint="'--database-url'") from None
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
                _fail(
                    "the server stopped; see its log above", EXIT_ERROR, as_json=False, details={}
                )
            raise


async def _preflight(database_url: str) -> None:
    async with Billing(database_url):
        pass


@db_app.command("upgrade")
def db_upgrade(
    database_url: DatabaseUrl = DEFAULT_STORAGE, as_json: JsonOutput = False, debug: Debug = False
) -> None:
    """Create or upgrade the schema (for deployments that run with migrate=False)."""

    async def upgrade(billing: Billing) -> int:
        try:
            return await billing.storage.upgrade()
        finally:
            await billing.close()

    with handled(debug=debug, as_json=as_json):
        try:
            billing = Billing(database_url, migrate=False)
        except (ValueError, TypeError) as exc:
            raise typer.BadParameter(str(exc), param_hint="'--database-url'") from None
        version = asyncio.run(upgrade(billing))
        if as_json:
            _print_json({"schema_version": version})
        else:
            typer.echo(f"{redact(database_url)}: schema at version {version}")


# -- customers ------------------------------------------------------------------------------

Line1 = Annotated[str | None, typer.Option(help="Address line 1.", rich_help_panel="Address")]
Line2 = Annotated[str | None, typer.Option(help="Address line 2.", rich_help_panel="Address")]
City = Annotated[str | None, typer.Option(help="City.", rich_help_panel="Address")]
State = Annotated[str | None, typer.Option(help="State or region.", rich_help_panel="Address")]
PostalCode = Annotated[str | None, typer.Option(help="Postal code.", rich_help_panel="Address")]
Country = Annotated[
    str | None, typer.Option(help="ISO 3166-1 alpha-2 code, e.g. US.", rich_help_panel="Address")
]


def _address(**fields: str | None) -> dict[str, str | None] | None:
    given: dict[str, str | None] = {k: v for k, v in fields.items() if v is not None}
    return given or None


@customers_app.command("create")
def customers_create(
    email: Annotated[str, typer.Option(help="Email address (required).")],
    name: Annotated[str | None, typer.Option(help="Full name.")] = None,
    phone: Annotated[
        str | None, typer.Option(help="International form, e.g. +14155552671.")
    ] = None,
    line1: Line1 = None,
    line2: Line2 = None,
    city: City = None,
    state: State = None,
    postal_code: PostalCode = None,
    country: Country = None,
    metadata: MetadataPairs = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Makes a retry return the first call's customer.")
    ] = None,
    database_url: DatabaseUrl = DEFAULT_STORAGE,
    as_json: JsonOutput = False,
    debug: Debug = False,
) -> None:
    """Create a customer."""
    pairs = parse_pairs(metadata)
    with (
        handled(debug=debug, as_json=as_json),
        sync_billing(database_url, provider_config(as_json=as_json)) as billing,
    ):
        customer = billing.customers.create(
            email=email,
            name=name,
            phone=phone,
            address=_address(
                line1=line1,
                line2=line2,
                city=city,
                state=state,
                postal_code=postal_code,
                country=country,
            ),
            metadata=pairs,
            idempotency_key=idempotency_key,
        )
        show_customer(customer, as_json=as_json)


@customers_app.command("get")
def customers_get(
    customer_id: Annotated[
        str | None, typer.Argument(help="The customer id (cus_...).", show_default=False)
    ] = None,
    provider_id: Annotated[
        str | None, typer.Option(help="Look up by a payment provider's customer id instead.")
    ] = None,
    provider: Annotated[
        str | None, typer.Option(help="With --provider-id: the provider (stripe, ...).")
    ] = None,
    database_url: DatabaseUrl = DEFAULT_STORAGE,
    as_json: JsonOutput = False,
    debug: Debug = False,
) -> None:
    """Show a customer, by id or by provider id (deleted ones too)."""
    if (customer_id is None) == (provider_id is None):
        raise typer.BadParameter("give either CUSTOMER_ID or --provider-id")
    with handled(debug=debug, as_json=as_json), sync_billing(database_url) as billing:
        if customer_id is not None:
            customer = billing.customers.get(customer_id)
            missing = f"no customer {customer_id!r}"
        else:
            assert provider_id is not None
            customer = billing.customers.get_by_external_id(provider_id, provider=provider)
            missing = f"no customer is linked to {provider_id!r}"
        if customer is None:
            _fail(missing, EXIT_ERROR, as_json=as_json, details={"code": "not_found"})
        show_customer(customer, as_json=as_json)


@customers_app.command("list")
def customers_list(
    limit: Annotated[int, typer.Option(min=1, max=100, help="Page size.")] = 10,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
    email: Annotated[str | None, typer.Option(help="Exact email, case-insensitive.")] = None,
    metadata: MetadataPairs = None,
    include_deleted: Annotated[bool, typer.Option(help="Include deleted customers.")] = False,
    all_: Annotated[
        bool, typer.Option("--all", help="Every match (paged by keyset), not one page.")
    ] = False,
    database_url: DatabaseUrl = DEFAULT_STORAGE,
    as_json: JsonOutput = False,
    debug: Debug = False,
) -> None:
    """List customers, newest first."""
    pairs = parse_pairs(metadata) or None
    with handled(debug=debug, as_json=as_json), sync_billing(database_url) as billing:
        if all_:
            found = list(
                billing.customers.iterate(
                    email=email, metadata=pairs, include_deleted=include_deleted
                )
            )
            show_customers(
                found,
                total=len(found),
                limit=len(found),
                offset=0,
                has_more=False,
                as_json=as_json,
            )
            return
        page = billing.customers.list(
            limit=limit,
            offset=offset,
            email=email,
            metadata=pairs,
            include_deleted=include_deleted,
        )
        show_customers(
            page.data,
            total=page.total,
            limit=page.limit,
            offset=page.offset,
            has_more=page.has_more,
            as_json=as_json,
        )


@customers_app.command("update")
def customers_update(
    customer_id: Annotated[str, typer.Argument(help="The customer id (cus_...).")],
    email: Annotated[str | None, typer.Option(help="New email.")] = None,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    clear_name: Annotated[bool, typer.Option(help="Remove the name.")] = False,
    phone: Annotated[str | None, typer.Option(help="New phone.")] = None,
    clear_phone: Annotated[bool, typer.Option(help="Remove the phone.")] = False,
    line1: Line1 = None,
    line2: Line2 = None,
    city: City = None,
    state: State = None,
    postal_code: PostalCode = None,
    country: Country = None,
    clear_address: Annotated[
        bool, typer.Option(help="Remove the address.", rich_help_panel="Address")
    ] = False,
    metadata: MetadataPairs = None,
    unset_metadata: Annotated[
        list[str] | None,
        typer.Option("--unset-metadata", help="KEY to remove; repeat for several."),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_STORAGE,
    as_json: JsonOutput = False,
    debug: Debug = False,
) -> None:
    """Change the given fields. Address options replace the whole address; --metadata merges
    into the stored metadata."""
    changes: dict[str, Any] = {}
    if email is not None:
        changes["email"] = email
    for field, value, clear in (("name", name, clear_name), ("phone", phone, clear_phone)):
        if value is not None and clear:
            raise typer.BadParameter(f"--{field} and --clear-{field} exclude each other")
        if value is not None or clear:
            changes[field] = value
    address = _address(
        line1=line1, line2=line2, city=city, state=state, postal_code=postal_code, country=country
    )
    if address is not None and clear_address:
        raise typer.BadParameter("address options and --clear-address exclude each other")
    if address is not None or clear_address:
        changes["address"] = address
    patch: dict[str, str | None] = dict(parse_pairs(metadata))
    for key in unset_metadata or ():
        if key in patch:
            raise typer.BadParameter(f"key {key!r} is both set and unset")
        patch[key] = None
    if patch:
        changes["metadata"] = patch
    with (
        handled(debug=debug, as_json=as_json),
        sync_billing(database_url, provider_config(as_json=as_json)) as billing,
    ):
        customer = billing.customers.update(customer_id, **changes)
        show_customer(customer, as_json=as_json)


@customers_app.command("delete")
def customers_delete(
    customer_id: Annotated[str, typer.Argument(help="The customer id (cus_...).")],
    database_url: DatabaseUrl = DEFAULT_STORAGE,
    as_json: JsonOutput = False,
    debug: Debug = False,
) -> None:
    """Delete a customer (soft: the record stays, with deleted_at). Deleting twice is a no-op."""
    with (
        handled(debug=debug, as_json=as_json),
        sync_billing(database_url, provider_config(as_json=as_json)) as billing,
    ):
        billing.customers.delete(customer_id)
        customer = billing.customers.get(customer_id)
        assert customer is not None
        show_customer(customer, as_json=as_json)


# -- provider sync ----------------------------------------------------------------------------

ProviderName = Annotated[
    str, typer.Argument(help="The provider to compare with: stripe.", show_default=False)
]


@contextmanager
def provider_billing(url: str, name: str | None, *, as_json: bool) -> Iterator[SyncBilling]:
    """A SyncBilling with the environment's providers, ``name`` (or, with None, any) among
    them; otherwise a usage error (2), with the providers already built closed."""
    config = provider_config(as_json=as_json)
    try:
        _require_provider(config, name, as_json=as_json)
    except typer.Exit:
        _close_providers(config.providers)
        raise
    with sync_billing(url, config) as billing:
        yield billing


def _require_provider(config: ProviderConfig, name: str | None, *, as_json: bool) -> None:
    """Usage error (2) unless ``name`` (or, with None, any provider) is configured."""
    if name is None and config.providers:
        return
    if name is not None and name in config.names:
        return
    configured = ", ".join(config.names) or "none"
    if name is not None and name not in PROVIDER_ENV:
        message = (
            f"unknown provider {name!r}: the environment can configure {', '.join(PROVIDER_ENV)}"
        )
    elif name is not None:
        message = (
            f"provider {name!r} is not configured (configured: {configured}): "
            f"set {PROVIDER_ENV[name]}"
        )
    else:
        variables = " or ".join(PROVIDER_ENV.values())
        message = f"no payment provider is configured: set {variables}"
    _fail(message, EXIT_USAGE, as_json=as_json, details={"code": "provider_not_configured"})


def _plain(value: Any) -> Any:
    """A value of a report, as JSON-ready data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def reconcile_json(report: ReconcileReport) -> dict[str, Any]:
    """The report as JSON: its fields, ``in_sync``, and each drifted field as
    ``{"local": ..., "provider": ...}``."""
    fields = dataclasses.asdict(report)
    fields["drift"] = [
        {
            "customer_id": drift.customer_id,
            "provider_customer_id": drift.provider_customer_id,
            "fields": {
                name: {"local": _plain(local), "provider": _plain(remote)}
                for name, (local, remote) in drift.fields.items()
            },
        }
        for drift in report.drift
    ]
    return {"provider": fields.pop("provider"), "in_sync": report.in_sync, **fields}


def _ids(values: Sequence[str], shown: int = 5) -> Text:
    if not values:
        return Text("-", style="dim")
    more = f" … (+{len(values) - shown} more)" if len(values) > shown else ""
    return Text(", ".join(values[:shown]) + more)


def _listed(value: object) -> list[str]:
    """A report field's entries as text (a dict's as ``key: value``)."""
    if isinstance(value, dict):
        return [
            f"{key}: {' + '.join(item) if isinstance(item, list) else item}"
            for key, item in value.items()
        ]
    if isinstance(value, list):
        return [str(item) for item in value]
    return []


def show_reconcile(report: ReconcileReport, *, fixed_now: bool) -> None:
    """The report as a table of checks; ids only (field values, perhaps personal data, are
    left to --json). Report fields this table does not know get a row of their own."""
    name = report.provider
    console = _console()
    console.print(
        Text(
            f"{name}: {report.local_customers} customers here, "
            f"{report.provider_customers} at {name}"
        )
    )
    table = Table()
    table.add_column("check")
    table.add_column("count", justify="right")
    table.add_column("customers", overflow="fold")
    labels = {
        "unlinked": f"not linked to {name}",
        "missing_at_provider": f"linked, missing at {name}",
        "missing_locally": f"at {name}, unknown here [{name} ids]",
        "duplicates": f"several copies at {name} [{name} ids]",
        "deleted_locally_live_at_provider": f"deleted here, live at {name}",
        "drift": "fields differ",
        "pending": "skipped: sync pending",
        "unmanaged": f"not from qzpay [{name} ids]",
    }
    values: dict[str, list[str]] = {
        "drift": [f"{d.customer_id} ({', '.join(d.fields)})" for d in report.drift]
    }
    for field in dataclasses.fields(report):
        if field.name not in values and field.name != "fixed":
            values[field.name] = _listed(getattr(report, field.name))
    for field_name, label in labels.items():
        table.add_row(Text(label), Text(str(len(values[field_name]))), _ids(values[field_name]))
    for field_name, entries in values.items():
        if field_name not in labels and isinstance(getattr(report, field_name), list | dict):
            label = field_name.replace("_", " ")
            table.add_row(Text(label), Text(str(len(entries))), _ids(entries))
    console.print(table)
    for line in report.fixed:
        console.print(Text(f"fixed: {line}"))
    if report.in_sync:
        console.print(Text("in sync", style="green"))
    elif fixed_now:
        console.print(
            Text(
                f"not in sync; {len(report.fixed)} fixed: run again without --fix to see "
                "what remains",
                style="yellow",
            )
        )
    else:
        console.print(Text("not in sync: --fix repairs what is safe", style="yellow"))


def _progress_console() -> Console:
    return Console(stderr=True, highlight=False)


@customers_app.command("reconcile")
def customers_reconcile(
    provider: ProviderName,
    fix: Annotated[
        bool, typer.Option("--fix", help="Repair what is safe (qzpay's values win).")
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit 3 when not in sync (for cron; not with --fix)."),
    ] = False,
    database_url: DatabaseUrl = DEFAULT_STORAGE,
    as_json: JsonOutput = False,
    debug: Debug = False,
) -> None:
    """Compare qzpay's customers with PROVIDER's and report every difference.

    --fix links customers to the provider copy that carries their qzpay id, creates missing
    copies, pushes qzpay's values over drifted ones and deletes copies of customers deleted
    here; it never deletes provider customers qzpay does not know. The report shows what was
    found before fixing: run again to confirm. Exit code 0 whether in sync or not, unless
    --check (then 3 when not in sync).
    """
    if fix and check:
        raise typer.BadParameter("--check reports without changing anything: not with --fix")
    with handled(debug=debug, as_json=as_json):
        with provider_billing(database_url, provider, as_json=as_json) as billing:
            report = _reconcile_with_progress(billing, provider, fix=fix)
        if as_json:
            _print_json(reconcile_json(report))
        else:
            show_reconcile(report, fixed_now=fix)
        if check and not report.in_sync:
            raise typer.Exit(EXIT_DIFFERENCES)


def _reconcile_with_progress(billing: SyncBilling, provider: str, *, fix: bool) -> ReconcileReport:
    """Reconcile, with a progress bar on stderr when it is a terminal."""
    console = _progress_console()
    total = billing.customers.list(limit=1, include_deleted=True).total
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(f"reading {provider}'s customers", total=None)

        def on_progress(done: int) -> None:  # runs on SyncBilling's thread; Progress locks
            progress.update(
                task,
                description="checking customers",
                completed=done,
                total=max(total, done),
            )

        return billing.customers.reconcile(provider, fix=fix, on_progress=on_progress)


def show_sync_report(report: SyncReport, *, as_json: bool) -> None:
    if as_json:
        _print_json(dataclasses.asdict(report))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for field, value in dataclasses.asdict(report).items():
        table.add_row(field, str(value))
    _console().print(table)


@customers_app.command("sync-pending")
def customers_sync_pending(
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="Work on at most this many tasks.")
    ] = 100,
    database_url: DatabaseUrl = DEFAULT_STORAGE,
    as_json: JsonOutput = False,
    debug: Debug = False,
) -> None:
    """Finish (or undo) provider work left pending by failures, crashes or "log" mode.

    Prints how many tasks were completed, failed again, and remain. Exit code 1 when any
    failed again (they stay pending for the next run); safe to run from cron, and from
    several hosts at once.
    """
    with handled(debug=debug, as_json=as_json):
        with provider_billing(database_url, None, as_json=as_json) as billing:
            report = billing.customers.sync_pending(limit=limit)
        show_sync_report(report, as_json=as_json)
        if report.failed:
            _fail(
                f"{report.failed} pending sync(s) failed again and stay pending",
                EXIT_ERROR,
                as_json=as_json,
                details={"code": "sync_failed"},
            )


# -- events ---------------------------------------------------------------------------------


@events_app.command("list")
def events_list(
    after: Annotated[str | None, typer.Option(help="Events after this event id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
    database_url: DatabaseUrl = DEFAULT_STORAGE,
    as_json: JsonOutput = False,
    debug: Debug = False,
) -> None:
    """List events in commit order (what another process would consume)."""
    with handled(debug=debug, as_json=as_json), sync_billing(database_url) as billing:
        show_events(billing.events.list(after=after, limit=limit), as_json=as_json)


def main() -> None:
    app()
