"""``qzpay subscriptions reconcile PROVIDER``: compare qzpay's subscriptions with one
provider's, and with ``--fix`` take the provider's copies (the provider owns the billing
state: nothing is ever changed there)."""

from __future__ import annotations

from typing import Annotated

import typer

from qzpay.cli.options import Common, command
from qzpay.cli.provider_sync import Check, Fix, Reconciliation
from qzpay.cli.reports import Checklist

RECONCILIATION = Reconciliation(
    lambda billing, provider, fix: billing.subscriptions.reconcile(provider, fix=fix),
    Checklist(
        ("subscriptions",),
        "subscription_id",
        ("drift", "missing_locally", "unmanaged", "missing_at_provider", "pending"),
        {
            "unmanaged": "cannot be adopted [{provider} ids]",
            "missing_at_provider": "missing at {provider}",
            "pending": "sync pending",
        },
    ).show,
)


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
    RECONCILIATION(common, provider, fix=fix, check=check)
