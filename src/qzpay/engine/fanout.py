"""The fan-out of one resource's provider work across several providers, with its failure rules.

:class:`Fanout` is a resource's :class:`~qzpay.engine.resource.Remote`: it calls each
provider's adapter for the resource (``lambda provider: provider.customers``) in order. Nothing
here touches storage; the strategies record intents and tasks before calling it, and commit
after. The rules, the same for every resource:

* Never resend blindly after an ambiguous failure: look first (by the qzpay id stored at the
  provider, :meth:`Adapter.find`), and adopt what an earlier attempt made.
* After a clean (non-ambiguous) failure, undo what the other providers did in the same call
  (compensation). After an ambiguous one, undo nothing: the caller keeps its intent, and
  ``sync_pending`` finishes or undoes the whole create at every provider (re-creating something
  that was undone would reuse its idempotency key, and a provider may answer that with the
  deleted object).
* Idempotency keys are per request to one provider object (:mod:`qzpay.engine.keys`).
* A resource may answer a clean create failure by *claiming* an object that already exists at
  that provider (:class:`CreateConflicts`; customers: one customer per email at MercadoPago).
  A claim is written after every other provider succeeded, and undoing the create gives it
  back instead of deleting it; the links an unfinished create notes are its claims.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Generic, Protocol, TypeVar

from qzpay.engine import keys
from qzpay.engine.resource import Links, R, R_contra, Resource
from qzpay.errors import ProviderSyncError

logger = logging.getLogger("qzpay.sync")


class IncompleteCompensation(ProviderSyncError):
    """A provider failed and undoing what the others did also failed; a task will finish it."""


class PartiallyApplied(ProviderSyncError):
    """A change that cannot be undone (a delete) was applied at some providers before another
    failed; a task finishes it forward."""


Step = tuple[str, Callable[[], Awaitable[object]]]
"""A compensating call at one provider: (provider name, the call)."""


async def _compensate(
    steps: Iterable[Step], failure: ProviderSyncError, action: str, undoing: str
) -> None:
    """Undo what other providers did before ``failure``, one step each, in order. A step that
    fails is logged (``could not {action} at {provider}``) and the rest still run; then, if
    any failed, IncompleteCompensation (ambiguous) names them: a task finishes the job."""
    failed: list[str] = []
    for name, step in steps:
        try:
            await step()
        except ProviderSyncError:
            logger.exception("could not %s at %s", action, name)
            failed.append(name)
    if failed:
        raise IncompleteCompensation(
            f"{failure.message}; {undoing} at {', '.join(failed)} failed too, "
            "it is left for sync_pending",
            provider=failure.provider,
            operation=failure.operation,
            cause=failure,
            ambiguous=True,
        ) from failure


class Copy(Protocol):
    """A provider's copy of a record, converted away from any SDK type."""

    @property
    def id(self) -> str: ...


P = TypeVar("P", bound=Copy)
P_co = TypeVar("P_co", bound=Copy, covariant=True)


class Adapter(Protocol[R, P]):
    """One provider's calls for one resource. Every failing call raises ProviderSyncError,
    with ``ambiguous`` set when the provider may have applied it; mutating calls take the
    idempotency key of the request."""

    async def create(self, record: R, /, *, idempotency_key: str) -> P: ...

    async def update(
        self, provider_id: str, before: R, after: R, /, *, idempotency_key: str
    ) -> P: ...

    async def delete(self, provider_id: str, /, *, idempotency_key: str) -> None:
        """Delete; an object already gone counts as success."""
        ...

    async def retrieve(self, provider_id: str, /) -> P | None: ...

    async def find(self, record: R, /) -> P | None:
        """The provider object carrying ``record.id`` as its qzpay id, if any (strongly
        consistent: it resolves an ambiguous create)."""
        ...

    def merge_remote(self, local: R, remote: P, /) -> R:
        """``local`` with the provider's values for the fields it holds."""
        ...


class Named(Protocol):
    """A provider, as the fan-out needs it: its name (its adapters are got from it)."""

    @property
    def name(self) -> str: ...


V = TypeVar("V", bound=Named)


class Claim(Protocol[P_co]):
    """An object existing at one provider that a create takes over instead of making one."""

    async def take(self) -> P_co:
        """Write the record over the claimed object (after every other provider succeeded)."""
        ...


class CreateConflicts(Protocol[R_contra, P_co]):
    """A resource's answer to a create refused cleanly at a provider, and its undo."""

    async def claim(
        self, provider: str, record: R_contra, failure: ProviderSyncError
    ) -> Claim[P_co] | None:
        """A claim on an existing object instead of the create, or None to raise ``failure``
        (it may raise a more precise error instead)."""
        ...

    async def give_back(self, provider: str, provider_id: str, record: R_contra) -> None:
        """Undo a claim made for an unfinished create of ``record``."""
        ...


async def found_after(failure: ProviderSyncError, lookup: Awaitable[P | None]) -> P:
    """What ``lookup`` finds after the ambiguous create ``failure`` (the request may have
    been applied); ``failure`` itself when it finds nothing, or when the look-up fails: a
    look-up failure leaves the create as ambiguous as it was, never a clean failure (the
    caller would then drop its intent and orphan what may have landed)."""
    try:
        found = await lookup
    except ProviderSyncError as lookup_failure:
        raise failure from lookup_failure
    if found is None:
        raise failure
    return found


class Fanout(Generic[R, P]):
    """One resource's calls across the configured providers, in order (see the module)."""

    def __init__(
        self,
        resource: Resource[R],
        providers: Sequence[V],
        adapter: Callable[[V], Adapter[R, P]],
        *,
        create_key: Callable[[R], str],
        conflicts: CreateConflicts[R, P] | None = None,
    ) -> None:
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"two providers share a name: {names}")
        self._resource = resource
        self._adapters = {p.name: adapter(p) for p in providers}
        self._create_key = create_key
        self._conflicts = conflicts

    @property
    def names(self) -> list[str]:
        return list(self._adapters)

    @property
    def several(self) -> bool:
        return len(self._adapters) > 1

    def _what(self, record: R) -> str:
        return f"{self._resource.name} {record.id}"

    # -- creates ------------------------------------------------------------------------------
    async def create(self, record: R, *, compensate: bool = True) -> Links:
        """Create at every provider (claiming where the resource allows); the links.

        On a clean failure, what the other providers did is undone (``compensate``) and the
        failing provider's ProviderSyncError re-raised; if the undo fails too, an
        IncompleteCompensation (ambiguous) is raised instead. On an ambiguous failure nothing
        is undone. Pass ``compensate=False`` for a record already committed locally (its
        create is only ever finished).
        """
        links: Links = {}
        claimed: list[str] = []
        try:
            waiting: list[tuple[str, Claim[P]]] = []
            for name in self._adapters:
                made = await self._create(name, record)
                if isinstance(made, tuple):
                    waiting.append(made)  # written last: nothing to undo if another fails
                else:
                    links[name] = made.id
            for name, claim in waiting:
                links[name] = (await claim.take()).id
                claimed.append(name)
        except ProviderSyncError as failure:
            if failure.ambiguous or not compensate:
                raise
            await self._undo_creates(record, links, claimed, failure)
            raise
        return {name: links[name] for name in self._adapters}

    async def finish_create(self, record: R) -> Links:
        """Finish a create: adopt what an earlier attempt made, create what is missing.

        Undoes nothing on failure (the caller's intent stays).
        """
        links: Links = {}
        waiting: list[tuple[str, Claim[P]]] = []
        for name, adapter in self._adapters.items():
            found = await adapter.find(record)
            made = found if found is not None else await self._create(name, record)
            if isinstance(made, tuple):
                waiting.append(made)
            else:
                links[name] = made.id
        for name, claim in waiting:
            links[name] = (await claim.take()).id
        return {name: links[name] for name in self._adapters}

    async def create_at(self, provider: str, record: R) -> P:
        """Create ``record`` at one provider, with the same claim and look-up rules."""
        made = await self._create(provider, record)
        return await made[1].take() if isinstance(made, tuple) else made

    async def _create(self, name: str, record: R) -> P | tuple[str, Claim[P]]:
        adapter = self._adapters[name]
        try:
            return await adapter.create(record, idempotency_key=self._create_key(record))
        except ProviderSyncError as failure:
            if not failure.ambiguous:
                if self._conflicts is None:
                    raise
                claim = await self._conflicts.claim(name, record, failure)
                if claim is None:
                    raise
                return name, claim
            # The request may have been applied: look before anyone resends it.
            found = await found_after(failure, adapter.find(record))
            logger.info("found %s copy %s of %s", name, found.id, self._what(record))
            return found

    async def _undo_creates(
        self, record: R, links: Links, claimed: list[str], failure: ProviderSyncError
    ) -> None:
        """Delete what this create made and give back what it claimed; raise
        IncompleteCompensation if some of it could not be undone."""
        steps: list[Step] = []
        for name, adapter in self._adapters.items():
            provider_id = links.get(name)
            if provider_id is None:
                continue
            if name in claimed and self._conflicts is not None:
                steps.append((name, partial(self._conflicts.give_back, name, provider_id, record)))
            else:
                key = keys.delete_key(provider_id)
                steps.append((name, partial(adapter.delete, provider_id, idempotency_key=key)))
        what = self._what(record)
        await _compensate(steps, failure, f"undo the create of {what}", "undoing the create")

    async def remove(self, record: R) -> None:
        """Undo an unfinished create: delete whatever an earlier attempt made, and give back
        what it claimed (the links noted on ``record``)."""
        noted_links = self._resource.links(record)
        for name, adapter in self._adapters.items():
            noted = noted_links.get(name)
            if noted is not None and self._conflicts is not None:
                await self._conflicts.give_back(name, noted, record)
            found = await adapter.find(record)
            if found is not None and found.id != noted:
                await adapter.delete(found.id, idempotency_key=keys.delete_key(found.id))

    # -- changes ------------------------------------------------------------------------------
    async def update(self, before: R, after: R) -> None:
        """Push a change to every linked provider; on a failure, push the old values back.

        If pushing them back fails too, IncompleteCompensation (ambiguous) is raised.
        """
        links = self._resource.links(after)
        done: list[str] = []
        for name, adapter in self._adapters.items():
            provider_id = links.get(name)
            if provider_id is None:
                continue
            try:
                await adapter.update(
                    provider_id, before, after, idempotency_key=keys.update_key(provider_id)
                )
            except ProviderSyncError as failure:
                await self._revert(before, after, done, failure)
                raise
            done.append(name)

    async def _revert(
        self, before: R, after: R, done: list[str], failure: ProviderSyncError
    ) -> None:
        links = self._resource.links(after)
        steps: list[Step] = [
            (
                name,
                partial(
                    self._adapters[name].update,
                    links[name],
                    after,
                    before,
                    idempotency_key=keys.update_key(links[name]),
                ),
            )
            for name in done
        ]
        what = self._what(after)
        await _compensate(steps, failure, f"revert {what}", "reverting the change")

    async def push(self, record: R) -> Links:
        """Make every provider's copy match the local record (creating missing ones)."""
        links = dict(self._resource.links(record))
        for name, adapter in self._adapters.items():
            provider_id = links.get(name)
            remote = None if provider_id is None else await adapter.retrieve(provider_id)
            if remote is None:
                remote = await adapter.find(record) or await self.create_at(name, record)
                links[name] = remote.id
            seen = adapter.merge_remote(record, remote)
            await adapter.update(
                remote.id, seen, record, idempotency_key=keys.update_key(remote.id)
            )
        return links

    async def delete(self, record: R) -> None:
        """Delete every provider copy: the linked one, or one an unlinked create may have made.

        A failure after another provider already deleted its copy is a PartiallyApplied
        (ambiguous: the caller keeps a task that finishes the delete).
        """
        links = self._resource.links(record)
        done: list[str] = []
        for name, adapter in self._adapters.items():
            try:
                provider_id = links.get(name)
                if provider_id is None:
                    found = await adapter.find(record)
                    if found is None:
                        continue
                    provider_id = found.id
                await adapter.delete(provider_id, idempotency_key=keys.delete_key(provider_id))
            except ProviderSyncError as failure:
                if not done or failure.ambiguous:
                    raise
                raise PartiallyApplied(
                    f"{failure.message}; the {self._resource.name} was already deleted at "
                    f"{', '.join(done)}, the delete is left for sync_pending",
                    provider=failure.provider,
                    operation=failure.operation,
                    cause=failure,
                    ambiguous=True,
                ) from failure
            done.append(name)
