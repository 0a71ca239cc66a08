"""``qzpay plans create|get|list|update|archive``, ``qzpay prices create|get|list|update|archive``,
``qzpay catalog diff|apply FILE`` and ``qzpay catalog reconcile --provider NAME``.

With providers configured in the environment, writes reach them (qzpay.catalog.remote);
``catalog reconcile`` needs the named provider configured (a usage error, exit 2, without)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from qzpay.billing import SyncBilling
from qzpay.catalog.models import Interval
from qzpay.catalog.reconcile import CatalogReconcileReport
from qzpay.cli.handling import EXIT_DIFFERENCES, EXIT_ERROR, fail
from qzpay.cli.options import Common, MetadataPairs, command, parse_pairs
from qzpay.cli.provider_sync import Check, Fix, provider_billing
from qzpay.cli.rendering import (
    print_json,
    show_catalog_diff,
    show_checks,
    show_plan,
    show_plans,
    show_price,
    show_prices,
)
from qzpay.limits import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT

PlanId = Annotated[str, typer.Argument(help="The plan id (plan_...).")]
PriceId = Annotated[str, typer.Argument(help="The price id (price_...).")]
Entitlements = Annotated[
    list[str] | None,
    typer.Option(
        "--entitlement", "-e", help="A feature key; repeat for several.", show_default=False
    ),
]
PlanLimits = Annotated[
    list[str] | None,
    typer.Option(
        "--plan-limit", help="NAME=N (an integer ≥ 0); repeat for several.", show_default=False
    ),
]
UnsetMetadata = Annotated[
    list[str] | None,
    typer.Option("--unset-metadata", help="KEY to remove; repeat for several."),
]
Active = Annotated[
    bool | None,
    typer.Option(
        "--active/--archived",
        help="Only live, or only archived ones (default: all).",
        show_default=False,
    ),
]
PageLimit = Annotated[int, typer.Option(min=1, max=MAX_LIST_LIMIT, help="Page size.")]
Offset = Annotated[int, typer.Option(min=0, help="Skip this many.")]
IdempotencyKey = Annotated[
    str | None, typer.Option(help="Makes a retry return the first call's record.")
]
SpecFile = Annotated[
    Path,
    typer.Argument(
        exists=True, dir_okay=False, readable=True, help="The catalog, a TOML file ([[plans]])."
    ),
]
ArchiveMissing = Annotated[
    bool, typer.Option(help="Archive the active plans and prices the file does not name.")
]


def _limits(pairs: list[str] | None) -> dict[str, int]:
    limits: dict[str, int] = {}
    for name, value in parse_pairs(pairs, "--plan-limit").items():
        try:
            limits[name] = int(value)
        except ValueError:
            raise typer.BadParameter(
                f"expected NAME=N with N an integer, got {name}={value}", param_hint="--plan-limit"
            ) from None
    return limits


def _changes(given: bool, clear: bool, option: str, clear_option: str | None = None) -> bool:
    """Whether an update changes a field: set by ``option`` or cleared by its ``--clear-…``
    twin (``clear_option``, by default ``option`` with ``clear-`` in front); both at once is a
    usage error."""
    if given and clear:
        clearing = clear_option or f"--clear-{option.removeprefix('--')}"
        raise typer.BadParameter(f"{option} and {clearing} exclude each other")
    return given or clear


def _merge_metadata(
    changes: dict[str, Any], metadata: list[str] | None, unset: list[str] | None
) -> None:
    """Add the ``--metadata``/``--unset-metadata`` patch to ``changes``, if there is one."""
    patch: dict[str, str | None] = dict(parse_pairs(metadata))
    for key in unset or ():
        if key in patch:
            raise typer.BadParameter(f"key {key!r} is both set and unset")
        patch[key] = None
    if patch:
        changes["metadata"] = patch


def _show(common: Common, show: Callable[..., None], read: Callable[[SyncBilling], object]) -> None:
    """Open the billing, run ``read`` (a read or a write) on it and ``show`` what it returns,
    as a table or with ``--json``."""
    with common.billing() as billing:
        show(read(billing), as_json=common.as_json)


def _not_found(message: str, common: Common) -> NoReturn:
    fail(message, EXIT_ERROR, as_json=common.as_json, details={"code": "not_found"})


# -- plans -------------------------------------------------------------------------------


@command
def plans_create(
    key: Annotated[str, typer.Argument(help="The plan's unique key, a slug such as pro.")],
    name: Annotated[str, typer.Argument(help="The plan's name.")],
    description: Annotated[str | None, typer.Option(help="A description.")] = None,
    entitlement: Entitlements = None,
    plan_limit: PlanLimits = None,
    metadata: MetadataPairs = None,
    idempotency_key: IdempotencyKey = None,
    *,
    common: Common,
) -> None:
    """Create a plan."""
    limits = _limits(plan_limit)
    pairs = parse_pairs(metadata)
    with common.billing() as billing:
        plan = billing.plans.create(
            key,
            name,
            description=description,
            entitlements=entitlement or [],
            limits=limits,
            metadata=pairs,
            idempotency_key=idempotency_key,
        )
        show_plan(plan, as_json=common.as_json)


@command
def plans_get(
    plan_id: Annotated[
        str | None, typer.Argument(help="The plan id (plan_...).", show_default=False)
    ] = None,
    key: Annotated[str | None, typer.Option(help="Look up by the plan's key instead.")] = None,
    *,
    common: Common,
) -> None:
    """Show a plan, by id or by key (archived ones too)."""
    if (plan_id is None) == (key is None):
        raise typer.BadParameter("give either PLAN_ID or --key")
    with common.billing() as billing:
        if plan_id is not None:
            plan, missing = billing.plans.get(plan_id), f"no plan {plan_id!r}"
        else:
            assert key is not None
            plan, missing = billing.plans.get_by_key(key), f"no plan with key {key!r}"
        if plan is None:
            _not_found(missing, common)
        show_plan(plan, as_json=common.as_json)


@command
def plans_list(
    active: Active = None,
    limit: PageLimit = DEFAULT_LIST_LIMIT,
    offset: Offset = 0,
    *,
    common: Common,
) -> None:
    """List plans, newest first."""
    _show(
        common,
        show_plans,
        lambda billing: billing.plans.list(active=active, limit=limit, offset=offset),
    )


@command
def plans_update(
    plan_id: PlanId,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    clear_description: Annotated[bool, typer.Option(help="Remove the description.")] = False,
    entitlement: Entitlements = None,
    clear_entitlements: Annotated[bool, typer.Option(help="Remove every entitlement.")] = False,
    plan_limit: PlanLimits = None,
    clear_limits: Annotated[bool, typer.Option(help="Remove every limit.")] = False,
    metadata: MetadataPairs = None,
    unset_metadata: UnsetMetadata = None,
    *,
    common: Common,
) -> None:
    """Change the given fields. --entitlement and --plan-limit replace them whole; --metadata
    merges into the stored metadata. An archived plan cannot change."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if _changes(description is not None, clear_description, "--description"):
        changes["description"] = description
    if _changes(bool(entitlement), clear_entitlements, "--entitlement", "--clear-entitlements"):
        changes["entitlements"] = entitlement or []
    if _changes(bool(plan_limit), clear_limits, "--plan-limit", "--clear-limits"):
        changes["limits"] = _limits(plan_limit)
    _merge_metadata(changes, metadata, unset_metadata)
    _show(common, show_plan, lambda billing: billing.plans.update(plan_id, **changes))


@command
def plans_archive(plan_id: PlanId, *, common: Common) -> None:
    """Archive a plan and its active prices. Archiving twice is a no-op."""
    _show(common, show_plan, lambda billing: billing.plans.archive(plan_id))


# -- prices ------------------------------------------------------------------------------


@command
def prices_create(
    plan_id: PlanId,
    currency: Annotated[str, typer.Option(help="ISO 4217 code, e.g. usd (required).")],
    unit_amount: Annotated[
        int, typer.Option(help="In the currency's minor unit: 1999 is USD 19.99 (required).")
    ],
    interval: Annotated[str, typer.Option(help="day, week, month or year (required).")],
    interval_count: Annotated[int, typer.Option(help="Intervals per billing period.")] = 1,
    trial_days: Annotated[int | None, typer.Option(help="Trial days (1-730).")] = None,
    lookup_key: Annotated[str | None, typer.Option(help="Names at most one active price.")] = None,
    metadata: MetadataPairs = None,
    idempotency_key: IdempotencyKey = None,
    *,
    common: Common,
) -> None:
    """Create a recurring price of a plan."""
    pairs = parse_pairs(metadata)
    period: Interval = interval  # type: ignore[assignment]  # the library checks it
    with common.billing() as billing:
        price = billing.prices.create(
            plan_id,
            currency=currency,
            unit_amount=unit_amount,
            interval=period,
            interval_count=interval_count,
            trial_days=trial_days,
            lookup_key=lookup_key,
            metadata=pairs,
            idempotency_key=idempotency_key,
        )
        show_price(price, as_json=common.as_json)


@command
def prices_get(
    price_id: Annotated[
        str | None, typer.Argument(help="The price id (price_...).", show_default=False)
    ] = None,
    lookup_key: Annotated[
        str | None, typer.Option(help="Look up the active price with this lookup key instead.")
    ] = None,
    *,
    common: Common,
) -> None:
    """Show a price, by id (archived ones too) or by lookup key (active ones)."""
    if (price_id is None) == (lookup_key is None):
        raise typer.BadParameter("give either PRICE_ID or --lookup-key")
    with common.billing() as billing:
        if price_id is not None:
            price, missing = billing.prices.get(price_id), f"no price {price_id!r}"
        else:
            assert lookup_key is not None
            price = billing.prices.get_by_lookup_key(lookup_key)
            missing = f"no active price has lookup key {lookup_key!r}"
        if price is None:
            _not_found(missing, common)
        show_price(price, as_json=common.as_json)


@command
def prices_list(
    plan_id: Annotated[str | None, typer.Option(help="Only this plan's prices.")] = None,
    active: Active = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 code, any case.")] = None,
    limit: PageLimit = DEFAULT_LIST_LIMIT,
    offset: Offset = 0,
    *,
    common: Common,
) -> None:
    """List prices, newest first."""
    _show(
        common,
        show_prices,
        lambda billing: billing.prices.list(
            plan_id=plan_id, active=active, currency=currency, limit=limit, offset=offset
        ),
    )


@command
def prices_update(
    price_id: PriceId,
    lookup_key: Annotated[
        str | None, typer.Option(help="New lookup key (moved from the price holding it).")
    ] = None,
    clear_lookup_key: Annotated[bool, typer.Option(help="Remove the lookup key.")] = False,
    metadata: MetadataPairs = None,
    unset_metadata: UnsetMetadata = None,
    *,
    common: Common,
) -> None:
    """Change a price's lookup key or metadata (amount, currency and interval never change:
    create a new price and archive the old)."""
    changes: dict[str, Any] = {}
    if _changes(lookup_key is not None, clear_lookup_key, "--lookup-key"):
        changes["lookup_key"] = lookup_key
    _merge_metadata(changes, metadata, unset_metadata)
    _show(common, show_price, lambda billing: billing.prices.update(price_id, **changes))


@command
def prices_archive(price_id: PriceId, *, common: Common) -> None:
    """Archive a price. Archiving twice is a no-op."""
    _show(common, show_price, lambda billing: billing.prices.archive(price_id))


# -- the declarative catalog ---------------------------------------------------------------


@command
def catalog_diff(
    spec: SpecFile, archive_missing: ArchiveMissing = False, *, common: Common
) -> None:
    """Show what `catalog apply` would change; nothing is written."""
    _show(
        common,
        show_catalog_diff,
        lambda billing: billing.catalog.diff(str(spec), archive_missing=archive_missing),
    )


@command
def catalog_apply(
    spec: SpecFile, archive_missing: ArchiveMissing = False, *, common: Common
) -> None:
    """Make the stored catalog match the file (applying it again changes nothing)."""
    with common.billing() as billing:
        applied = billing.catalog.apply(str(spec), archive_missing=archive_missing)
        if common.as_json:
            print_json({**applied.as_dict(), "applied": len(applied)})
            return
        show_catalog_diff(applied, as_json=False)
        if applied:
            typer.echo(f"Applied {len(applied)} change{'' if len(applied) == 1 else 's'}.")


@command
def catalog_reconcile(
    provider: Annotated[
        str, typer.Option("--provider", help="The provider to compare with: stripe, mercadopago.")
    ],
    fix: Fix = False,
    check: Check = False,
    *,
    common: Common,
) -> None:
    """Compare qzpay's plans and prices with the provider's and report every difference.

    --fix links records to the provider object carrying their qzpay id, creates missing ones,
    pushes qzpay's values over drifted ones and archives there what is archived here; it never
    touches provider objects qzpay does not know. The report shows what was found before
    fixing: run again to confirm. Exit code 0 whether in sync or not, unless --check (then 3
    when not in sync).
    """
    if fix and check:
        raise typer.BadParameter("--check reports without changing anything: not with --fix")
    with provider_billing(common.database_url, provider, as_json=common.as_json) as billing:
        report = billing.catalog.reconcile(provider, fix=fix)
    if common.as_json:
        print_json(catalog_reconcile_json(report))
    else:
        _show_catalog_reconcile(report, fixed_now=fix)
    if check and not report.in_sync:
        raise typer.Exit(EXIT_DIFFERENCES)


def catalog_reconcile_json(report: CatalogReconcileReport) -> dict[str, Any]:
    """The report as JSON: its fields, ``in_sync``, and each drifted field as
    ``{"local": ..., "provider": ...}``."""
    fields = dataclasses.asdict(report)
    fields["drift"] = [
        {
            "kind": drift.kind,
            "record_id": drift.record_id,
            "provider_id": drift.provider_id,
            "fields": {
                name: {"local": local, "provider": remote}
                for name, (local, remote) in drift.fields.items()
            },
        }
        for drift in report.drift
    ]
    return {"provider": fields.pop("provider"), "in_sync": report.in_sync, **fields}


def _show_catalog_reconcile(report: CatalogReconcileReport, *, fixed_now: bool) -> None:
    """The report as a table of checks, ids only (values are left to --json)."""
    name = report.provider
    rows: list[tuple[str, list[str]]] = [
        (f"not linked to {name}", report.unlinked),
        (f"linked, missing at {name}", report.missing_at_provider),
        (f"at {name}, unknown here [{name} ids]", report.missing_locally),
        (
            f"several copies at {name} [{name} ids]",
            [f"{k}: {' + '.join(v)}" for k, v in report.duplicates.items()],
        ),
        (f"archived here, active at {name}", report.archived_locally_active_at_provider),
        ("fields differ", [f"{d.record_id} ({', '.join(d.fields)})" for d in report.drift]),
        ("skipped: sync pending", report.pending),
        ("could not fix", [f"{k}: {v}" for k, v in report.conflicts.items()]),
        (f"not from qzpay [{name} ids]", report.unmanaged),
    ]
    show_checks(
        f"{name}: {report.local_plans} plans and {report.local_prices} prices here, "
        f"{report.provider_plans} plans and {report.provider_prices} prices at {name}",
        "plans and prices",
        rows,
        fixed=report.fixed,
        in_sync=report.in_sync,
        fixed_now=fixed_now,
    )
