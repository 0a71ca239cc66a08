"""``qzpay demo``: the Customers page walked end to end on a throwaway SQLite file, then a
small catalog (plans and prices)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from rich.console import Console

from qzpay import Billing, Customer, Event


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
        def print_event(event: Event) -> None:
            extra = f" previous={event.previous}" if event.previous else ""
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

        await _catalog(console, billing)

        console.print("\n[bold]9. The durable event log[/bold] (what another process would read)")
        for event in await billing.events.list():
            console.print(f"  {event.id} {event.type} {event.data.id}")
    console.rule("[green]done")


async def _catalog(console: Console, billing: Billing) -> None:
    """Step 8: a free and a paid plan with a price each, a lookup, an archive."""
    console.print("\n[bold]8. A small catalog[/bold] (plans with prices; amounts in cents)")
    free = await billing.plans.create("free", "Free", entitlements=["api"], limits={"seats": 1})
    pro = await billing.plans.create(
        "pro", "Pro", entitlements=["api", "sso"], limits={"seats": 10}
    )
    await billing.prices.create(
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


def main(console: Console | None = None) -> None:
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="qzpay-demo-") as directory:
        asyncio.run(run_demo(console, Path(directory)))
