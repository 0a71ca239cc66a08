"""The strategies, each chosen once, against a real backend and a scripted Remote (the provider
side a resource plugs in): who goes first, and what a failure leaves behind."""

from __future__ import annotations

import pytest

from qzpay.customers.models import Customer
from qzpay.engine.core import Engine
from qzpay.engine.resource import Links, Remote
from qzpay.engine.strategy import LocalFirst, NoProviders, ProviderFirst, choose
from qzpay.errors import ProviderSyncError
from qzpay.events import EventBus
from tests.engine.conftest import new_customer


class ScriptedRemote:
    """One provider, "acme": records what it was asked, and what it saw stored at that time;
    ``fail`` makes the next calls fail (ambiguously with ``ambiguous``)."""

    def __init__(self, engine: Engine[Customer]) -> None:
        self._engine = engine
        self.calls: list[tuple[str, bool]] = []  # (call, record committed locally then)
        self.fail = False
        self.ambiguous = False

    @property
    def several(self) -> bool:
        return False

    async def _call(self, name: str, record: Customer) -> None:
        stored = await self._engine.storage.get_customer(record.id)
        self.calls.append((name, stored is not None))
        if self.fail:
            raise ProviderSyncError(
                "acme is down", provider="acme", operation=name, ambiguous=self.ambiguous
            )

    async def create(self, record: Customer, *, compensate: bool = True) -> Links:
        await self._call("create", record)
        return {"acme": f"acme_{record.id}"}

    async def finish_create(self, record: Customer) -> Links:
        await self._call("finish_create", record)
        return {"acme": f"acme_{record.id}"}

    async def update(self, before: Customer, after: Customer) -> None:
        await self._call("update", after)

    async def push(self, record: Customer) -> Links:
        await self._call("push", record)
        return {"acme": f"acme_{record.id}"}

    async def delete(self, record: Customer) -> None:
        await self._call("delete", record)

    async def remove(self, record: Customer) -> None:
        await self._call("remove", record)


@pytest.fixture
def remote(engine: Engine[Customer]) -> ScriptedRemote:
    return ScriptedRemote(engine)


def test_the_strategy_is_chosen_once_from_the_configuration(
    engine: Engine[Customer], remote: ScriptedRemote
) -> None:
    typed: Remote[Customer] = remote
    assert type(choose(engine, None, "raise")) is NoProviders
    assert type(choose(engine, None, "log")) is NoProviders
    assert type(choose(engine, typed, "raise")) is ProviderFirst
    assert type(choose(engine, typed, "log")) is LocalFirst


async def test_provider_first_creates_remotely_then_commits(
    engine: Engine[Customer], remote: ScriptedRemote, bus: EventBus
) -> None:
    events: list[str] = []
    bus.on("*", lambda e: events.append(e.type))
    strategy = choose(engine, remote, "raise")
    created = await strategy.create(new_customer(), None, None)
    assert remote.calls == [("create", False)]  # the provider was called before the commit
    assert created.provider_customer_ids == {"acme": f"acme_{created.id}"}
    assert await engine.storage.get_customer(created.id) == created
    assert events == ["customer.created"]
    assert await engine.storage.count_sync_tasks() == 0  # the intent was dropped


async def test_provider_first_clean_failure_leaves_nothing(
    engine: Engine[Customer], remote: ScriptedRemote, bus: EventBus
) -> None:
    events: list[str] = []
    bus.on("*", lambda e: events.append(e.type))
    remote.fail = True
    record = new_customer()
    with pytest.raises(ProviderSyncError):
        await choose(engine, remote, "raise").create(record, None, None)
    assert await engine.storage.get_customer(record.id) is None
    assert await engine.storage.count_sync_tasks() == 0
    assert events == []


async def test_provider_first_ambiguous_failure_keeps_the_intent_for_sync_pending(
    engine: Engine[Customer], remote: ScriptedRemote
) -> None:
    remote.fail = remote.ambiguous = True
    record = new_customer()
    strategy = choose(engine, remote, "raise")
    with pytest.raises(ProviderSyncError):
        await strategy.create(record, "key-1", "fingerprint")
    [task] = await engine.storage.list_sync_tasks(limit=10)
    assert (task.committed, task.lease_owner, task.attempts) == (False, None, 1)
    assert await engine.storage.get_customer(record.id) is None

    remote.fail = False
    report = await strategy.sync_pending()
    assert (report.completed, report.failed, report.remaining) == (1, 0, 0)
    assert remote.calls[-1] == ("finish_create", False)  # keyed: finished, then committed
    stored = await engine.storage.get_customer(record.id)
    assert stored is not None
    assert stored.provider_customer_ids == {"acme": f"acme_{record.id}"}


async def test_local_first_commits_then_calls_the_provider(
    engine: Engine[Customer], remote: ScriptedRemote
) -> None:
    strategy = choose(engine, remote, "log")
    created = await strategy.create(new_customer(), None, None)
    assert remote.calls == [("create", True)]  # committed before the provider was called
    assert created.provider_customer_ids == {"acme": f"acme_{created.id}"}
    assert await engine.storage.count_sync_tasks() == 0


async def test_local_first_failure_is_kept_for_sync_pending(
    engine: Engine[Customer], remote: ScriptedRemote
) -> None:
    strategy = choose(engine, remote, "log")
    remote.fail = True
    created = await strategy.create(new_customer(), None, None)
    assert created.provider_customer_ids == {}
    [task] = await engine.storage.list_sync_tasks(limit=10)
    assert (task.committed, task.operation, task.lease_owner) == (True, "create", None)

    remote.fail = False
    report = await strategy.sync_pending()
    assert (report.completed, report.failed, report.remaining) == (1, 0, 0)
    stored = await engine.storage.get_customer(created.id)
    assert stored is not None
    assert stored.provider_customer_ids == {"acme": f"acme_{created.id}"}


async def test_each_strategy_orders_an_update_its_own_way(
    engine: Engine[Customer], remote: ScriptedRemote
) -> None:
    async def rename(before: Customer) -> dict[str, str]:
        return {"name": f"{before.name or ''}x"}

    first = choose(engine, remote, "raise")
    created = await first.create(new_customer(), None, None)
    await first.modify(created.id, rename, remote_visible=True)
    assert remote.calls[-1] == ("update", True)
    stored = await engine.storage.get_customer(created.id)
    assert stored is not None
    assert stored.name == "x"  # the provider got the change before it was committed

    later = choose(engine, remote, "log")
    after = await later.modify(created.id, rename, remote_visible=True)
    assert remote.calls[-1] == ("push", True)
    assert after.name == "xx"
    assert await engine.storage.count_sync_tasks() == 0

    calls = len(remote.calls)
    await later.modify(created.id, rename, remote_visible=False)  # links only: no provider
    await choose(engine, None, "raise").delete(created.id)
    assert len(remote.calls) == calls


async def test_sync_pending_without_providers_reports_nothing(
    engine: Engine[Customer],
) -> None:
    report = await choose(engine, None, "log").sync_pending()
    assert (report.completed, report.failed, report.remaining) == (0, 0, 0)
