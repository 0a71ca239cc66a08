"""``qzpay customers reconcile`` and ``qzpay customers sync-pending``: the commands that need
a payment provider configured (a usage error, exit 2, without one)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from qzpay.billing import SyncBilling
from qzpay.cli.handling import EXIT_DIFFERENCES, EXIT_ERROR, EXIT_USAGE, fail
from qzpay.cli.options import Common, close_providers, command, provider_config, sync_billing
from qzpay.cli.rendering import print_json, reconcile_json, show_reconcile, show_sync_report
from qzpay.config import PROVIDER_ENV, ProviderConfig
from qzpay.customers.reconcile import ReconcileReport
from qzpay.engine.pending import SyncReport
from qzpay.limits import DEFAULT_SYNC_BATCH, MAX_SYNC_BATCH

Fix = Annotated[bool, typer.Option("--fix", help="Repair what is safe (see the command's help).")]
Check = Annotated[
    bool,
    typer.Option("--check", help="Exit 3 when not in sync (for cron; not with --fix)."),
]
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
        close_providers(config.providers)
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
    fail(message, EXIT_USAGE, as_json=as_json, details={"code": "provider_not_configured"})


@command
def customers_reconcile(
    provider: ProviderName,
    fix: Fix = False,
    check: Check = False,
    *,
    common: Common,
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
    with provider_billing(common.database_url, provider, as_json=common.as_json) as billing:
        report = _reconcile_with_progress(billing, provider, fix=fix)
    if common.as_json:
        print_json(reconcile_json(report))
    else:
        show_reconcile(report, fixed_now=fix)
    if check and not report.in_sync:
        raise typer.Exit(EXIT_DIFFERENCES)


def _reconcile_with_progress(billing: SyncBilling, provider: str, *, fix: bool) -> ReconcileReport:
    """Reconcile, with a progress bar on stderr when it is a terminal."""
    console = Console(stderr=True, highlight=False)
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


@command
def customers_sync_pending(
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_SYNC_BATCH, help="Work on at most this many tasks.")
    ] = DEFAULT_SYNC_BATCH,
    *,
    common: Common,
) -> None:
    """Finish (or undo) provider work left pending by failures, crashes or "log" mode.

    Prints how many tasks were completed, failed again, and remain. Exit code 1 when any
    failed again (they stay pending for the next run); safe to run from cron, and from
    several hosts at once.
    """
    with provider_billing(common.database_url, None, as_json=common.as_json) as billing:
        report = billing.customers.sync_pending(limit=limit)
    finish_sync_pending(report, common)


def finish_sync_pending(report: SyncReport, common: Common) -> None:
    """Print a ``sync-pending`` report; exit 1 when any task failed again."""
    show_sync_report(report, as_json=common.as_json)
    if report.failed:
        fail(
            f"{report.failed} pending sync(s) failed again and stay pending",
            EXIT_ERROR,
            as_json=common.as_json,
            details={"code": "sync_failed"},
        )
