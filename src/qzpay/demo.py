"""``qzpay demo``: the Customers page walked end to end on a throwaway SQLite file, then a
small catalog (plans and prices), and a free subscription with the entitlements it grants."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from qzpay import Billing, Customer, Event
from qzpay.catalog.models import Price
from qzpay.subscriptions.models import EntitlementsChange


def _show(console: Console, customer: Customer | None) -> None:
    if customer is None:
        console.print("  [dim]None[/dim]")
        return
    console.print_json(customer.model_dump_json(exclude_none=True), indent=2)


async def run_demo(console: Console, directory: Path) -> None:
    url = f"sqlite:///{directory / 'billing.db'}"
    console.rule("[bold]qzpay demo")
    console.print(f"Storage: [cyan]{url}[/cyan] (embedded SQLite, no network, no configuration)\n")
    async with Billing(storage=url) as billing:

        @billing.on("customer.*")
        def print_event(event: Event[Any]) -> None:
            extra = f" previous={event.previous}" if event.previous else ""
            if isinstance(event.data, EntitlementsChange):  # what the customer may use
                extra = f" {event.data.before} -> {event.data.after}"
            console.print(f"  [magenta]event[/magenta] {event.type} {event.data.id}{extra}")

        console.print("[bold]1. Create a customer[/bold] (with the app's user id in metadata)")
        customer = await billing.customers.create(
            email="user@example.com",
            name="John Doe",
            phone="+1 415 555 2671",
            address={"line1": "1 Market St", "city": "San Francisco", "country": "us"},
            metadata={"userId": "usr_123", "plan": "enterprise"},
        )
        _show(console, customer)

        console.print("\n[bold]2. Get it by id[/bold]")
        fetched = await billing.customers.get(customer.id)
        _show(console, fetched)
        console.print(f"  equal to what create returned: {fetched == customer}")

        console.print("\n[bold]3. Link a provider id and look the customer up by it[/bold]")
        console.print("  (a configured provider links automatically; here we import one by hand)")
        await billing.customers.link(customer.id, provider="stripe", provider_customer_id="cus_xyz")
        by_provider = await billing.customers.get_by_external_id("cus_xyz")
        console.print(f"  get_by_external_id('cus_xyz') -> {by_provider and by_provider.id}")

        console.print("\n[bold]4. List with an email filter[/bold] (case-insensitive)")
        await billing.customers.create(email="someone.else@example.com", name="Someone Else")
        page = await billing.customers.list(limit=10, offset=0, email="USER@example.com")
        console.print(f"  total={page.total} has_more={page.has_more} ids={[c.id for c in page]}")

        console.print("\n[bold]5. Update[/bold] (metadata merges: userId is kept)")
        updated = await billing.customers.update(
            customer.id, name="Jane Doe", metadata={"plan": "pro"}
        )
        console.print(f"  name={updated.name!r} metadata={updated.metadata}")

        console.print("\n[bold]6. Delete[/bold] (soft: the record stays with deleted_at)")
        await billing.customers.delete(customer.id)
        gone = await billing.customers.get(customer.id)
        console.print(f"  deleted_at={gone and gone.deleted_at}")
        remaining = await billing.customers.list()
        console.print(f"  list() now has {remaining.total} customer(s)")

        free_monthly = await _catalog(console, billing)
        await _subscription(console, billing, free_monthly)

        console.print("\n[bold]10. The durable event log[/bold] (what another process would read)")
        for event in await billing.events.list():
            console.print(f"  {event.id} {event.type} {event.data.id}")
    console.rule("[green]done")


async def _catalog(console: Console, billing: Billing) -> Price:
    """Step 8: a free and a paid plan with a price each, a lookup, an archive."""
    console.print("\n[bold]8. A small catalog[/bold] (plans with prices; amounts in cents)")
    free = await billing.plans.create("free", "Free", entitlements=["api"], limits={"seats": 1})
    pro = await billing.plans.create(
        "pro", "Pro", entitlements=["api", "sso"], limits={"seats": 10}
    )
    free_monthly = await billing.prices.create(
        free.id, currency="usd", unit_amount=0, interval="month", lookup_key="free_monthly"
    )
    pro_monthly = await billing.prices.create(
        pro.id, currency="usd", unit_amount=1999, interval="month", lookup_key="pro_monthly"
    )
    for plan in (free, pro):
        console.print(f"  plan {plan.key}: entitlements={plan.entitlements} limits={plan.limits}")
    found = await billing.prices.get_by_lookup_key("pro_monthly")
    if found is not None:
        console.print(
            f"  get_by_lookup_key('pro_monthly') -> {found.major_amount()} {found.currency} "
            f"every {found.interval} (same price: {found == pro_monthly})"
        )
    archived = await billing.prices.archive(pro_monthly.id)
    live = await billing.prices.list(active=True)
    console.print(f"  archived pro_monthly: active={archived.active}; {live.total} active price(s)")
    return free_monthly


async def _subscription(console: Console, billing: Billing, price: Price) -> None:
    """Step 9: a free subscription (no provider needed) and what it grants."""
    console.print(
        "\n[bold]9. Subscribe to the free plan[/bold] (free: active at once, no provider)"
    )

    customer = await billing.customers.create(email="ada@example.com", name="Ada")
    subscription = await billing.subscriptions.create(customer.id, price.id)
    console.print(
        f"  {subscription.id}: status={subscription.status} "
        f"period ends {subscription.current_period_end:%Y-%m-%d}"
    )
    may_use_api = await billing.entitlements.check(customer.id, "api")
    console.print(f"  entitlements.check('api') -> {may_use_api}")
    console.print(f"  limits.get('seats') -> {await billing.limits.get(customer.id, 'seats')}")
    await billing.subscriptions.cancel(subscription.id, at_period_end=False)
    console.print(
        f"  after cancel: check('api') -> {await billing.entitlements.check(customer.id, 'api')}"
    )


def main(console: Console | None = None) -> None:
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="qzpay-demo-") as directory:
        asyncio.run(run_demo(console, Path(directory)))
