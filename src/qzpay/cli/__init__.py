"""The ``qzpay`` command line (an edge: it calls the public API only).

Exit codes: 0 ok; 1 operational error (not found, conflict, storage or provider failure: a
message on stderr, a traceback only with ``--debug``); 2 usage error (bad options, input the
library rejects as invalid, or provider environment variables set wrong or missing); 3 only
from ``customers reconcile --check``: differences remain. ``--json`` prints machine-readable
output on stdout (and, on failure, a JSON error object on stderr).

Payment providers come from the environment (``qzpay.config``: ``STRIPE_API_KEY``, ...); the
commands that write (create, update, delete, sync-pending, reconcile, serve, worker) use them.

This module is the command tree; each command lives in the module of its group:
``serve`` (demo, serve), ``customers``, ``catalog`` (plans, prices, catalog diff/apply),
``provider_sync`` (reconcile, sync-pending), ``subscriptions`` (subscriptions, entitlements,
limits), ``worker``, ``events`` and ``db``, over ``options`` (shared options, providers),
``handling`` (errors and exit codes), ``records`` (the skeleton of the commands on one record),
``rendering`` (tables and JSON) and ``reports`` (the reconcile reports).
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from qzpay.cli.catalog import (
    catalog_apply,
    catalog_diff,
    catalog_reconcile,
    plans_archive,
    plans_create,
    plans_get,
    plans_list,
    plans_update,
    prices_archive,
    prices_create,
    prices_get,
    prices_list,
    prices_update,
)
from qzpay.cli.customers import (
    customers_create,
    customers_delete,
    customers_get,
    customers_list,
    customers_update,
)
from qzpay.cli.db import db_upgrade
from qzpay.cli.events import events_list
from qzpay.cli.handling import EXIT_DIFFERENCES, EXIT_ERROR, EXIT_OK, EXIT_USAGE, handled
from qzpay.cli.options import (
    DATABASE_URL_ENV,
    parse_pairs,
    provider_config,
    redact,
    sync_billing,
)
from qzpay.cli.provider_sync import customers_reconcile, customers_sync_pending, provider_billing
from qzpay.cli.relay import relay_command
from qzpay.cli.rendering import show_counts, show_customer, show_customers, show_events
from qzpay.cli.reports import reconcile_json, show_reconcile
from qzpay.cli.serve import demo, serve
from qzpay.cli.subscription_reconcile import subscriptions_reconcile
from qzpay.cli.subscriptions import (
    entitlements_check,
    entitlements_list,
    limits_get,
    subscriptions_cancel,
    subscriptions_change_price,
    subscriptions_create,
    subscriptions_get,
    subscriptions_list,
    subscriptions_pause,
    subscriptions_resume,
    subscriptions_run_due,
    subscriptions_sync_pending,
    subscriptions_uncancel,
)
from qzpay.cli.worker import worker_command

show_sync_report = show_counts  # its name before the CLI shared one counts table (issue 11)

__all__ = [
    "DATABASE_URL_ENV",
    "EXIT_DIFFERENCES",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "app",
    "catalog_app",
    "customers_app",
    "db_app",
    "entitlements_app",
    "events_app",
    "handled",
    "limits_app",
    "main",
    "parse_pairs",
    "plans_app",
    "prices_app",
    "provider_billing",
    "provider_config",
    "reconcile_json",
    "redact",
    "show_counts",
    "show_customer",
    "show_customers",
    "show_events",
    "show_reconcile",
    "show_sync_report",
    "subscriptions_app",
    "sync_billing",
]

app = typer.Typer(
    name="qzpay",
    help="qzpay: provider-agnostic billing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root() -> None:
    """qzpay: provider-agnostic billing."""


app.command()(demo)
app.command()(serve)


def _group(name: str, help: str, commands: dict[str, Callable[..., None]]) -> typer.Typer:
    """A command group: ``qzpay <name> <command>``, its commands in the order given."""
    group = typer.Typer(help=help, no_args_is_help=True)
    for command_name, function in commands.items():
        group.command(command_name)(function)
    app.add_typer(group, name=name)
    return group


customers_app = _group(
    "customers",
    "Create, read, update and delete customers.",
    {
        "create": customers_create,
        "get": customers_get,
        "list": customers_list,
        "update": customers_update,
        "delete": customers_delete,
        "reconcile": customers_reconcile,
        "sync-pending": customers_sync_pending,
    },
)
plans_app = _group(
    "plans",
    "Create, read, update and archive plans.",
    {
        "create": plans_create,
        "get": plans_get,
        "list": plans_list,
        "update": plans_update,
        "archive": plans_archive,
    },
)
prices_app = _group(
    "prices",
    "Create, read, update and archive prices.",
    {
        "create": prices_create,
        "get": prices_get,
        "list": prices_list,
        "update": prices_update,
        "archive": prices_archive,
    },
)
catalog_app = _group(
    "catalog",
    "Keep plans and prices in step with a catalog file and the providers.",
    {"diff": catalog_diff, "apply": catalog_apply, "reconcile": catalog_reconcile},
)
subscriptions_app = _group(
    "subscriptions",
    "Subscribe customers to prices, change and end subscriptions.",
    {
        "create": subscriptions_create,
        "get": subscriptions_get,
        "list": subscriptions_list,
        "cancel": subscriptions_cancel,
        "uncancel": subscriptions_uncancel,
        "change-price": subscriptions_change_price,
        "pause": subscriptions_pause,
        "resume": subscriptions_resume,
        "run-due": subscriptions_run_due,
        "sync-pending": subscriptions_sync_pending,
        "reconcile": subscriptions_reconcile,
    },
)
entitlements_app = _group(
    "entitlements",
    "What a customer may use now.",
    {"list": entitlements_list, "check": entitlements_check},
)
limits_app = _group("limits", "A customer's limits now.", {"get": limits_get})
events_app = _group("events", "Read the durable event log.", {"list": events_list})
db_app = _group("db", "Manage the database schema.", {"upgrade": db_upgrade})

app.command("relay")(relay_command)
app.command("worker")(worker_command)


def main() -> None:
    app()
