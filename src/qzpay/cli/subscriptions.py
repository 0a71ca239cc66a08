"""``qzpay subscriptions create|get|list|cancel|uncancel|change-price|pause|resume|run-due|
sync-pending``, ``qzpay entitlements list|check`` and ``qzpay limits get``.

The commands that change a subscription use the environment's payment providers (the one that
bills it must be configured); ``sync-pending`` needs one (a usage error, exit 2, without).
Reads, ``run-due`` (free subscriptions kept here only) and the entitlement questions need none.
``entitlements check`` answers with its exit code: 0 allowed, 1 not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import typer

from qzpay.billing import SyncSubscriptions
from qzpay.cli.handling import EXIT_ERROR
from qzpay.cli.options import Common, CreateOptions, command
from qzpay.cli.provider_sync import sync_pending_command
from qzpay.cli.records import Lookup, list_command, show_found, show_result
from qzpay.cli.rendering import print_json, show_counts, show_subscription, show_subscriptions
from qzpay.subscriptions.models import Proration, Subscription, SubscriptionStatus

SubscriptionId = Annotated[str, typer.Argument(help="The subscription id (sub_...).")]
CustomerId = Annotated[str, typer.Argument(help="The customer id (cus_...).")]
PriceId = Annotated[str, typer.Argument(help="The price id (price_...).")]
FeatureKey = Annotated[str, typer.Argument(help="The entitlement (feature) key, e.g. api.")]
LimitKey = Annotated[str, typer.Argument(help="The limit's name, e.g. seats.")]


def _change(common: Common, change: Callable[[SyncSubscriptions], Subscription]) -> None:
    """Run ``change`` on ``billing.subscriptions``, with the environment's providers (the one
    billing a subscription carries the change there), and show the subscription it returns."""
    show_result(
        common,
        show_subscription,
        lambda billing: change(billing.subscriptions),
        providers=True,
    )


# -- subscriptions ---------------------------------------------------------------------------


@command
def subscriptions_create(
    customer_id: CustomerId,
    price_id: PriceId,
    quantity: Annotated[int, typer.Option(help="Quantity (seats).")] = 1,
    trial_days: Annotated[
        int | None,
        typer.Option(
            help="Trial days; 0 for none (default: the price's trial).", show_default=False
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(help="The provider that bills it (default: the only one configured)."),
    ] = None,
    *,
    creation: CreateOptions,
    common: Common,
) -> None:
    """Subscribe a customer to an active price.

    A free price with no provider billing it is kept here: active at once, renewed by
    `run-due` (or `qzpay worker`). A paid price needs a payment provider configured.
    """
    given = creation.given()
    _change(
        common,
        lambda subscriptions: subscriptions.create(
            customer_id,
            price_id,
            quantity=quantity,
            trial_days=trial_days,
            provider=provider,
            **given,
        ),
    )


@command
def subscriptions_get(subscription_id: SubscriptionId, *, common: Common) -> None:
    """Show a subscription (ended ones too)."""
    show_found(
        common,
        show_subscription,
        Lookup.by_id("subscription", subscription_id, lambda billing: billing.subscriptions.get),
    )


@dataclass(frozen=True)
class SubscriptionFilters:
    """The options of ``subscriptions list``, as ``billing.subscriptions.list`` names them."""

    customer_id: Annotated[str | None, typer.Option(help="Only this customer's.")] = None
    status: Annotated[
        SubscriptionStatus | None, typer.Option(help="Only those in this status.")
    ] = None
    plan_id: Annotated[str | None, typer.Option(help="Only this plan's.")] = None
    price_id: Annotated[str | None, typer.Option(help="Only this price's.")] = None


subscriptions_list = list_command(
    SubscriptionFilters,
    lambda billing: billing.subscriptions.list,
    show_subscriptions,
    "List subscriptions, newest first.",
)


@command
def subscriptions_cancel(
    subscription_id: SubscriptionId,
    now: Annotated[
        bool, typer.Option("--now", help="End it now instead of at the end of the period.")
    ] = False,
    *,
    common: Common,
) -> None:
    """Cancel at the end of the current period (access stays until then), or --now.
    Cancelling an ended subscription changes nothing."""
    _change(common, lambda subs: subs.cancel(subscription_id, at_period_end=not now))


@command
def subscriptions_uncancel(subscription_id: SubscriptionId, *, common: Common) -> None:
    """Keep a subscription cancelled at period end, before that end comes."""
    _change(common, lambda subs: subs.uncancel(subscription_id))


@command
def subscriptions_change_price(
    subscription_id: SubscriptionId,
    price_id: PriceId,
    quantity: Annotated[
        int | None, typer.Option(help="New quantity (default: unchanged).", show_default=False)
    ] = None,
    proration: Annotated[
        Proration, typer.Option(help="How a provider bills the change.")
    ] = "create_prorations",
    *,
    common: Common,
) -> None:
    """Move a subscription to another active price (and its plan). Without a provider, the new
    price must be free too."""
    _change(
        common,
        lambda subs: subs.change_price(
            subscription_id, price_id, quantity=quantity, proration=proration
        ),
    )


@command
def subscriptions_pause(subscription_id: SubscriptionId, *, common: Common) -> None:
    """Pause billing and access until `resume`."""
    _change(common, lambda subs: subs.pause(subscription_id))


@command
def subscriptions_resume(subscription_id: SubscriptionId, *, common: Common) -> None:
    """Resume a paused subscription (one not paused changes nothing)."""
    _change(common, lambda subs: subs.resume(subscription_id))


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint="--now") from None
    if moment.utcoffset() is None:
        raise typer.BadParameter(
            f"{value!r} has no UTC offset (add one, such as Z or +00:00)", param_hint="--now"
        )
    return moment


@command
def subscriptions_run_due(
    now: Annotated[
        str | None,
        typer.Option(
            help="Act as if it were this time: ISO 8601 with a UTC offset, such as "
            "2030-01-31T12:00:00+00:00 (default: now).",
            show_default=False,
        ),
    ] = None,
    *,
    common: Common,
) -> None:
    """Renew the free subscriptions kept here whose period has ended, and end those cancelled
    at period end. Prints how many were renewed and cancelled; safe to run from cron, and from
    several hosts at once (`qzpay worker` runs it on a schedule)."""
    moment = _moment(now)
    with common.billing() as billing:
        report = billing.subscriptions.run_due(moment)
    show_counts(report, as_json=common.as_json)


subscriptions_sync_pending = sync_pending_command(
    lambda billing, limit: billing.subscriptions.sync_pending(limit=limit),
    """Finish subscription work left pending at the providers by failures or crashes.

    Prints how many tasks were completed, failed again, and remain. Exit code 1 when any
    failed again (they stay pending for the next run); safe to run from several hosts at once.
    """,
)


# -- entitlements and limits -----------------------------------------------------------------


@command
def entitlements_list(customer_id: CustomerId, *, common: Common) -> None:
    """The feature keys the customer may use now, one a line (sorted; none, no lines)."""
    with common.billing() as billing:
        keys = billing.entitlements.list(customer_id)
    if common.as_json:
        print_json({"customer_id": customer_id, "entitlements": keys})
        return
    for key in keys:
        typer.echo(key)


@command
def entitlements_check(customer_id: CustomerId, key: FeatureKey, *, common: Common) -> None:
    """Whether the customer may use the feature KEY now: prints yes or no.

    Exit code 0 when allowed, 1 when not (or on an error: then a message is on stderr), so a
    script can write `if qzpay entitlements check cus_... api; then ...`.
    """
    with common.billing() as billing:
        allowed = billing.entitlements.check(customer_id, key)
    if common.as_json:
        print_json({"customer_id": customer_id, "key": key, "allowed": allowed})
    else:
        typer.echo("yes" if allowed else "no")
    if not allowed:
        raise typer.Exit(EXIT_ERROR)


@command
def limits_get(customer_id: CustomerId, key: LimitKey, *, common: Common) -> None:
    """The customer's limit KEY now: the largest among the plans that grant access; `none`
    (JSON null) when none of them defines it."""
    with common.billing() as billing:
        value = billing.limits.get(customer_id, key)
    if common.as_json:
        print_json({"customer_id": customer_id, "key": key, "limit": value})
    else:
        typer.echo("none" if value is None else str(value))
