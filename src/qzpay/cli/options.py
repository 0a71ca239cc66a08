"""What the commands share: options, and turning them into a storage URL, metadata and an
open ``SyncBilling`` with the environment's payment providers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer

from qzpay.billing import SyncBilling
from qzpay.cli.handling import EXIT_USAGE, fail
from qzpay.config import ConfigError, ProviderConfig, providers_from_env
from qzpay.providers.base import PaymentProvider

DATABASE_URL_ENV = "QZPAY_DATABASE_URL"

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

Line1 = Annotated[str | None, typer.Option(help="Address line 1.", rich_help_panel="Address")]
Line2 = Annotated[str | None, typer.Option(help="Address line 2.", rich_help_panel="Address")]
City = Annotated[str | None, typer.Option(help="City.", rich_help_panel="Address")]
State = Annotated[str | None, typer.Option(help="State or region.", rich_help_panel="Address")]
PostalCode = Annotated[str | None, typer.Option(help="Postal code.", rich_help_panel="Address")]
Country = Annotated[
    str | None, typer.Option(help="ISO 3166-1 alpha-2 code, e.g. US.", rich_help_panel="Address")
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


def parse_pairs(pairs: Sequence[str] | None, option: str = "--metadata") -> dict[str, str]:
    """``KEY=VALUE`` options as a dict; a pair without ``=``, or a key twice, is a usage error."""
    result: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        if key in result:
            raise typer.BadParameter(f"key {key!r} given twice", param_hint=option)
        result[key] = value
    return result


def address_from(**fields: str | None) -> dict[str, str | None] | None:
    """The address options given, as an address (None when none was given)."""
    given: dict[str, str | None] = {k: v for k, v in fields.items() if v is not None}
    return given or None


def provider_config(*, as_json: bool) -> ProviderConfig:
    """The providers the environment enables; a variable set wrong is a usage error (2)."""
    try:
        return providers_from_env()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE, as_json=as_json, details={"code": "configuration_error"})


def close_providers(providers: Sequence[PaymentProvider]) -> None:
    """Close providers that no Billing took over (one that did closes them itself)."""

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
        close_providers(providers)
        raise typer.BadParameter(str(exc), param_hint="'--database-url'") from None
    with billing:
        yield billing
