"""What the commands share: options, option groups (``Common``, ``AddressOptions``,
``Paging``, ``CreateOptions``, ``MetadataPatch``) and the ``command`` decorator that spreads
them, and turning options into a storage URL, metadata and an open ``SyncBilling`` with the
environment's payment providers."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any, TypedDict, get_type_hints
from urllib.parse import urlsplit, urlunsplit

import typer

from qzpay.billing import DEFAULT_STORAGE, SyncBilling
from qzpay.cli.handling import EXIT_USAGE, fail, handled
from qzpay.config import ConfigError, ProviderConfig, providers_from_env
from qzpay.limits import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT
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
UnsetMetadata = Annotated[
    list[str] | None,
    typer.Option("--unset-metadata", help="KEY to remove; repeat for several."),
]
IdempotencyKey = Annotated[
    str | None, typer.Option(help="Makes a retry return the first call's record.")
]
PageLimit = Annotated[int, typer.Option(min=1, max=MAX_LIST_LIMIT, help="Page size.")]
Offset = Annotated[int, typer.Option(min=0, help="Skip this many.")]

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
def checked_database_url(providers: Sequence[PaymentProvider] = ()) -> Iterator[None]:
    """Around opening a Billing: a storage URL it refuses (ValueError, TypeError) is a usage
    error on ``--database-url``, with ``providers`` (not yet handed over) closed first."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        close_providers(providers)
        raise typer.BadParameter(str(exc), param_hint="'--database-url'") from None


@contextmanager
def sync_billing(url: str, config: ProviderConfig | None = None) -> Iterator[SyncBilling]:
    """A SyncBilling on ``url``, with ``config``'s providers (none without it)."""
    providers = config.providers if config is not None else []
    with checked_database_url(providers):
        billing = SyncBilling(
            url,
            provider=providers or None,
            provider_sync_errors=config.sync_errors if config is not None else "raise",
        )
    with billing:
        yield billing


# -- option groups ---------------------------------------------------------------------------
# A command declares a group as one parameter (``common: Common``); ``option_groups`` puts the
# group's options in its place on the command line and hands the body the group, built.


@dataclasses.dataclass(frozen=True)
class Common:
    """The options every command that reads or writes the database ends with."""

    database_url: DatabaseUrl = DEFAULT_STORAGE
    as_json: JsonOutput = False
    debug: Debug = False

    def billing(self, *, providers: bool = False) -> AbstractContextManager[SyncBilling]:
        """``sync_billing`` on ``--database-url``; with ``providers``, the environment's."""
        config = provider_config(as_json=self.as_json) if providers else None
        return sync_billing(self.database_url, config)


@dataclasses.dataclass(frozen=True)
class AddressOptions:
    """The address options (the "Address" panel of ``--help``)."""

    line1: Line1 = None
    line2: Line2 = None
    city: City = None
    state: State = None
    postal_code: PostalCode = None
    country: Country = None

    def given(self) -> dict[str, str | None] | None:
        """The options given, as an address (None when none was given)."""
        fields = dataclasses.asdict(self).items()
        given: dict[str, str | None] = {k: v for k, v in fields if v is not None}
        return given or None


@dataclasses.dataclass(frozen=True)
class Paging:
    """``--limit`` and ``--offset`` of the commands that list one page."""

    limit: PageLimit = DEFAULT_LIST_LIMIT
    offset: Offset = 0


class CreateArguments(TypedDict):
    """What ``CreateOptions`` adds to a ``create`` call."""

    metadata: dict[str, str]
    idempotency_key: str | None


@dataclasses.dataclass(frozen=True)
class CreateOptions:
    """The options every ``create`` command ends with."""

    metadata: MetadataPairs = None
    idempotency_key: IdempotencyKey = None

    def given(self) -> CreateArguments:
        """The create call's ``metadata`` and ``idempotency_key`` (a bad pair: usage error)."""
        return {"metadata": parse_pairs(self.metadata), "idempotency_key": self.idempotency_key}


@dataclasses.dataclass(frozen=True)
class MetadataPatch:
    """The metadata options of the ``update`` commands: pairs to set, keys to remove."""

    metadata: MetadataPairs = None
    unset_metadata: UnsetMetadata = None

    def add_to(self, changes: dict[str, Any]) -> None:
        """Add the patch (a key set to None is removed) to an update's ``changes``, if there is
        one; a key both set and unset is a usage error."""
        patch: dict[str, str | None] = dict(parse_pairs(self.metadata))
        for key in self.unset_metadata or ():
            if key in patch:
                raise typer.BadParameter(f"key {key!r} is both set and unset")
            patch[key] = None
        if patch:
            changes["metadata"] = patch


def option_groups(body: Callable[..., None]) -> Callable[..., None]:
    """``body`` as typer is to see it: a parameter typed with an option group (a dataclass of
    options, such as ``Common``) stands for the group's options, in its place, and ``body`` is
    given the group built from them."""
    signature = inspect.signature(body, eval_str=True)
    parameters: list[inspect.Parameter] = []
    groups: dict[str, type[Any]] = {}
    for parameter in signature.parameters.values():
        group = parameter.annotation
        if not (isinstance(group, type) and dataclasses.is_dataclass(group)):
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        groups[parameter.name] = group
        hints = get_type_hints(group, include_extras=True)
        parameters += [
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field.default,
                annotation=hints[field.name],
            )
            for field in dataclasses.fields(group)
        ]
    names = [parameter.name for parameter in parameters]
    if len(set(names)) != len(names):
        raise TypeError(f"{body.__name__}: an option is named twice")

    @functools.wraps(body)
    def run(**options: Any) -> None:
        for name, group in groups.items():
            fields = dataclasses.fields(group)
            options[name] = group(**{field.name: options.pop(field.name) for field in fields})
        body(**options)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return run


def command(body: Callable[..., None]) -> Callable[..., None]:
    """A command on the database: ``option_groups(body)``, run inside ``handled`` with the
    ``--debug`` and ``--json`` of its ``Common`` parameter."""
    parameters = inspect.signature(body, eval_str=True).parameters.values()
    common = [parameter.name for parameter in parameters if parameter.annotation is Common]
    if len(common) != 1:
        raise TypeError(f"{body.__name__}: a command takes one Common parameter")

    @functools.wraps(body)
    def run(**options: Any) -> None:
        shared: Common = options[common[0]]
        with handled(debug=shared.debug, as_json=shared.as_json):
            body(**options)

    return option_groups(run)
