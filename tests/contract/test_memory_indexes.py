"""Look-ups stay right as customers change (issue 16).

Written for the in-memory backend's indexes (email, metadata pairs, provider ids, id order), but
these are behaviours of the storage contract, so they run on every backend: a change moves a
customer between filters at once, a rolled-back change moves nothing, and a page at any offset
of any filter is the matching slice of the newest-first order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from qzpay import Billing, Customer
from qzpay.errors import ConflictError
from qzpay.storage import open_storage
from tests.contract.test_atomicity import EventLogFailure, FailingEventLog
from tests.factories import create_customer


async def _ids(billing: Billing, **filters: object) -> list[str]:
    """Every match, newest first, fetched by offset pages of 3 (totals checked on the way)."""
    first = await billing.customers.list(limit=3, **filters)  # type: ignore[arg-type]
    ids = [c.id for c in first.data]
    while len(ids) < first.total:
        page = await billing.customers.list(limit=3, offset=len(ids), **filters)  # type: ignore[arg-type]
        assert page.total == first.total
        assert page.data, "a page before the total was reached is empty"
        ids += [c.id for c in page.data]
    return ids


async def _walked(billing: Billing, **filters: object) -> list[str]:
    return [c.id async for c in billing.customers.iterate(page_size=2, **filters)]  # type: ignore[arg-type]


class TestMetadataIndex:
    async def test_a_changed_value_leaves_the_old_pair(self, billing: Billing) -> None:
        customer = await create_customer(billing, metadata={"plan": "pro", "seq": "1"})
        await billing.customers.update(customer.id, metadata={"plan": "enterprise"})
        assert await _ids(billing, metadata={"plan": "pro"}) == []
        assert await _ids(billing, metadata={"plan": "enterprise"}) == [customer.id]
        assert await _ids(billing, metadata={"seq": "1"}) == [customer.id]
        assert await _walked(billing, metadata={"plan": "pro"}) == []

    async def test_a_removed_key_leaves_its_pair_and_a_value_can_come_back(
        self, billing: Billing
    ) -> None:
        customer = await create_customer(billing, metadata={"plan": "pro", "team": "a"})
        await billing.customers.update(customer.id, metadata={"team": None})
        assert await _ids(billing, metadata={"team": "a"}) == []
        assert await _ids(billing, metadata={"plan": "pro", "team": "a"}) == []
        await billing.customers.update(customer.id, metadata={"team": "b"})
        await billing.customers.update(customer.id, metadata={"team": "a"})
        assert await _ids(billing, metadata={"team": "a"}) == [customer.id]  # once, not twice
        assert await _ids(billing, metadata={"team": "b"}) == []

    async def test_every_pair_must_match(self, billing: Billing) -> None:
        both = await create_customer(billing, metadata={"plan": "pro", "team": "a"})
        await create_customer(billing, metadata={"plan": "pro", "team": "b"})
        await create_customer(billing, metadata={"plan": "free", "team": "a"})
        assert await _ids(billing, metadata={"plan": "pro", "team": "a"}) == [both.id]
        assert await _walked(billing, metadata={"plan": "pro", "team": "a"}) == [both.id]


class TestEmailIndex:
    async def test_an_email_change_moves_the_customer(self, billing: Billing) -> None:
        customer = await create_customer(billing, email="old@example.com")
        await billing.customers.update(customer.id, email="New@Example.com")
        assert await _ids(billing, email="old@example.com") == []
        assert await _ids(billing, email="new@example.com") == [customer.id]
        assert await _ids(billing, email="NEW@EXAMPLE.COM") == [customer.id]
        assert await _walked(billing, email="new@EXAMPLE.com") == [customer.id]

    async def test_a_change_of_case_only_keeps_one_entry(self, billing: Billing) -> None:
        customer = await create_customer(billing, email="ana@example.com")
        await billing.customers.update(customer.id, email="ANA@example.com")
        page = await billing.customers.list(email="Ana@Example.com")
        assert [c.id for c in page.data] == [customer.id]
        assert page.total == 1
        assert page.data[0].email == "ANA@example.com"

    async def test_emails_that_differ_in_case_share_one_filter(self, billing: Billing) -> None:
        lower = await create_customer(billing, email="same@example.com")
        upper = await create_customer(billing, email="SAME@example.com")
        assert await _ids(billing, email="Same@Example.Com") == [upper.id, lower.id]

    async def test_email_and_metadata_together(self, billing: Billing) -> None:
        wanted = await create_customer(billing, email="x@example.com", metadata={"plan": "pro"})
        await create_customer(billing, email="x@example.com", metadata={"plan": "free"})
        await create_customer(billing, email="y@example.com", metadata={"plan": "pro"})
        assert await _ids(billing, email="X@example.com", metadata={"plan": "pro"}) == [wanted.id]


class TestProviderIndex:
    async def test_link_unlink_and_link_elsewhere(self, billing: Billing) -> None:
        first = await create_customer(billing)
        second = await create_customer(billing)
        await billing.customers.link(first.id, provider="stripe", provider_customer_id="cus_a")
        found = await billing.customers.get_by_external_id("cus_a")
        assert found is not None
        assert found.id == first.id
        with pytest.raises(ConflictError):
            await billing.customers.link(second.id, provider="stripe", provider_customer_id="cus_a")
        await billing.customers.unlink(first.id, provider="stripe")
        assert await billing.customers.get_by_external_id("cus_a") is None
        await billing.customers.link(second.id, provider="stripe", provider_customer_id="cus_a")
        found = await billing.customers.get_by_external_id("cus_a", provider="stripe")
        assert found is not None
        assert found.id == second.id

    async def test_one_id_at_two_providers(self, billing: Billing) -> None:
        one = await create_customer(billing)
        other = await create_customer(billing)
        await billing.customers.link(one.id, provider="stripe", provider_customer_id="shared")
        await billing.customers.link(
            other.id, provider="mercadopago", provider_customer_id="shared"
        )
        at_stripe = await billing.customers.get_by_external_id("shared", provider="stripe")
        at_mp = await billing.customers.get_by_external_id("shared", provider="mercadopago")
        assert (at_stripe and at_stripe.id, at_mp and at_mp.id) == (one.id, other.id)
        with pytest.raises(ConflictError):
            await billing.customers.get_by_external_id("shared")
        await billing.customers.unlink(one.id, provider="stripe")
        only = await billing.customers.get_by_external_id("shared")
        assert only is not None
        assert only.id == other.id


class TestDeletedCustomers:
    async def test_pages_with_and_without_the_deleted(self, billing: Billing) -> None:
        made: list[Customer] = []
        for i in range(9):
            made.append(await create_customer(billing, metadata={"plan": "pro", "n": str(i % 2)}))
        for i in (1, 4, 5, 8):
            await billing.customers.delete(made[i].id)
        newest_first = [c.id for c in reversed(made)]
        deleted = {made[i].id for i in (1, 4, 5, 8)}
        live = [cid for cid in newest_first if cid not in deleted]
        assert await _ids(billing) == live
        assert await _ids(billing, include_deleted=True) == newest_first
        assert await _ids(billing, metadata={"plan": "pro"}) == live
        assert await _ids(billing, metadata={"plan": "pro"}, include_deleted=True) == newest_first
        evens = [c.id for c in reversed(made) if c.metadata["n"] == "0"]
        assert (
            await _ids(billing, metadata={"plan": "pro", "n": "0"}, include_deleted=True) == evens
        )
        assert await _ids(billing, metadata={"n": "0"}) == [
            cid for cid in evens if cid not in deleted
        ]
        assert await _walked(billing, include_deleted=True) == newest_first
        assert await _walked(billing, metadata={"plan": "pro"}) == live
        assert (
            await _walked(billing, metadata={"plan": "pro", "n": "0"}, include_deleted=True)
            == evens
        )

    async def test_every_offset_and_limit_is_a_slice(self, billing: Billing) -> None:
        made = [await create_customer(billing, metadata={"plan": "pro"}) for _ in range(7)]
        await billing.customers.delete(made[2].id)
        await billing.customers.delete(made[3].id)
        everyone = [c.id for c in reversed(made)]
        for offset in range(9):
            for limit in (1, 2, 5):
                page = await billing.customers.list(
                    limit=limit, offset=offset, metadata={"plan": "pro"}, include_deleted=True
                )
                assert [c.id for c in page.data] == everyone[offset : offset + limit]
                assert page.total == 7


@pytest.fixture
async def failing(storage_url: str) -> AsyncIterator[tuple[Billing, FailingEventLog]]:
    storage = FailingEventLog(open_storage(storage_url))
    async with Billing(storage=storage) as billing:
        yield billing, storage


class TestRollbackLeavesLookupsAlone:
    async def test_failed_changes_move_nothing(
        self, failing: tuple[Billing, FailingEventLog]
    ) -> None:
        billing, storage = failing
        customer = await create_customer(
            billing, email="keep@example.com", metadata={"plan": "pro"}
        )
        await billing.customers.link(customer.id, provider="stripe", provider_customer_id="cus_k")
        storage.fail = True
        with pytest.raises(EventLogFailure):
            await billing.customers.update(
                customer.id, email="gone@example.com", metadata={"plan": "free"}
            )
        with pytest.raises(EventLogFailure):
            await billing.customers.unlink(customer.id, provider="stripe")
        with pytest.raises(EventLogFailure):
            await billing.customers.delete(customer.id)
        with pytest.raises(EventLogFailure):
            await create_customer(billing, email="keep@example.com", metadata={"plan": "pro"})
        storage.fail = False
        assert await _ids(billing, email="keep@example.com") == [customer.id]
        assert await _ids(billing, email="gone@example.com") == []
        assert await _ids(billing, metadata={"plan": "pro"}) == [customer.id]
        assert await _ids(billing, metadata={"plan": "free"}) == []
        assert await _ids(billing) == [customer.id]
        found = await billing.customers.get_by_external_id("cus_k")
        assert found is not None
        assert found.id == customer.id
        # The link is still taken, and the store still accepts the change that failed.
        other = await create_customer(billing)
        with pytest.raises(ConflictError):
            await billing.customers.link(other.id, provider="stripe", provider_customer_id="cus_k")
        await billing.customers.update(customer.id, metadata={"plan": "free"})
        assert await _ids(billing, metadata={"plan": "free"}) == [customer.id]
        assert await _ids(billing, metadata={"plan": "pro"}) == []
