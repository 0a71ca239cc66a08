"""``qzpay customers create|get|list|update|delete``.

The commands that write (create, update, delete) keep the environment's payment providers in
step; reading needs none."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from qzpay.cli.handling import EXIT_ERROR, fail
from qzpay.cli.options import AddressOptions, Common, MetadataPairs, command, parse_pairs
from qzpay.cli.rendering import show_customer, show_customers
from qzpay.limits import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT

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
    metadata: MetadataPairs = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Makes a retry return the first call's customer.")
    ] = None,
    common: Common,
) -> None:
    """Create a customer."""
    pairs = parse_pairs(metadata)
    with common.billing(providers=True) as billing:
        customer = billing.customers.create(
            email=email,
            name=name,
            phone=phone,
            address=address.given(),
            metadata=pairs,
            idempotency_key=idempotency_key,
        )
        show_customer(customer, as_json=common.as_json)


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
    if (customer_id is None) == (provider_id is None):
        raise typer.BadParameter("give either CUSTOMER_ID or --provider-id")
    with common.billing() as billing:
        if customer_id is not None:
            customer = billing.customers.get(customer_id)
            missing = f"no customer {customer_id!r}"
        else:
            assert provider_id is not None
            customer = billing.customers.get_by_external_id(provider_id, provider=provider)
            missing = f"no customer is linked to {provider_id!r}"
        if customer is None:
            fail(missing, EXIT_ERROR, as_json=common.as_json, details={"code": "not_found"})
        show_customer(customer, as_json=common.as_json)


@command
def customers_list(
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_LIST_LIMIT, help="Page size.")
    ] = DEFAULT_LIST_LIMIT,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
    email: Annotated[str | None, typer.Option(help="Exact email, case-insensitive.")] = None,
    metadata: MetadataPairs = None,
    include_deleted: Annotated[bool, typer.Option(help="Include deleted customers.")] = False,
    all_: Annotated[
        bool, typer.Option("--all", help="Every match (paged by keyset), not one page.")
    ] = False,
    *,
    common: Common,
) -> None:
    """List customers, newest first."""
    pairs = parse_pairs(metadata) or None
    with common.billing() as billing:
        if all_:
            found = list(
                billing.customers.iterate(
                    email=email, metadata=pairs, include_deleted=include_deleted
                )
            )
            show_customers(
                found,
                total=len(found),
                limit=len(found),
                offset=0,
                has_more=False,
                as_json=common.as_json,
            )
            return
        page = billing.customers.list(
            limit=limit,
            offset=offset,
            email=email,
            metadata=pairs,
            include_deleted=include_deleted,
        )
        show_customers(
            page.data,
            total=page.total,
            limit=page.limit,
            offset=page.offset,
            has_more=page.has_more,
            as_json=common.as_json,
        )


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
    metadata: MetadataPairs = None,
    unset_metadata: Annotated[
        list[str] | None,
        typer.Option("--unset-metadata", help="KEY to remove; repeat for several."),
    ] = None,
    common: Common,
) -> None:
    """Change the given fields. Address options replace the whole address; --metadata merges
    into the stored metadata."""
    changes: dict[str, Any] = {}
    if email is not None:
        changes["email"] = email
    for field, value, clear in (("name", name, clear_name), ("phone", phone, clear_phone)):
        if value is not None and clear:
            raise typer.BadParameter(f"--{field} and --clear-{field} exclude each other")
        if value is not None or clear:
            changes[field] = value
    new_address = address.given()
    if new_address is not None and clear_address:
        raise typer.BadParameter("address options and --clear-address exclude each other")
    if new_address is not None or clear_address:
        changes["address"] = new_address
    patch: dict[str, str | None] = dict(parse_pairs(metadata))
    for key in unset_metadata or ():
        if key in patch:
            raise typer.BadParameter(f"key {key!r} is both set and unset")
        patch[key] = None
    if patch:
        changes["metadata"] = patch
    with common.billing(providers=True) as billing:
        customer = billing.customers.update(customer_id, **changes)
        show_customer(customer, as_json=common.as_json)


@command
def customers_delete(customer_id: CustomerId, *, common: Common) -> None:
    """Delete a customer (soft: the record stays, with deleted_at). Deleting twice is a no-op."""
    with common.billing(providers=True) as billing:
        billing.customers.delete(customer_id)
        customer = billing.customers.get(customer_id)
        assert customer is not None
        show_customer(customer, as_json=common.as_json)
