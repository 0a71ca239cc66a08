"""Customer ids by filter, each list kept sorted, so that pages are found without a scan.

Ids are time-sortable (``qzpay.ids``): ascending id order is creation order, and newest first
is a list read backwards. Each customer is in one of two families of lists, the live ones or
the deleted ones, and there in the list of all ids, the list of its email key and the list of
each of its metadata pairs. A write touches only the lists of what it changed.

A filter with one condition is one list per family (two with ``include_deleted``, disjoint):
the total is their length, and a page at any offset a slice, O(log n + page). With several
conditions the smallest list is walked and its customers checked against the rest,
O(smallest list).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar

from qzpay.customers.models import Customer
from qzpay.storage.base import CustomerFilter, email_key

Pair = tuple[str, str]
K = TypeVar("K")
_NONE: list[str] = []


def _insert(ids: list[str], customer_id: str) -> None:
    if not ids or ids[-1] < customer_id:  # the usual case: a new id is the largest yet
        ids.append(customer_id)
    else:
        insort(ids, customer_id)


def _delete(ids: list[str], customer_id: str) -> None:
    at = bisect_left(ids, customer_id)
    if at < len(ids) and ids[at] == customer_id:
        del ids[at]


def _add(lists: dict[K, list[str]], key: K, customer_id: str) -> None:
    ids = lists.get(key)
    if ids is None:
        lists[key] = [customer_id]
    else:
        _insert(ids, customer_id)


def _remove(lists: dict[K, list[str]], key: K, customer_id: str) -> None:
    ids = lists.get(key)
    if ids is not None:
        _delete(ids, customer_id)
        if not ids:
            del lists[key]


class _Family:
    """Sorted ids of a set of customers: all of them, by email key, by metadata pair."""

    __slots__ = ("by_email", "by_pair", "ids")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.by_email: dict[str, list[str]] = {}
        self.by_pair: dict[Pair, list[str]] = {}

    def add(self, customer_id: str, email: str, pairs: Iterable[Pair]) -> None:
        _insert(self.ids, customer_id)
        _add(self.by_email, email, customer_id)
        for pair in pairs:
            _add(self.by_pair, pair, customer_id)

    def remove(self, customer_id: str, email: str, pairs: Iterable[Pair]) -> None:
        _delete(self.ids, customer_id)
        _remove(self.by_email, email, customer_id)
        for pair in pairs:
            _remove(self.by_pair, pair, customer_id)

    def lists(self, email: str | None, pairs: Iterable[Pair]) -> list[list[str]]:
        """One list per condition (empty where nothing matches it)."""
        found = [self.by_pair.get(pair, _NONE) for pair in pairs]
        if email is not None:
            found.append(self.by_email.get(email, _NONE))
        return found


def matches(customer: Customer, filters: CustomerFilter) -> bool:
    if customer.deleted_at is not None and not filters.include_deleted:
        return False
    if filters.email is not None and email_key(customer.email) != email_key(filters.email):
        return False
    metadata = customer.metadata
    return all(metadata.get(k) == v for k, v in filters.metadata.items())


def _split(a: list[str], b: list[str], count: int) -> int:
    """How many of the ``count`` smallest ids of a ∪ b (disjoint, each sorted) are in ``a``."""
    low, high = max(0, count - len(b)), min(count, len(a))
    while low < high:
        middle = (low + high) // 2
        if a[middle] < b[count - middle - 1]:
            low = middle + 1
        else:
            high = middle
    return low


def _newest(ids: list[str], end: int) -> Iterator[str]:
    return (ids[at] for at in range(end - 1, -1, -1))


class CustomerIndex:
    """The live and the deleted family; changed only under the store's commit lock."""

    def __init__(self) -> None:
        self.live = _Family()
        self.deleted = _Family()

    def _family(self, customer: Customer) -> _Family:
        return self.live if customer.deleted_at is None else self.deleted

    def change(self, customer_id: str, old: Customer | None, new: Customer) -> None:
        """Re-file ``customer_id`` from ``old``'s lists (None: a new customer) to ``new``'s."""
        family = self._family(new)
        email = email_key(new.email)
        if old is None:
            family.add(customer_id, email, new.metadata.items())
            return
        old_email = email_key(old.email)
        if self._family(old) is not family:
            self._family(old).remove(customer_id, old_email, old.metadata.items())
            family.add(customer_id, email, new.metadata.items())
            return
        if old_email != email:
            _remove(family.by_email, old_email, customer_id)
            _add(family.by_email, email, customer_id)
        before, after = old.metadata, new.metadata
        if before != after:
            for pair in before.items():
                if after.get(pair[0]) != pair[1]:
                    _remove(family.by_pair, pair, customer_id)
            for pair in after.items():
                if before.get(pair[0]) != pair[1]:
                    _add(family.by_pair, pair, customer_id)

    def _pick(self, filters: CustomerFilter) -> tuple[list[str], list[str], bool]:
        """Two disjoint sorted lists, live and deleted, holding every match between them (the
        smallest such pair), and whether every id in them matches."""
        deleted = filters.include_deleted
        email = None if filters.email is None else email_key(filters.email)
        pairs = filters.metadata.items()
        if email is None and not pairs:
            return self.live.ids, self.deleted.ids if deleted else _NONE, True
        live_lists = self.live.lists(email, pairs)
        dead_lists = self.deleted.lists(email, pairs) if deleted else [_NONE] * len(live_lists)
        best = min(range(len(live_lists)), key=lambda i: len(live_lists[i]) + len(dead_lists[i]))
        return live_lists[best], dead_lists[best], len(live_lists) == 1

    def page(
        self,
        filters: CustomerFilter,
        customers: Mapping[str, Customer],
        *,
        limit: int,
        offset: int,
    ) -> tuple[list[str], int]:
        """The ids of one page, newest first, and the number of matches."""
        a, b, exact = self._pick(filters)
        if not exact:
            walk = heapq.merge(reversed(a), reversed(b), reverse=True) if b else reversed(a)
            matched = [cid for cid in walk if matches(customers[cid], filters)]
            return matched[offset : offset + max(0, limit)], len(matched)
        total = len(a) + len(b)
        high = total - offset
        if high <= 0 or limit <= 0:
            return [], total
        low = max(0, high - limit)
        if b:
            a_low, a_high = _split(a, b, low), _split(a, b, high)
            found = a[a_low:a_high] + b[low - a_low : high - a_high]
            found.sort(reverse=True)
        else:
            found = a[low:high]
            found.reverse()
        return found, total

    def scan(
        self,
        filters: CustomerFilter,
        customers: Mapping[str, Customer],
        *,
        before_id: str | None,
        limit: int,
    ) -> list[str]:
        """Up to ``limit`` matching ids below ``before_id``, newest first."""
        if limit <= 0:
            return []
        a, b, exact = self._pick(filters)
        a_end = len(a) if before_id is None else bisect_left(a, before_id)
        b_end = len(b) if before_id is None else bisect_left(b, before_id)
        if exact:
            found = a[max(0, a_end - limit) : a_end] + b[max(0, b_end - limit) : b_end]
            found.sort(reverse=True)
            return found[:limit]
        walk = heapq.merge(_newest(a, a_end), _newest(b, b_end), reverse=True)
        out: list[str] = []
        for customer_id in walk:
            if matches(customers[customer_id], filters):
                out.append(customer_id)
                if len(out) == limit:
                    break
        return out
