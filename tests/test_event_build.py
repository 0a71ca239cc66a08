"""``new_event`` builds an event without ``model_construct``'s generic loop: the result must be
exactly what ``model_construct`` gives (same ``__dict__`` in the same order, all fields set, no
extra or private attributes), for a customer's event and for any registered resource's; and the
bus does nothing, cheaply, when no handler is registered."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from qzpay import records
from qzpay.customers.models import Customer
from qzpay.engine.unit_of_work import Units
from qzpay.events import Event, EventBus, event_class, new_event
from qzpay.storage.memory import MemoryStorage

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class Probe(BaseModel):
    """A record of a resource only this module registers."""

    model_config = ConfigDict(frozen=True)

    id: str
    label: str
    provider_probe_ids: dict[str, str]
    updated_at: datetime


records.register("build_probe", Probe, links_field="provider_probe_ids")


def _customer() -> Customer:
    return Customer(
        id="cus_01HZZZZZZZZZZZZZZZZZZZZZZZ",
        email="ada@example.com",
        name="Ada",
        metadata={"plan": "pro"},
        provider_customer_ids={"stripe": "cus_s1"},
        created_at=EPOCH,
        updated_at=EPOCH + timedelta(seconds=1),
    )


def _probe() -> Probe:
    return Probe(id="prb_1", label="prøbe", provider_probe_ids={"stripe": "pb_1"}, updated_at=EPOCH)


CASES = [
    ("customer.updated", _customer, {"name": "Old", "metadata": {}}),
    ("customer.created", _customer, None),
    ("build_probe.updated", _probe, {"label": "old"}),
    ("build_probe.deleted", _probe, None),
]


def _pair(event_type: str, data: BaseModel, previous: dict[str, Any] | None) -> tuple[Any, Any]:
    fields: dict[str, Any] = {
        "id": "evt_01HZZZZZZZZZZZZZZZZZZZZZZZ",
        "previous": previous,
        "created_at": EPOCH + timedelta(seconds=2),
    }
    built = new_event(event_type, data, **fields)
    constructed = event_class(event_type).model_construct(type=event_type, data=data, **fields)
    return built, constructed


@pytest.mark.parametrize(("event_type", "make", "previous"), CASES)
def test_built_event_is_what_model_construct_gives(
    event_type: str, make: Any, previous: dict[str, Any] | None
) -> None:
    data = make()
    built, constructed = _pair(event_type, data, previous)

    assert type(built) is type(constructed) is event_class(event_type)
    assert (Customer if event_type.startswith("customer.") else Probe) is type(built.data)
    assert built == constructed
    assert constructed == built
    # The whole instance state, in order: __dict__, fields set, extra, private.
    assert list(built.__dict__.items()) == list(constructed.__dict__.items())
    assert built.__dict__ == constructed.__dict__
    assert built.__pydantic_fields_set__ == constructed.__pydantic_fields_set__
    assert built.__pydantic_fields_set__ == {"id", "type", "data", "previous", "created_at"}
    assert built.model_fields_set == constructed.model_fields_set
    assert built.__pydantic_extra__ is None
    assert constructed.__pydantic_extra__ is None
    assert built.__pydantic_private__ is None
    assert constructed.__pydantic_private__ is None
    assert built.data is data
    # Each event has its own fields set, not a shared one.
    assert (
        built.__pydantic_fields_set__ is not _pair(event_type, data, previous)[0].model_fields_set
    )

    assert built.model_dump() == constructed.model_dump()
    assert built.model_dump(exclude_unset=True) == constructed.model_dump(exclude_unset=True)
    assert built.model_dump_json() == constructed.model_dump_json()
    assert repr(built) == repr(constructed)
    assert event_class(event_type).model_validate_json(built.model_dump_json()) == built

    # Frozen: hashable only as far as its fields are (dicts are not), and not assignable.
    with pytest.raises(TypeError) as built_error:
        hash(built)
    with pytest.raises(TypeError) as constructed_error:
        hash(constructed)
    assert str(built_error.value) == str(constructed_error.value)
    with pytest.raises(PydanticValidationError, match="frozen"):
        built.id = "evt_other"  # type: ignore[misc]
    assert built.id == constructed.id

    copied = built.model_copy(update={"previous": None})
    assert copied == constructed.model_copy(update={"previous": None})
    assert (
        copied.model_fields_set
        == constructed.model_copy(update={"previous": None}).model_fields_set
    )
    assert copy.deepcopy(built) == constructed
    assert _pickled(built) == _pickled(constructed)


def _pickled(event: Any) -> object:
    """The event through pickle, or the error (``Event[Model]`` classes are not importable)."""
    try:
        return pickle.loads(pickle.dumps(event))
    except pickle.PicklingError as error:
        return str(error)


def test_hash_of_a_hashable_event_matches() -> None:
    """With hashable data and no ``previous``, the frozen event hashes as model_construct's."""

    class Flat(BaseModel):
        model_config = ConfigDict(frozen=True)

        id: str
        provider_flat_ids: tuple[str, ...]
        updated_at: datetime

    # Event[Flat] hashes its __dict__ values: Flat is frozen, so hashable.
    records.register("build_flat", Flat, links_field="provider_flat_ids")
    data = Flat(id="flt_1", provider_flat_ids=("a",), updated_at=EPOCH)
    built, constructed = _pair("build_flat.created", data, None)
    assert hash(built) == hash(constructed)
    assert {built, constructed} == {built}


def test_the_event_classes_take_the_direct_path() -> None:
    from qzpay import events

    for event_type in ("customer.updated", "build_probe.created"):
        assert events._resolve(event_type)[2] is True


def test_wrong_data_is_still_rejected() -> None:
    with pytest.raises(TypeError, match="carries a Customer"):
        new_event("customer.updated", _probe(), id="evt_1", previous=None, created_at=EPOCH)
    with pytest.raises(ValueError, match="no_such"):
        new_event("no_such.created", _probe(), id="evt_1", previous=None, created_at=EPOCH)


# -- the bus with and without handlers ------------------------------------------------------------
async def test_dispatch_without_handlers_does_nothing() -> None:
    bus = EventBus()
    assert not bus.has_handlers
    built, _ = _pair("customer.created", _customer(), None)
    await bus.dispatch(built)
    bus.on("*", lambda event: None)
    assert bus.has_handlers


async def test_a_handler_added_during_dispatch_sees_the_later_events_of_the_unit() -> None:
    """The unit of work checks for handlers per event, as dispatch itself does."""
    bus = EventBus()
    seen: list[tuple[str, str]] = []

    def late(event: Event[Any]) -> None:
        seen.append(("late", event.type))

    def first(event: Event[Any]) -> None:
        seen.append(("first", event.type))
        bus.off("*", first)
        bus.on("*", late)

    bus.on("*", first)
    units = Units(MemoryStorage(), bus)
    probe = _probe()
    async with units() as work:
        await work.emit("build_probe.created", probe)
        await work.emit("build_probe.updated", probe, {"label": "x"})
    assert seen == [("first", "build_probe.created"), ("late", "build_probe.updated")]


async def test_no_handler_means_no_dispatch_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Event[Any]] = []
    original = EventBus.dispatch

    async def counting(self: EventBus, event: Event[Any]) -> None:
        calls.append(event)
        await original(self, event)

    monkeypatch.setattr(EventBus, "dispatch", counting)
    bus = EventBus()
    units = Units(MemoryStorage(), bus)
    async with units() as work:
        await work.emit("build_probe.created", _probe())
    assert calls == []
    seen: list[Event[Any]] = []
    bus.on("build_probe.*", seen.append)
    async with units() as work:
        event = await work.emit("build_probe.created", _probe())
    assert calls == [event]
    assert seen == [event]
