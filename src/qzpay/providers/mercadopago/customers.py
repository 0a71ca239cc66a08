"""MercadoPago's customers behind the CustomerAdapter protocol.

MercadoPago allows one customer per email per integrator and answers a second create with
its "customer already exists" error (cause code ``101``). :meth:`MercadoPagoCustomers.create`
resolves it by searching that email: a customer that carries our id (an earlier attempt of the
same create) is returned; any other is a :class:`MercadoPagoEmailTaken` (``ConflictError``
with code ``provider_email_taken``, carrying that customer), never a silent take-over here.
The sync machinery (``qzpay.customers.sync``) then adopts a customer created outside qzpay
that no other qzpay customer is linked to, through :meth:`MercadoPagoCustomers.adopt`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from qzpay.customers.models import Customer
from qzpay.errors import ProviderSyncError
from qzpay.providers.base import ProviderCustomer, ProviderEmailTaken
from qzpay.providers.customer_base import CustomerAdapterBase
from qzpay.providers.mercadopago import mapping
from qzpay.providers.mercadopago.resource import MercadoPagoResource, SortKey, oldest
from qzpay.providers.mercadopago.transport import PROVIDER, MercadoPagoClient, status_error
from qzpay.providers.mercadopago.transport import (
    idempotency_key as _key,  # the methods' ``idempotency_key`` parameter hides the name
)

_DUPLICATE_EMAIL: Final = "101"  # "the customer already exist."


class MercadoPagoEmailTaken(ProviderEmailTaken):
    """MercadoPago already has a customer with this email that is not this qzpay customer.

    ``existing`` is that customer (``None`` if MercadoPago's search did not return it):
    ``existing.qzpay_customer_id`` names the other qzpay customer, or is ``None`` for a
    customer created outside qzpay. This provider never takes one over by itself; the sync
    machinery adopts such a customer (:meth:`MercadoPagoCustomers.adopt`) only when no
    other qzpay customer is linked to it. It is a ``ConflictError`` for callers and a
    non-ambiguous ``ProviderSyncError`` for the sync machinery, so a create at other providers
    is undone as for any clean failure.
    """

    def __init__(
        self,
        message: str,
        *,
        existing: ProviderCustomer | None,
        operation: str = "create_customer",
        provider: str = PROVIDER,
    ) -> None:
        super().__init__(message, provider=provider, existing=existing, operation=operation)


class MercadoPagoCustomers(CustomerAdapterBase[dict[str, Any]]):
    """``provider.customers`` of a MercadoPagoProvider.

    An update sends only what changed among the fields MercadoPago holds (``""`` clears one):
    changes to fields kept only in qzpay (metadata, most of the address) send nothing, and
    neither does an email change (MercadoPago refuses to change an email once set). Adopting
    (one customer per email: see the module docstring) writes ``description =
    qzpay_customer_id:<id>``, replacing any description it had, and every field MercadoPago
    holds, cleared ones as ``""``; its email stays as it is (MercadoPago refuses changes, and
    it matches case-insensitively); a customer that carries another qzpay customer's id is
    refused with MercadoPagoEmailTaken. Releasing clears ``description``; the fields adoption
    wrote stay. Every request sends its own key, derived from the caller's.
    """

    _provider = PROVIDER
    _taken = MercadoPagoEmailTaken

    def __init__(self, client: MercadoPagoClient, *, page_size: int) -> None:
        self._api = MercadoPagoResource(
            client, _customers, _read, noun="customer", label="customer", page_size=page_size
        )

    async def create(self, customer: Customer, *, idempotency_key: str) -> ProviderCustomer:
        """Create with every field MercadoPago can hold and our id in ``description``.

        If the email is taken at MercadoPago, the customer carrying our id is returned (an
        earlier attempt of this create landed); anything else raises MercadoPagoEmailTaken.
        """
        body = mapping.create_body(customer)
        key = _key("create", customer.id, idempotency_key)
        answer = await self._api.create("create_customer", body, key)
        if answer.ok:
            return self._api.parsed("create_customer", answer)
        if answer.status == 400 and _DUPLICATE_EMAIL in answer.cause_codes():
            return await self._resolve_taken_email(customer)
        raise status_error("create_customer", answer)

    async def delete(self, provider_customer_id: str, *, idempotency_key: str) -> None:
        key = _key("delete", provider_customer_id, idempotency_key)
        answer = await self._api.delete("delete_customer", provider_customer_id, key)
        if answer.ok or answer.status == 404:
            return  # 404: already gone, the goal of the call is met
        raise status_error("delete_customer", answer)

    async def find(self, customer: Customer) -> ProviderCustomer | None:
        """The customer among those searched by this exact email whose ``description`` carries
        ``customer.id``; the oldest if several ever do.

        A customer with the same email but no qzpay id is *not* returned: the service deletes
        what this finds when it undoes a create. :meth:`find_unmanaged` reports that case.
        """
        matches = [
            found
            async for found in self._search("find_customer", email=customer.email)
            if found[1].qzpay_customer_id == customer.id
        ]
        return oldest(matches)

    async def find_unmanaged(self, customer: Customer) -> ProviderCustomer | None:
        """The one customer with this email (case-insensitively) that carries no qzpay id.

        None when there is none, or when the email is ambiguous (several such customers). The
        provider cannot tell whether that customer is linked to another qzpay customer: the
        caller must check its links before adopting it.
        """
        wanted = customer.email.casefold()
        candidates = [
            found
            async for _, found in self._search("find_customer", email=customer.email)
            if (found.email or "").casefold() == wanted
        ]
        unmanaged = [c for c in candidates if c.qzpay_customer_id is None]
        return unmanaged[0] if len(unmanaged) == 1 else None

    @staticmethod
    def held_view(customer: Customer) -> Customer:
        """``customer`` reduced to what MercadoPago holds of it (for drift comparisons)."""
        return mapping.held_view(customer)

    def merge_remote(self, local: Customer, remote: ProviderCustomer) -> Customer:
        """MercadoPago's name, phone, street and zip code over ``local``; the rest stays."""
        return mapping.merge_remote(local, remote)

    def list(self) -> AsyncIterator[ProviderCustomer]:
        """Every customer, oldest first, page by page through the search API.

        The search pages by offset: a customer deleted during the walk shifts the later pages,
        so one customer may be missed (the next reconcile sees it) and one seen twice is
        reported once.
        """
        return self._api.listed("list_customers", {})

    # -- the shared flow's parts (see CustomerAdapterBase) ----------------------------------

    def _request_key(self, verb: str, subject: str, idempotency_key: str) -> str:
        return _key(verb, subject, idempotency_key)

    def _update_body(self, before: Customer, after: Customer) -> dict[str, Any]:
        return mapping.update_body(before, after)

    def _adopt_body(self, current: ProviderCustomer, customer: Customer) -> dict[str, Any]:
        return mapping.adopt_body(customer)

    async def _retrieve(self, operation: str, provider_customer_id: str) -> ProviderCustomer | None:
        return await self._api.get(operation, provider_customer_id)

    async def _write(
        self, operation: str, provider_customer_id: str, body: dict[str, Any], key: str
    ) -> ProviderCustomer:
        answer = await self._api.update(operation, provider_customer_id, body, key)
        if answer.ok:
            return self._api.parsed(operation, answer)
        if answer.status == 404:
            raise self._api.missing(operation, provider_customer_id)
        raise status_error(operation, answer)

    async def _unmark(self, operation: str, provider_customer_id: str, key: str) -> None:
        """Clear ``description``; a customer gone meanwhile has nothing left to release."""
        answer = await self._api.update(operation, provider_customer_id, {"description": ""}, key)
        if not answer.ok and answer.status != 404:
            raise status_error(operation, answer)

    # -- internals -------------------------------------------------------------------------

    def _search(
        self, operation: str, *, email: str | None = None
    ) -> AsyncIterator[tuple[SortKey, ProviderCustomer]]:
        """Matching customers with a sort key (date_created, id), one page request at a time."""
        return self._api.search(operation, {} if email is None else {"email": email})

    async def _resolve_taken_email(self, customer: Customer) -> ProviderCustomer:
        """After "customer already exists": return ours, or raise MercadoPagoEmailTaken."""
        wanted = customer.email.casefold()
        try:
            holders = [
                found
                async for found in self._search("create_customer", email=customer.email)
                if (found[1].email or "").casefold() == wanted
            ]
        except ProviderSyncError as failure:
            # The email is taken, perhaps by our own earlier attempt: the caller must look.
            raise ProviderSyncError(
                f"{PROVIDER} create_customer: the email of {customer.id} is taken and the "
                f"search for its holder failed ({failure.message}); it may be ours",
                provider=PROVIDER,
                operation="create_customer",
                cause=failure,
                ambiguous=True,
            ) from failure
        mine = oldest([found for found in holders if found[1].qzpay_customer_id == customer.id])
        if mine is not None:
            return mine
        existing = oldest(holders)
        if existing is None:
            whose = "a customer its search does not return"
        elif existing.qzpay_customer_id is None:
            whose = f"customer {existing.id}, which qzpay did not create (link it explicitly)"
        else:
            whose = f"customer {existing.id} of qzpay customer {existing.qzpay_customer_id}"
        raise MercadoPagoEmailTaken(
            f"{PROVIDER} already has {whose} with the email of {customer.id}; "
            "it allows one customer per email",
            existing=existing,
        )


def _customers(sdk: Any) -> Any:
    return sdk.customer()


def _read(operation: str, data: Mapping[str, Any]) -> ProviderCustomer:
    return mapping.provider_customer(data)
