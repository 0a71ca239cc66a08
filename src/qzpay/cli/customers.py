"""``qzpay customers create|get|list|update|delete``.

The commands that write (create, update, delete) keep the environment's payment providers in
step; reading needs none."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from qzpay.billing import SyncBilling
from qzpay.cli.options import (
    AddressOptions,
    Common,
    CreateOptions,
    MetadataPairs,
    MetadataPatch,
    Paging,
    command,
    parse_pairs,
)
from qzpay.cli.records import Lookup, changed, show_found, show_result
from qzpay.cli.rendering import show_customer, show_customers
from qzpay.customers.models import Customer
from qzpay.page import Page

CustomerId = Annotated[str, typer.Argument(help="The customer id (cus_...).")]


@command
def customers_create(
    email: Annotated[str, typer.Option(help="Email address (required).")],
    name: Annotated[str | None, typer.Option(help="Full name.")] = None,
    phone: Annotated[
        str | None, typer.Option(help="International form, e.g. +14155552671.")
    ] = None,
    *,
    address: AddressOptions,
    creation: CreateOptions,
    common: Common,
) -> None:
    """Create a customer."""
    given = creation.given()
    show_result(
        common,
        show_customer,
        lambda billing: billing.customers.create(
            email=email,
            name=name,
            phone=phone,
            address=address.given(),
            **given,
        ),
        providers=True,
    )


@command
def customers_get(
    customer_id: Annotated[
        str | None, typer.Argument(help="The customer id (cus_...).", show_default=False)
    ] = None,
    provider_id: Annotated[
        str | None, typer.Option(help="Look up by a payment provider's customer id instead.")
    ] = None,
    provider: Annotated[
        str | None, typer.Option(help="With --provider-id: the provider (stripe, ...).")
    ] = None,
    *,
    common: Common,
) -> None:
    """Show a customer, by id or by provider id (deleted ones too)."""
    show_found(
        common,
        show_customer,
        Lookup.by_id("customer", customer_id, lambda billing: billing.customers.get),
        Lookup(
            "--provider-id",
            provider_id,
            lambda billing, id_: billing.customers.get_by_external_id(id_, provider=provider),
            "no customer is linked to {!r}",
        ),
    )


@command
def customers_list(
    *,
    paging: Paging,
    email: Annotated[str | None, typer.Option(help="Exact email, case-insensitive.")] = None,
    metadata: MetadataPairs = None,
    include_deleted: Annotated[bool, typer.Option(help="Include deleted customers.")] = False,
    all_: Annotated[
        bool, typer.Option("--all", help="Every match (paged by keyset), not one page.")
    ] = False,
    common: Common,
) -> None:
    """List customers, newest first."""
    pairs = parse_pairs(metadata) or None

    def matches(billing: SyncBilling) -> Page[Customer]:
        if not all_:
            return billing.customers.list(
                limit=paging.limit,
                offset=paging.offset,
                email=email,
                metadata=pairs,
                include_deleted=include_deleted,
            )
        every = billing.customers.iterate(
            email=email, metadata=pairs, include_deleted=include_deleted
        )
        found = list(every)
        return Page(data=found, total=len(found), limit=len(found), offset=0, has_more=False)

    show_result(common, show_customers, matches)


@command
def customers_update(
    customer_id: CustomerId,
    email: Annotated[str | None, typer.Option(help="New email.")] = None,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    clear_name: Annotated[bool, typer.Option(help="Remove the name.")] = False,
    phone: Annotated[str | None, typer.Option(help="New phone.")] = None,
    clear_phone: Annotated[bool, typer.Option(help="Remove the phone.")] = False,
    *,
    address: AddressOptions,
    clear_address: Annotated[
        bool, typer.Option(help="Remove the address.", rich_help_panel="Address")
    ] = False,
    metadata: MetadataPatch,
    common: Common,
) -> None:
    """Change the given fields. Address options replace the whole address; --metadata merges
    into the stored metadata."""
    changes: dict[str, Any] = {}
    if email is not None:
        changes["email"] = email
    for field, value, clear in (("name", name, clear_name), ("phone", phone, clear_phone)):
        if changed(value is not None, clear, f"--{field}"):
            changes[field] = value
    new_address = address.given()
    if changed(new_address is not None, clear_address, "address options", "--clear-address"):
        changes["address"] = new_address
    metadata.add_to(changes)
    show_result(
        common,
        show_customer,
        lambda billing: billing.customers.update(customer_id, **changes),
        providers=True,
    )


@command
def customers_delete(customer_id: CustomerId, *, common: Common) -> None:
    """Delete a customer (soft: the record stays, with deleted_at). Deleting twice is a no-op."""
    with common.billing(providers=True) as billing:
        billing.customers.delete(customer_id)
        customer = billing.customers.get(customer_id)
        assert customer is not None
        show_customer(customer, as_json=common.as_json)
