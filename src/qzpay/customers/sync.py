"""The provider side of customer synchronization: calls with their failure rules.

Nothing here touches storage; CustomerService records intents before calling these and commits
after. The rules: never resend blindly after an ambiguous failure, look first (by our customer
id stored in the provider's metadata); compensate what one provider did when the next fails.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from qzpay.customers.models import Customer
from qzpay.errors import ProviderSyncError
from qzpay.providers.base import PaymentProvider, ProviderCustomer

logger = logging.getLogger("qzpay.sync")


def create_key(customer_id: str) -> str:
    """The Idempotency-Key of a customer's create: the same for every retry, from any process."""
    return f"qzpay-customer-create-{customer_id}"


def delete_key(customer_id: str) -> str:
    return f"qzpay-customer-delete-{customer_id}"


def update_key(before: Customer, after: Customer) -> str:
    """Equal for retries of the same change, distinct for any other (Stripe rejects a key
    reused with different parameters)."""
    digest = hashlib.sha256(
        (before.model_dump_json() + "\n" + after.model_dump_json()).encode()
    ).hexdigest()[:32]
    return f"qzpay-customer-update-{after.id}-{digest}"


class IncompleteCompensation(ProviderSyncError):
    """A provider failed and undoing what the others did also failed; a task will finish it."""


class ProviderSet:
    """The configured providers, called in order."""

    def __init__(self, providers: Sequence[PaymentProvider]) -> None:
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"two providers share a name: {names}")
        self.providers = list(providers)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.providers]

    async def create_everywhere(self, customer: Customer) -> dict[str, str]:
        """Create at every provider; on a failure, undo the others and re-raise.

        The ProviderSyncError raised is the failing provider's; its ``ambiguous`` is True when
        something may remain at a provider (then the caller must keep its intent so that
        ``sync_pending`` can finish or undo it).
        """
        links: dict[str, str] = {}
        for provider in self.providers:
            try:
                links[provider.name] = (await self._create(provider, customer)).id
            except ProviderSyncError as failure:
                cleaned = await self._undo_creates(customer, links)
                if failure.ambiguous or cleaned:
                    raise
                raise IncompleteCompensation(
                    f"{failure.message}; undoing the create at "
                    f"{', '.join(links)} failed too, it is left for sync_pending",
                    provider=failure.provider,
                    operation=failure.operation,
                    cause=failure,
                    ambiguous=True,
                ) from failure
        return links

    async def _create(self, provider: PaymentProvider, customer: Customer) -> ProviderCustomer:
        try:
            return await provider.create_customer(customer, idempotency_key=create_key(customer.id))
        except ProviderSyncError as failure:
            if not failure.ambiguous:
                raise
            # The request may have been applied: look before anyone resends it.
            found = await provider.find_customer(customer)
            if found is None:
                raise
            logger.info("adopted %s customer %s for %s", provider.name, found.id, customer.id)
            return found

    async def _undo_creates(self, customer: Customer, links: dict[str, str]) -> bool:
        ok = True
        for provider in self.providers:
            if provider.name in links:
                try:
                    await provider.delete_customer(
                        links[provider.name], idempotency_key=delete_key(customer.id)
                    )
                except ProviderSyncError:
                    logger.exception(
                        "could not undo the create of %s at %s", customer.id, provider.name
                    )
                    ok = False
        return ok

    async def find_or_create_everywhere(self, customer: Customer) -> dict[str, str]:
        """Finish a create: adopt what an earlier attempt made, create what is missing."""
        links: dict[str, str] = {}
        for provider in self.providers:
            found = await provider.find_customer(customer)
            if found is None:
                found = await self._create(provider, customer)
            links[provider.name] = found.id
        return links

    async def remove_everywhere(self, customer: Customer) -> None:
        """Undo an unfinished create: delete whatever an earlier attempt made."""
        for provider in self.providers:
            found = await provider.find_customer(customer)
            if found is not None:
                await provider.delete_customer(found.id, idempotency_key=delete_key(customer.id))

    async def update_everywhere(self, before: Customer, after: Customer) -> None:
        """Push a change to every linked provider; on a failure, push the old values back."""
        done: list[PaymentProvider] = []
        for provider in self._linked(after):
            pcid = after.provider_customer_ids[provider.name]
            try:
                await provider.update_customer(
                    pcid, before, after, idempotency_key=update_key(before, after)
                )
            except ProviderSyncError:
                for earlier in done:
                    try:
                        await earlier.update_customer(
                            after.provider_customer_ids[earlier.name],
                            after,
                            before,
                            idempotency_key=update_key(after, before),
                        )
                    except ProviderSyncError:
                        logger.exception("could not revert %s at %s", after.id, earlier.name)
                raise
            done.append(provider)

    async def push_everywhere(self, customer: Customer) -> dict[str, str]:
        """Make every provider's copy match the local record (creating missing ones)."""
        links = dict(customer.provider_customer_ids)
        for provider in self.providers:
            pcid = links.get(provider.name)
            remote = None if pcid is None else await provider.retrieve_customer(pcid)
            if remote is None:
                remote = await provider.find_customer(customer) or await self._create(
                    provider, customer
                )
                links[provider.name] = remote.id
            seen = provider.merge_remote(customer, remote)
            await provider.update_customer(
                remote.id, seen, customer, idempotency_key=update_key(seen, customer)
            )
        return links

    async def delete_everywhere(self, customer: Customer) -> None:
        """Delete every provider copy: the linked one, or one an unlinked create may have made."""
        for provider in self.providers:
            pcid = customer.provider_customer_ids.get(provider.name)
            if pcid is None:
                found = await provider.find_customer(customer)
                if found is None:
                    continue
                pcid = found.id
            await provider.delete_customer(pcid, idempotency_key=delete_key(customer.id))

    def _linked(self, customer: Customer) -> list[PaymentProvider]:
        return [p for p in self.providers if p.name in customer.provider_customer_ids]

    async def close(self) -> None:
        for provider in self.providers:
            await provider.close()
