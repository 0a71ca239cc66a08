"""The console's shared page pieces: the pager's links and the statuses of a refused change."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from qzpay.admin import views
from qzpay.errors import ConflictError, NotFoundError, ProviderSyncError


@dataclass(frozen=True)
class Row:
    id: str


def test_pager_links_older_rows_only_when_the_batch_ran_past_the_page() -> None:
    kept = {"status": "active"}
    full = views.Pager.of([Row("c"), Row("b"), Row("a")], 2, kept, "")
    assert [r.id for r in full.rows] == ["c", "b"]
    assert full.next_query == {"status": "active", "before": "b"}
    assert full.first_query is None  # already at the newest
    last = views.Pager.of([Row("a")], 2, kept, "b")
    assert last.next_query is None
    assert last.first_query == kept
    assert views.Pager.of([], 2, kept, "zzz").next_query is None


async def _raise(exc: Exception) -> None:
    raise exc


async def test_refusal_maps_errors_to_statuses_and_lets_not_found_through() -> None:
    async def done() -> None:
        return None

    assert await views.refusal(done()) is None
    conflict = await views.refusal(_raise(ConflictError("taken")))
    assert conflict is not None
    assert (conflict.status, conflict.error) == (409, "taken")
    failed = await views.refusal(
        _raise(ProviderSyncError("provider down", provider="stripe", operation="archive"))
    )
    assert failed is not None
    assert failed.status == 502
    with pytest.raises(NotFoundError):
        await views.refusal(_raise(NotFoundError("gone")))
