"""The engine's fan-out rules, for a resource that is not a customer (in-memory adapters)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

import pytest
from pydantic import BaseModel, ConfigDict

from qzpay.engine.fanout import Claim, Fanout
from qzpay.engine.keys import create_key, delete_key
from qzpay.engine.resource import Resource
from qzpay.errors import ProviderSyncError
from qzpay.storage.base import Storage, Transaction


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    provider_plan_ids: dict[str, str] = {}
    updated_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    deleted_at: datetime | None = None

    def changed_fields(self, other: Self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if getattr(other, k) != v}


class Plans(Resource[Plan]):
    name = "plan"
    links_field = "provider_plan_ids"
    model = Plan

    async def get(self, tx: Transaction, record_id: str) -> Plan | None:
        raise NotImplementedError

    async def get_committed(self, storage: Storage, record_id: str) -> Plan | None:
        raise NotImplementedError

    async def insert(
        self, tx: Transaction, record: Plan, *, idempotency_key: str | None, fingerprint: str | None
    ) -> None:
        raise NotImplementedError

    async def update(self, tx: Transaction, before: Plan, after: Plan) -> None:
        raise NotImplementedError

    async def find_created(self, tx: Transaction, idempotency_key: str) -> tuple[Plan, str] | None:
        raise NotImplementedError


@dataclass(frozen=True)
class Copy:
    id: str
    qzpay_id: str


@dataclass
class Adapter:
    """One provider's plans; ``fail`` makes the next create fail (ambiguous or not), and
    ``lands`` says whether that failed create was applied anyway."""

    prefix: str
    copies: dict[str, Copy] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    fail: bool | None = None
    lands: bool = False

    async def create(self, record: Plan, /, *, idempotency_key: str) -> Copy:
        self.calls.append(("create", idempotency_key))
        copy = Copy(f"{self.prefix}_{len(self.copies) + 1}", record.id)
        if self.fail is not None:
            ambiguous, self.fail = self.fail, None
            if self.lands:
                self.copies[copy.id] = copy
            raise ProviderSyncError(
                "refused", provider=self.prefix, operation="create_plan", ambiguous=ambiguous
            )
        self.copies[copy.id] = copy
        return copy

    async def update(
        self, provider_id: str, before: Plan, after: Plan, /, *, idempotency_key: str
    ) -> Copy:
        self.calls.append(("update", idempotency_key))
        return self.copies[provider_id]

    async def delete(self, provider_id: str, /, *, idempotency_key: str) -> None:
        self.calls.append(("delete", idempotency_key))
        self.copies.pop(provider_id, None)

    async def retrieve(self, provider_id: str, /) -> Copy | None:
        return self.copies.get(provider_id)

    async def find(self, record: Plan, /) -> Copy | None:
        return next((c for c in self.copies.values() if c.qzpay_id == record.id), None)

    def merge_remote(self, local: Plan, remote: Copy, /) -> Plan:
        return local


@dataclass
class Provider:
    name: str
    plans: Adapter


def fanout(*adapters: Adapter, conflicts: Any = None) -> Fanout[Plan, Copy]:
    providers = [Provider(a.prefix, a) for a in adapters]
    return Fanout(
        Plans(),
        providers,
        lambda provider: provider.plans,
        create_key=lambda plan: create_key(plan.id, plan.updated_at, (plan.name,)),
        conflicts=conflicts,
    )


PLAN = Plan(id="plan_1", name="Gold")


async def test_creates_everywhere_with_one_key_per_request() -> None:
    a, b = Adapter("a"), Adapter("b")
    assert await fanout(a, b).create(PLAN) == {"a": "a_1", "b": "b_1"}
    assert a.calls[0][1] == b.calls[0][1] == create_key("plan_1", PLAN.updated_at, ("Gold",))


async def test_a_clean_failure_undoes_the_other_providers() -> None:
    a, b = Adapter("a"), Adapter("b", fail=False)
    with pytest.raises(ProviderSyncError) as caught:
        await fanout(a, b).create(PLAN)
    assert not caught.value.ambiguous
    assert a.copies == {}
    assert ("delete", delete_key("a_1")) in a.calls


async def test_an_ambiguous_failure_undoes_nothing() -> None:
    a, b = Adapter("a"), Adapter("b", fail=True)
    with pytest.raises(ProviderSyncError) as caught:
        await fanout(a, b).create(PLAN)
    assert caught.value.ambiguous
    assert list(a.copies) == ["a_1"]  # left for the intent / sync_pending


async def test_an_ambiguous_create_that_landed_is_found_not_resent() -> None:
    a = Adapter("a", fail=True, lands=True)
    assert await fanout(a).create(PLAN) == {"a": "a_1"}
    assert [call for call, _ in a.calls] == ["create"]


@dataclass
class TakeOver:
    """A CreateConflicts claiming the provider's existing copy ``existing``."""

    existing: Copy
    given_back: list[str] = field(default_factory=list)

    async def claim(
        self, provider: str, record: Plan, failure: ProviderSyncError
    ) -> Claim[Copy] | None:
        if provider != "a":
            return None
        existing = self.existing

        class Taken:
            async def take(self) -> Copy:
                return existing

        return Taken()

    async def give_back(self, provider: str, provider_id: str, record: Plan) -> None:
        self.given_back.append(provider_id)


async def test_a_claim_is_taken_last_and_given_back_on_a_later_failure() -> None:
    a, b = Adapter("a", fail=False), Adapter("b")
    rule = TakeOver(Copy("a_old", "elsewhere"))
    assert await fanout(a, b, conflicts=rule).create(PLAN) == {"a": "a_old", "b": "b_1"}

    a, b = Adapter("a", fail=False), Adapter("b", fail=False)
    with pytest.raises(ProviderSyncError):
        await fanout(a, b, conflicts=rule).create(PLAN)
    assert rule.given_back == []  # b failed before the claim was taken: nothing to give back

    noted = PLAN.model_copy(update={"provider_plan_ids": {"a": "a_old"}})
    await fanout(Adapter("a"), conflicts=rule).remove(noted)
    assert rule.given_back == ["a_old"]
