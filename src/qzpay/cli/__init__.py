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
``handling`` (errors and exit codes) and ``rendering`` (tables and JSON).
"""

from __future__ import annotations

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
from qzpay.cli.rendering import (
    reconcile_json,
    show_customer,
    show_customers,
    show_events,
    show_reconcile,
    show_sync_report,
)
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

customers_app = typer.Typer(help="Create, read, update and delete customers.", no_args_is_help=True)
customers_app.command("create")(customers_create)
customers_app.command("get")(customers_get)
customers_app.command("list")(customers_list)
customers_app.command("update")(customers_update)
customers_app.command("delete")(customers_delete)
customers_app.command("reconcile")(customers_reconcile)
customers_app.command("sync-pending")(customers_sync_pending)
app.add_typer(customers_app, name="customers")

plans_app = typer.Typer(help="Create, read, update and archive plans.", no_args_is_help=True)
plans_app.command("create")(plans_create)
plans_app.command("get")(plans_get)
plans_app.command("list")(plans_list)
plans_app.command("update")(plans_update)
plans_app.command("archive")(plans_archive)
app.add_typer(plans_app, name="plans")

prices_app = typer.Typer(help="Create, read, update and archive prices.", no_args_is_help=True)
prices_app.command("create")(prices_create)
prices_app.command("get")(prices_get)
prices_app.command("list")(prices_list)
prices_app.command("update")(prices_update)
prices_app.command("archive")(prices_archive)
app.add_typer(prices_app, name="prices")

catalog_app = typer.Typer(
    help="Keep plans and prices in step with a catalog file and the providers.",
    no_args_is_help=True,
)
catalog_app.command("diff")(catalog_diff)
catalog_app.command("apply")(catalog_apply)
catalog_app.command("reconcile")(catalog_reconcile)
app.add_typer(catalog_app, name="catalog")

subscriptions_app = typer.Typer(
    help="Subscribe customers to prices, change and end subscriptions.", no_args_is_help=True
)
subscriptions_app.command("create")(subscriptions_create)
subscriptions_app.command("get")(subscriptions_get)
subscriptions_app.command("list")(subscriptions_list)
subscriptions_app.command("cancel")(subscriptions_cancel)
subscriptions_app.command("uncancel")(subscriptions_uncancel)
subscriptions_app.command("change-price")(subscriptions_change_price)
subscriptions_app.command("pause")(subscriptions_pause)
subscriptions_app.command("reconcile")(subscriptions_reconcile)
subscriptions_app.command("resume")(subscriptions_resume)
subscriptions_app.command("run-due")(subscriptions_run_due)
subscriptions_app.command("sync-pending")(subscriptions_sync_pending)
app.add_typer(subscriptions_app, name="subscriptions")

entitlements_app = typer.Typer(help="What a customer may use now.", no_args_is_help=True)
entitlements_app.command("list")(entitlements_list)
entitlements_app.command("check")(entitlements_check)
app.add_typer(entitlements_app, name="entitlements")

limits_app = typer.Typer(help="A customer's limits now.", no_args_is_help=True)
limits_app.command("get")(limits_get)
app.add_typer(limits_app, name="limits")

events_app = typer.Typer(help="Read the durable event log.", no_args_is_help=True)
events_app.command("list")(events_list)
app.add_typer(events_app, name="events")

db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
db_app.command("upgrade")(db_upgrade)
app.add_typer(db_app, name="db")

app.command("relay")(relay_command)
app.command("worker")(worker_command)


def main() -> None:
    app()
