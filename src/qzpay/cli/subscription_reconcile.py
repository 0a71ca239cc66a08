"""``qzpay subscriptions reconcile PROVIDER``: compare qzpay's subscriptions with one
provider's, and with ``--fix`` take the provider's copies (the provider owns the billing
state: nothing is ever changed there)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from qzpay.cli.handling import EXIT_DIFFERENCES
from qzpay.cli.options import Common, command
from qzpay.cli.provider_sync import Check, Fix, provider_billing
from qzpay.cli.rendering import print_json, show_checks
from qzpay.subscriptions.reconcile import SubscriptionReconcileReport


@command
def subscriptions_reconcile(
    provider: Annotated[str, typer.Argument(help="The provider: stripe, mercadopago.")],
    fix: Fix = False,
    check: Check = False,
    *,
    common: Common,
) -> None:
    """Compare qzpay's subscriptions with the provider's and report every difference.

    --fix applies the provider's copy over each drifted subscription (with its events) and
    adopts provider subscriptions made outside qzpay for a known customer and price; the
    provider is never changed. The report shows what was found before fixing. Exit code 0
    whether in sync or not, unless --check (then 3 when not in sync).
    """
    if fix and check:
        raise typer.BadParameter("--check reports without changing anything: not with --fix")
    with provider_billing(common.database_url, provider, as_json=common.as_json) as billing:
        report = billing.subscriptions.reconcile(provider, fix=fix)
    if common.as_json:
        print_json(reconcile_json(report))
    else:
        _show(report, fixed_now=fix)
    if check and not report.in_sync:
        raise typer.Exit(EXIT_DIFFERENCES)


def reconcile_json(report: SubscriptionReconcileReport) -> dict[str, Any]:
    """The report as JSON: its fields, ``in_sync``, and each drifted field as
    ``{"local": ..., "provider": ...}`` (times as ISO 8601)."""
    fields = dataclasses.asdict(report)
    fields["drift"] = [
        {
            "subscription_id": drift.subscription_id,
            "provider_subscription_id": drift.provider_subscription_id,
            "fields": {
                name: {"local": _plain(local), "provider": _plain(remote)}
                for name, (local, remote) in drift.fields.items()
            },
        }
        for drift in report.drift
    ]
    return {"provider": fields.pop("provider"), "in_sync": report.in_sync, **fields}


def _plain(value: object) -> object:
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else value


def _show(report: SubscriptionReconcileReport, *, fixed_now: bool) -> None:
    name = report.provider
    rows: list[tuple[str, list[str]]] = [
        ("fields differ", [f"{d.subscription_id} ({', '.join(d.fields)})" for d in report.drift]),
        (f"at {name}, unknown here [{name} ids]", report.missing_locally),
        (f"cannot be adopted [{name} ids]", report.unmanaged),
        (f"missing at {name}", report.missing_at_provider),
        ("sync pending", report.pending),
    ]
    show_checks(
        f"{name}: {report.local_subscriptions} subscriptions here, "
        f"{report.provider_subscriptions} at {name}",
        "subscriptions",
        rows,
        fixed=report.fixed,
        in_sync=report.in_sync,
        fixed_now=fixed_now,
    )
