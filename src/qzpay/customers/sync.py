"""The provider side of customer synchronization: calls with their failure rules.

Nothing here touches storage; CustomerService records intents before calling these, commits
after, and answers (as an :class:`AdoptionGuard`) what adoption needs to know. The rules:

* Never resend blindly after an ambiguous failure: look first (by our customer id stored at the
  provider), and adopt what an earlier attempt made.
* After a clean (non-ambiguous) failure, undo what the other providers did in the same call.
  After an ambiguous one, undo nothing: the caller keeps its intent, and ``sync_pending``
  finishes or undoes the whole create at every provider (re-creating something that was undone
  would reuse its idempotency key, and a provider may answer that with the deleted customer).
* Adoption. A provider that allows one customer per email (MercadoPago) answers a create with
  :class:`ProviderEmailTaken`. A customer there that carries no qzpay id (created outside
  qzpay) is adopted, that is marked as ours and given our values, only if no local customer is
  linked to it; anything else stays a ConflictError. An adoption is written after every other
  provider succeeded, and noted on the intent first (``AdoptionGuard.adopting``), so undoing an
  unfinished create *releases* an adopted customer (un-marks it) instead of deleting it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Protocol

from qzpay.customers.models import Customer
from qzpay.errors import ProviderSyncError
from qzpay.limits import MAX_IDEMPOTENCY_KEY_LENGTH
from qzpay.providers.base import PaymentProvider, ProviderCustomer, ProviderEmailTaken

logger = logging.getLogger("qzpay.sync")


MAX_KEY_LENGTH = MAX_IDEMPOTENCY_KEY_LENGTH
"""The longest Idempotency-Key Stripe accepts; longer keys are shortened by hashing."""


def create_key(customer: Customer | str) -> str:
    """The Idempotency-Key of creating ``customer`` at a provider.

    A key names one request: it is sent again only for that very request. A create is about
    the object-to-be, which nothing at the provider names yet, so the key is derived from the
    qzpay customer id and the stored version of the record the provider copy is made from
    (``updated_at`` and every value that is sent). Every retry of that create, from any
    process, sends the same key, so a create that landed unseen is deduplicated by the
    provider. A create made from a changed record (edited, or unlinked after its copy was
    deleted at the provider) is another request and gets another key: a provider that
    replays a key's first answer would otherwise answer with the earlier (perhaps deleted)
    customer, and Stripe refuses a key reused with different parameters.

    Given only an id, the key depends on the id alone.
    """
    if isinstance(customer, str):
        return _fit(f"qzpay-create-{customer}")
    version = json.dumps(
        [
            customer.updated_at.astimezone(UTC).isoformat(),
            customer.email,
            customer.name,
            customer.phone,
            None if customer.address is None else customer.address.model_dump(),
            customer.metadata,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    digest = hashlib.sha256(version.encode()).hexdigest()[:32]
    return _fit(f"qzpay-create-{customer.id}-{digest}")


def delete_key(provider_customer_id: str) -> str:
    """The Idempotency-Key of deleting one provider customer, named by the provider's id.

    Deleting a given provider customer is always the same request, so its key is too; two
    different provider customers (a copy and a leftover copy of one qzpay customer) never
    share one.
    """
    return _fit(f"qzpay-delete-{provider_customer_id}")


def fresh_key(operation: str, provider_customer_id: str) -> str:
    """A key for one attempt of a write that sets absolute values (update, adopt, release)
    to the provider customer ``provider_customer_id``.

    Sending such a write again is harmless, while reusing a key is not: the provider would
    replay its earlier answer instead of applying the write (after a change was reverted and
    is made again, or after a 5xx it saved), so every attempt gets its own key.
    """
    return _fit(f"qzpay-{operation}-{provider_customer_id}-{secrets.token_hex(12)}")


def update_key(provider_customer_id: str) -> str:
    """The Idempotency-Key of one attempt to push a change (see :func:`fresh_key`)."""
    return fresh_key("update", provider_customer_id)


def _fit(key: str) -> str:
    """``key``, or a same-prefixed digest of it when it is longer than a provider accepts."""
    if len(key) <= MAX_KEY_LENGTH:
        return key
    operation = key.split("-", 2)[1]
    return f"qzpay-{operation}-{hashlib.sha256(key.encode()).hexdigest()}"


class IncompleteCompensation(ProviderSyncError):
    """A provider failed and undoing what the others did also failed; a task will finish it."""


class PartiallyApplied(ProviderSyncError):
    """A change that cannot be undone (a delete) was applied at some providers before another
    failed; a task finishes it forward."""


class AdoptionGuard(Protocol):
    """What adoption asks of the service (which owns the storage)."""

    async def owner(self, provider: str, provider_customer_id: str) -> str | None:
        """The id of the local customer linked to this provider customer, if any."""
        ...

    async def adopting(self, customer: Customer, provider: str, provider_customer_id: str) -> None:
        """Note durably, before anything is written at the provider, that the unfinished create
        of ``customer`` is adopting this provider customer (so that undoing the create releases
        it rather than deleting it). Nothing to note for a customer committed locally."""
        ...


@dataclass(frozen=True, slots=True)
class _Adoptable:
    """A customer created outside qzpay holding our customer's email, cleared for adoption."""

    provider: PaymentProvider
    existing: ProviderCustomer
    guard: AdoptionGuard


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

    async def create_everywhere(
        self,
        customer: Customer,
        *,
        guard: AdoptionGuard | None = None,
        compensate: bool = True,
    ) -> dict[str, str]:
        """Create at every provider (adopting where allowed); the links, by provider name.

        On a clean failure, what the other providers did is undone (``compensate``) and the
        failing provider's ProviderSyncError re-raised; if the undo fails too, an
        IncompleteCompensation (ambiguous) is raised instead. On an ambiguous failure nothing
        is undone: something may remain, and the caller must keep its intent so that
        ``sync_pending`` finishes or undoes it everywhere. Pass ``compensate=False`` for a
        customer that is already committed locally (its create is only ever finished).
        """
        links: dict[str, str] = {}
        adopted: list[str] = []
        try:
            waiting: list[_Adoptable] = []
            for provider in self.providers:
                made = await self._create(provider, customer, guard)
                if isinstance(made, _Adoptable):
                    waiting.append(made)  # written last: nothing to undo if another fails
                else:
                    links[provider.name] = made.id
            for candidate in waiting:
                links[candidate.provider.name] = (await self._adopt(candidate, customer)).id
                adopted.append(candidate.provider.name)
        except ProviderSyncError as failure:
            if failure.ambiguous or not compensate:
                raise
            await self._undo_creates(customer, links, adopted, failure)
            raise
        return {name: links[name] for name in self.names}

    async def find_or_create_everywhere(
        self, customer: Customer, *, guard: AdoptionGuard | None = None
    ) -> dict[str, str]:
        """Finish a create: adopt what an earlier attempt made, create what is missing.

        Undoes nothing on failure (the caller's intent stays, see the module docstring).
        """
        links: dict[str, str] = {}
        waiting: list[_Adoptable] = []
        for provider in self.providers:
            found = await provider.customers.find(customer)
            made = found if found is not None else await self._create(provider, customer, guard)
            if isinstance(made, _Adoptable):
                waiting.append(made)
            else:
                links[provider.name] = made.id
        for candidate in waiting:
            links[candidate.provider.name] = (await self._adopt(candidate, customer)).id
        return {name: links[name] for name in self.names}

    async def create_at(
        self, provider: PaymentProvider, customer: Customer, *, guard: AdoptionGuard | None = None
    ) -> ProviderCustomer:
        """Create ``customer`` at one provider, with the same adoption and look-up rules."""
        made = await self._create(provider, customer, guard)
        return await self._adopt(made, customer) if isinstance(made, _Adoptable) else made

    async def _create(
        self, provider: PaymentProvider, customer: Customer, guard: AdoptionGuard | None
    ) -> ProviderCustomer | _Adoptable:
        try:
            return await provider.customers.create(customer, idempotency_key=create_key(customer))
        except ProviderEmailTaken as taken:
            return await self._adoptable(provider, customer, taken, guard)
        except ProviderSyncError as failure:
            if not failure.ambiguous:
                raise
            # The request may have been applied: look before anyone resends it.
            found = await provider.customers.find(customer)
            if found is None:
                raise
            logger.info("found %s customer %s for %s", provider.name, found.id, customer.id)
            return found

    @staticmethod
    async def _adoptable(
        provider: PaymentProvider,
        customer: Customer,
        taken: ProviderEmailTaken,
        guard: AdoptionGuard | None,
    ) -> _Adoptable:
        """Apply the adoption rule to the customer holding the email; raise if it fails."""
        existing = taken.existing
        if guard is None or existing is None or existing.qzpay_customer_id is not None:
            raise taken  # unknown, or another qzpay customer's: never taken over
        owner = await guard.owner(provider.name, existing.id)
        if owner is not None and owner != customer.id:
            raise ProviderEmailTaken(
                f"{provider.name} customer {existing.id} has the email of {customer.id} and is "
                f"linked to qzpay customer {owner}; {provider.name} allows one customer per email",
                provider=provider.name,
                existing=existing,
                operation=taken.operation,
            ) from taken
        return _Adoptable(provider, existing, guard)

    @staticmethod
    async def _adopt(candidate: _Adoptable, customer: Customer) -> ProviderCustomer:
        provider, existing = candidate.provider, candidate.existing
        await candidate.guard.adopting(customer, provider.name, existing.id)
        try:
            adopted = await provider.customers.adopt(
                existing.id, customer, idempotency_key=fresh_key("adopt", existing.id)
            )
        except ProviderSyncError as failure:
            if not failure.ambiguous:
                raise
            found = await provider.customers.find(customer)  # did the marking land?
            if found is None or found.id != existing.id:
                raise
            adopted = found
        logger.info(
            "adopted %s customer %s (created outside qzpay) for %s",
            provider.name,
            existing.id,
            customer.id,
        )
        return adopted

    async def _undo_creates(
        self,
        customer: Customer,
        links: dict[str, str],
        adopted: list[str],
        failure: ProviderSyncError,
    ) -> None:
        """Delete what this create made and release what it adopted; raise
        IncompleteCompensation if some of it could not be undone."""
        failed: list[str] = []
        for provider in self.providers:
            pcid = links.get(provider.name)
            if pcid is None:
                continue
            try:
                if provider.name in adopted:
                    await provider.customers.release(
                        pcid, customer, idempotency_key=fresh_key("release", pcid)
                    )
                else:
                    await provider.customers.delete(pcid, idempotency_key=delete_key(pcid))
            except ProviderSyncError:
                logger.exception(
                    "could not undo the create of %s at %s", customer.id, provider.name
                )
                failed.append(provider.name)
        if failed:
            raise IncompleteCompensation(
                f"{failure.message}; undoing the create at {', '.join(failed)} failed too, "
                "it is left for sync_pending",
                provider=failure.provider,
                operation=failure.operation,
                cause=failure,
                ambiguous=True,
            ) from failure

    async def remove_everywhere(self, customer: Customer) -> None:
        """Undo an unfinished create: delete whatever an earlier attempt made, and release the
        provider customers it adopted (noted in ``customer.provider_customer_ids``)."""
        for provider in self.providers:
            noted = customer.provider_customer_ids.get(provider.name)
            if noted is not None:
                await provider.customers.release(
                    noted, customer, idempotency_key=fresh_key("release", noted)
                )
            found = await provider.customers.find(customer)
            if found is not None and found.id != noted:
                await provider.customers.delete(found.id, idempotency_key=delete_key(found.id))

    async def update_everywhere(self, before: Customer, after: Customer) -> None:
        """Push a change to every linked provider; on a failure, push the old values back.

        If pushing them back fails too, IncompleteCompensation (ambiguous) is raised.
        """
        done: list[PaymentProvider] = []
        for provider in self._linked(after):
            pcid = after.provider_customer_ids[provider.name]
            try:
                await provider.customers.update(
                    pcid, before, after, idempotency_key=update_key(pcid)
                )
            except ProviderSyncError as failure:
                failed: list[str] = []
                for earlier in done:
                    try:
                        earlier_pcid = after.provider_customer_ids[earlier.name]
                        await earlier.customers.update(
                            earlier_pcid, after, before, idempotency_key=update_key(earlier_pcid)
                        )
                    except ProviderSyncError:
                        logger.exception("could not revert %s at %s", after.id, earlier.name)
                        failed.append(earlier.name)
                if failed:
                    raise IncompleteCompensation(
                        f"{failure.message}; reverting the change at {', '.join(failed)} "
                        "failed too, it is left for sync_pending",
                        provider=failure.provider,
                        operation=failure.operation,
                        cause=failure,
                        ambiguous=True,
                    ) from failure
                raise
            done.append(provider)

    async def push_everywhere(
        self, customer: Customer, *, guard: AdoptionGuard | None = None
    ) -> dict[str, str]:
        """Make every provider's copy match the local record (creating missing ones)."""
        links = dict(customer.provider_customer_ids)
        for provider in self.providers:
            pcid = links.get(provider.name)
            remote = None if pcid is None else await provider.customers.retrieve(pcid)
            if remote is None:
                remote = await provider.customers.find(customer) or await self.create_at(
                    provider, customer, guard=guard
                )
                links[provider.name] = remote.id
            seen = provider.customers.merge_remote(customer, remote)
            await provider.customers.update(
                remote.id, seen, customer, idempotency_key=update_key(remote.id)
            )
        return links

    async def delete_everywhere(self, customer: Customer) -> None:
        """Delete every provider copy: the linked one, or one an unlinked create may have made.

        A failure after another provider already deleted its copy is a PartiallyApplied
        (ambiguous: the caller keeps a task that finishes the delete).
        """
        done: list[str] = []
        for provider in self.providers:
            try:
                pcid = customer.provider_customer_ids.get(provider.name)
                if pcid is None:
                    found = await provider.customers.find(customer)
                    if found is None:
                        continue
                    pcid = found.id
                await provider.customers.delete(pcid, idempotency_key=delete_key(pcid))
            except ProviderSyncError as failure:
                if not done or failure.ambiguous:
                    raise
                raise PartiallyApplied(
                    f"{failure.message}; the customer was already deleted at "
                    f"{', '.join(done)}, the delete is left for sync_pending",
                    provider=failure.provider,
                    operation=failure.operation,
                    cause=failure,
                    ambiguous=True,
                ) from failure
            done.append(provider.name)

    def _linked(self, customer: Customer) -> list[PaymentProvider]:
        return [p for p in self.providers if p.name in customer.provider_customer_ids]

    async def close(self) -> None:
        for provider in self.providers:
            await provider.close()
