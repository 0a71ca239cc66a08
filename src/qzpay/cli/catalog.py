"""``qzpay plans create|get|list|update|archive``, ``qzpay prices create|get|list|update|archive``,
``qzpay catalog diff|apply FILE`` and ``qzpay catalog reconcile --provider NAME``.

With providers configured in the environment, writes reach them (qzpay.catalog.remote);
``catalog reconcile`` needs the named provider configured (a usage error, exit 2, without)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from qzpay.catalog.models import Interval
from qzpay.cli.options import Common, CreateOptions, MetadataPatch, command, parse_pairs
from qzpay.cli.provider_sync import Check, Fix, Reconciliation
from qzpay.cli.records import Lookup, changed, list_command, show_found, show_result
from qzpay.cli.rendering import (
    print_json,
    show_catalog_diff,
    show_plan,
    show_plans,
    show_price,
    show_prices,
)
from qzpay.cli.reports import Checklist

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
Active = Annotated[
    bool | None,
    typer.Option(
        "--active/--archived",
        help="Only live, or only archived ones (default: all).",
        show_default=False,
    ),
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
RECONCILIATION = Reconciliation(
    lambda billing, provider, fix: billing.catalog.reconcile(provider, fix=fix),
    Checklist(
        ("plans", "prices"),
        "record_id",
        (
            "unlinked",
            "missing_at_provider",
            "missing_locally",
            "duplicates",
            "archived_locally_active_at_provider",
            "drift",
            "pending",
            "conflicts",
            "unmanaged",
        ),
        {"conflicts": "could not fix"},
    ).show,
)


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


# -- plans -------------------------------------------------------------------------------


@command
def plans_create(
    key: Annotated[str, typer.Argument(help="The plan's unique key, a slug such as pro.")],
    name: Annotated[str, typer.Argument(help="The plan's name.")],
    description: Annotated[str | None, typer.Option(help="A description.")] = None,
    entitlement: Entitlements = None,
    plan_limit: PlanLimits = None,
    *,
    creation: CreateOptions,
    common: Common,
) -> None:
    """Create a plan."""
    limits = _limits(plan_limit)
    given = creation.given()
    show_result(
        common,
        show_plan,
        lambda billing: billing.plans.create(
            key,
            name,
            description=description,
            entitlements=entitlement or [],
            limits=limits,
            **given,
        ),
    )


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
    show_found(
        common,
        show_plan,
        Lookup.by_id("plan", plan_id, lambda billing: billing.plans.get),
        Lookup(
            "--key", key, lambda billing, k: billing.plans.get_by_key(k), "no plan with key {!r}"
        ),
    )


@dataclass(frozen=True)
class PlanFilters:
    """The options of ``plans list``, as ``billing.plans.list`` names them."""

    active: Active = None


plans_list = list_command(
    PlanFilters, lambda billing: billing.plans.list, show_plans, "List plans, newest first."
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
    *,
    metadata: MetadataPatch,
    common: Common,
) -> None:
    """Change the given fields. --entitlement and --plan-limit replace them whole; --metadata
    merges into the stored metadata. An archived plan cannot change."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if changed(description is not None, clear_description, "--description"):
        changes["description"] = description
    if changed(bool(entitlement), clear_entitlements, "--entitlement", "--clear-entitlements"):
        changes["entitlements"] = entitlement or []
    if changed(bool(plan_limit), clear_limits, "--plan-limit", "--clear-limits"):
        changes["limits"] = _limits(plan_limit)
    metadata.add_to(changes)
    show_result(common, show_plan, lambda billing: billing.plans.update(plan_id, **changes))


@command
def plans_archive(plan_id: PlanId, *, common: Common) -> None:
    """Archive a plan and its active prices. Archiving twice is a no-op."""
    show_result(common, show_plan, lambda billing: billing.plans.archive(plan_id))


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
    *,
    creation: CreateOptions,
    common: Common,
) -> None:
    """Create a recurring price of a plan."""
    given = creation.given()
    period: Interval = interval  # type: ignore[assignment]  # the library checks it
    show_result(
        common,
        show_price,
        lambda billing: billing.prices.create(
            plan_id,
            currency=currency,
            unit_amount=unit_amount,
            interval=period,
            interval_count=interval_count,
            trial_days=trial_days,
            lookup_key=lookup_key,
            **given,
        ),
    )


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
    show_found(
        common,
        show_price,
        Lookup.by_id("price", price_id, lambda billing: billing.prices.get),
        Lookup(
            "--lookup-key",
            lookup_key,
            lambda billing, key: billing.prices.get_by_lookup_key(key),
            "no active price has lookup key {!r}",
        ),
    )


@dataclass(frozen=True)
class PriceFilters:
    """The options of ``prices list``, as ``billing.prices.list`` names them."""

    plan_id: Annotated[str | None, typer.Option(help="Only this plan's prices.")] = None
    active: Active = None
    currency: Annotated[str | None, typer.Option(help="ISO 4217 code, any case.")] = None


prices_list = list_command(
    PriceFilters, lambda billing: billing.prices.list, show_prices, "List prices, newest first."
)


@command
def prices_update(
    price_id: PriceId,
    lookup_key: Annotated[
        str | None, typer.Option(help="New lookup key (moved from the price holding it).")
    ] = None,
    clear_lookup_key: Annotated[bool, typer.Option(help="Remove the lookup key.")] = False,
    *,
    metadata: MetadataPatch,
    common: Common,
) -> None:
    """Change a price's lookup key or metadata (amount, currency and interval never change:
    create a new price and archive the old)."""
    changes: dict[str, Any] = {}
    if changed(lookup_key is not None, clear_lookup_key, "--lookup-key"):
        changes["lookup_key"] = lookup_key
    metadata.add_to(changes)
    show_result(common, show_price, lambda billing: billing.prices.update(price_id, **changes))


@command
def prices_archive(price_id: PriceId, *, common: Common) -> None:
    """Archive a price. Archiving twice is a no-op."""
    show_result(common, show_price, lambda billing: billing.prices.archive(price_id))


# -- the declarative catalog ---------------------------------------------------------------


@command
def catalog_diff(
    spec: SpecFile, archive_missing: ArchiveMissing = False, *, common: Common
) -> None:
    """Show what `catalog apply` would change; nothing is written."""
    show_result(
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
    RECONCILIATION(common, provider, fix=fix, check=check)
