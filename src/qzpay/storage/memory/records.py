"""One record kind in MemoryStorage (plans, prices, subscriptions): its committed records and
what a transaction stages of it, written once for the three kinds.

A transaction sees its own writes over the committed records (``Committed.seen``), checks an
idempotency key and provider links against both, and stages private copies in a ``Staged`` set
it makes on its first write of the kind; at commit ``Committed.apply`` lands that set, and a
kind's subclass keeps its own indexes in step (``_index``).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import Generic, TypeVar

from qzpay.catalog.models import Plan, Price
from qzpay.errors import ConflictError
from qzpay.records import RecordType
from qzpay.storage.params import CreateKey
from qzpay.subscriptions.models import Subscription

R = TypeVar("R", bound=Plan | Price | Subscription)
Link = tuple[str, str]  # (provider, provider id)


def insert_sorted(ids: list[str], record_id: str) -> None:
    if not ids or ids[-1] < record_id:  # the usual case: a new id is the largest yet
        ids.append(record_id)
    else:
        insort(ids, record_id)


def newest(ids: list[str], before_id: str | None) -> Iterator[str]:
    """Sorted ``ids`` below ``before_id`` (all if None), largest (newest) first."""
    end = len(ids) if before_id is None else bisect_left(ids, before_id)
    return (ids[at] for at in range(end - 1, -1, -1))


class Links:
    """Provider ids of one record kind: (provider, id) -> record, and id -> provider -> record
    (customers, plans, prices and subscriptions each keep one)."""

    __slots__ = ("links", "owners")

    def __init__(self) -> None:
        self.links: dict[Link, str] = {}
        self.owners: dict[str, dict[str, str]] = {}

    def change(self, record_id: str, before: dict[str, str], after: dict[str, str]) -> None:
        """The record's links went from ``before`` to ``after`` (a link another record of the
        same transaction took over stays that record's)."""
        if before == after:
            return
        for provider, remote in before.items():
            if after.get(provider) == remote or self.links.get((provider, remote)) != record_id:
                continue
            del self.links[provider, remote]
            owners = self.owners[remote]
            del owners[provider]
            if not owners:
                del self.owners[remote]
        for provider, remote in after.items():
            if before.get(provider) != remote:
                self.links[provider, remote] = record_id
                self.owners.setdefault(remote, {})[provider] = record_id

    def find(self, remote: str, provider: str | None) -> list[str]:
        owners = self.owners.get(remote, {})
        return [rid for name, rid in owners.items() if provider is None or name == provider]


class Staged(Generic[R]):
    """What one transaction wrote of one record kind (private copies), landed at commit."""

    __slots__ = ("keys", "records")

    def __init__(self) -> None:
        self.records: dict[str, R] = {}
        self.keys: dict[str, tuple[str, str]] = {}  # idempotency key -> (id, fingerprint)


class Committed(Generic[R]):
    """The committed records of one kind: by id, their ids sorted (creation order: ids are
    time-sortable), their provider links and idempotency keys; changed only by ``apply``,
    under the store's commit lock. The other methods answer a transaction, whose own writes
    (``staged``, None before its first write of the kind) stand over these; ``insert`` and
    ``update`` return the staged set, made on that first write."""

    __slots__ = ("copy", "ids", "keys", "links", "links_of", "name", "records")

    def __init__(self, record_type: RecordType, copy: Callable[[R], R]) -> None:
        self.name = record_type.name
        self.links_of: Callable[[R], dict[str, str]] = attrgetter(record_type.links_field)
        self.copy: Callable[[R], R] = copy  # how a record crosses the store's boundary
        self.records: dict[str, R] = {}
        self.ids: list[str] = []
        self.links = Links()
        self.keys: dict[str, tuple[str, str]] = {}

    def apply(self, staged: Staged[R]) -> None:
        links = self.links_of
        for record_id, new in staged.records.items():
            old = self.records.get(record_id)
            self.records[record_id] = new
            if old is None:
                insert_sorted(self.ids, record_id)
            self.links.change(record_id, {} if old is None else links(old), links(new))
            self._index(record_id, old, new)
        self.keys.update(staged.keys)

    def _index(self, record_id: str, old: R | None, new: R) -> None:
        """Keep the kind's own indexes in step with a landed record (``old`` None: new)."""

    # -- a transaction's view: its own writes over the committed records ---------------------
    def seen(self, staged: Staged[R] | None, record_id: str) -> R | None:
        """The record as the transaction sees it: its own write, else the committed one."""
        found = None if staged is None else staged.records.get(record_id)
        return self.records.get(record_id) if found is None else found

    def read(self, staged: Staged[R] | None, record_id: str) -> R | None:
        """A copy of the record as the transaction sees it (``seen``, inlined: a hot path)."""
        found = None if staged is None else staged.records.get(record_id)
        if found is None:
            found = self.records.get(record_id)
        return None if found is None else self.copy(found)

    def _key(self, staged: Staged[R] | None, idempotency_key: str) -> tuple[str, str] | None:
        found = None if staged is None else staged.keys.get(idempotency_key)
        return self.keys.get(idempotency_key) if found is None else found

    def idempotent(self, staged: Staged[R] | None, idempotency_key: str) -> tuple[R, str] | None:
        """The record created with ``idempotency_key`` and its request fingerprint."""
        found = self._key(staged, idempotency_key)
        if found is None:
            return None
        record = self.seen(staged, found[0])
        assert record is not None
        return self.copy(record), found[1]

    def _link_owner(self, staged: Staged[R] | None, link: Link) -> str | None:
        provider, remote = link
        records = {} if staged is None else staged.records
        links = self.links_of
        for record_id, record in records.items():
            if links(record).get(provider) == remote:
                return record_id
        owner = self.links.links.get(link)
        # A committed owner this transaction rewrote no longer holds it (checked just above).
        return None if owner in records else owner

    def _check_links(
        self, staged: Staged[R] | None, record_id: str, old: dict[str, str], new: dict[str, str]
    ) -> None:
        for provider, remote in new.items():
            if old.get(provider) == remote:
                continue
            owner = self._link_owner(staged, (provider, remote))
            if owner is not None and owner != record_id:
                what = self.name
                raise ConflictError(
                    f"{provider} {what} {remote!r} is already linked to {what} {owner}",
                    code="provider_id_taken",
                )

    def insert(
        self,
        staged: Staged[R] | None,
        record: R,
        key: CreateKey | None,
        taken: Callable[[R], None] | None = None,
    ) -> Staged[R]:
        """Stage a copy of a new record after the checks, in this order: the idempotency key,
        ``taken`` (the kind's unique key), its provider links. The staged set: ``staged``, or
        a new one holding the copy when it was None."""
        if key is not None and self._key(staged, key.idempotency_key) is not None:
            raise ConflictError("idempotency key already used", code="idempotency_key_reused")
        if taken is not None:
            taken(record)
        self._check_links(staged, record.id, {}, self.links_of(record))
        staged = Staged() if staged is None else staged
        if key is not None:
            staged.keys[key.idempotency_key] = (record.id, key.request_fingerprint or "")
        staged.records[record.id] = self.copy(record)
        return staged

    def update(
        self,
        staged: Staged[R] | None,
        before: R,
        after: R,
        taken: Callable[[R], None] | None = None,
    ) -> Staged[R]:
        """Stage a copy of ``after`` over ``before`` after the checks: ``taken``, then its new
        provider links. The staged set, as ``insert``."""
        if taken is not None:
            taken(after)
        links = self.links_of
        self._check_links(staged, after.id, links(before), links(after))
        staged = Staged() if staged is None else staged
        staged.records[after.id] = self.copy(after)
        return staged
