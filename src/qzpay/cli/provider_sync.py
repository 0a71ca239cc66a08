"""The commands that need a payment provider configured (a usage error, exit 2, without one):
``qzpay customers reconcile`` and ``qzpay customers sync-pending`` here, and the skeletons every
``reconcile`` and ``sync-pending`` command shares (``reconcile``, ``sync_pending_command``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Generic, Protocol, TypeVar

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
from qzpay.cli.rendering import print_json, show_counts
from qzpay.cli.reports import Reconciled, reconcile_json, show_reconcile
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
SyncBatch = Annotated[
    int, typer.Option(min=1, max=MAX_SYNC_BATCH, help="Work on at most this many tasks.")
]

R = TypeVar("R", bound=Reconciled)
R_contra = TypeVar("R_contra", bound=Reconciled, contravariant=True)


class ShowReport(Protocol[R_contra]):
    def __call__(self, report: R_contra, /, *, fixed_now: bool) -> None: ...


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


@dataclass(frozen=True)
class Reconciliation(Generic[R]):
    """How one resource reconciles: the call (billing, provider, ``--fix``) and its report as a
    table. Called, it is the skeleton every ``reconcile`` command shares: the named provider
    configured, the report as a table or JSON, and exit 3 for ``--check`` when not in sync."""

    run: Callable[[SyncBilling, str, bool], R]
    show: ShowReport[R]

    def __call__(self, common: Common, provider: str, *, fix: bool, check: bool) -> None:
        if fix and check:
            raise typer.BadParameter("--check reports without changing anything: not with --fix")
        with provider_billing(common.database_url, provider, as_json=common.as_json) as billing:
            report = self.run(billing, provider, fix)
        if common.as_json:
            print_json(reconcile_json(report))
        else:
            self.show(report, fixed_now=fix)
        if check and not report.in_sync:
            raise typer.Exit(EXIT_DIFFERENCES)


def sync_pending_command(
    pending: Callable[[SyncBilling, int], SyncReport], doc: str
) -> Callable[..., None]:
    """A ``sync-pending`` command (its help: ``doc``): ``pending(billing, --limit)`` with the
    environment's providers (one at least), its counts shown, and exit 1 when any task failed
    again."""

    def sync_pending(limit: SyncBatch = DEFAULT_SYNC_BATCH, *, common: Common) -> None:
        with provider_billing(common.database_url, None, as_json=common.as_json) as billing:
            report = pending(billing, limit)
        show_counts(report, as_json=common.as_json)
        if report.failed:
            fail(
                f"{report.failed} pending sync(s) failed again and stay pending",
                EXIT_ERROR,
                as_json=common.as_json,
                details={"code": "sync_failed"},
            )

    sync_pending.__doc__ = doc
    return command(sync_pending)


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
    RECONCILIATION(common, provider, fix=fix, check=check)


def _reconcile_with_progress(billing: SyncBilling, provider: str, fix: bool) -> ReconcileReport:
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


RECONCILIATION = Reconciliation(_reconcile_with_progress, show_reconcile)


customers_sync_pending = sync_pending_command(
    lambda billing, limit: billing.customers.sync_pending(limit=limit),
    """Finish (or undo) provider work left pending by failures, crashes or "log" mode.

    Prints how many tasks were completed, failed again, and remain. Exit code 1 when any
    failed again (they stay pending for the next run); safe to run from cron, and from
    several hosts at once.
    """,
)
