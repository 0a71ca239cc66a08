"""Events of any registered resource (qzpay.records): a resource other than customers, with its
own event verbs, writes its events to the log and reads them back as its own model on every
backend, and the bus takes its patterns; customers' events and the HTTP API's document are what
they were."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from qzpay import Billing, records
from qzpay.api import APIKeyAuth, create_app
from qzpay.customers.models import Customer
from qzpay.engine.unit_of_work import Units
from qzpay.errors import ValidationError
from qzpay.events import EVENT_TYPES, Event, EventBus, decode_event, event_class, new_event
from qzpay.ids import event_ids

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class Gizmo(BaseModel):
    """A tiny record of a resource only these tests know; archived, never deleted."""

    model_config = ConfigDict(frozen=True)

    id: str
    label: str
    active: bool
    provider_gizmo_ids: dict[str, str]
    updated_at: datetime


GIZMOS = records.register(
    "gizmo", Gizmo, links_field="provider_gizmo_ids", events=("created", "updated", "archived")
)


def _gizmo(n: int, **changes: Any) -> Gizmo:
    fields: dict[str, Any] = {
        "id": f"giz_{n:04d}",
        "label": f"gïzmo {n}",
        "active": True,
        "provider_gizmo_ids": {"stripe": f"gz_{n}"},
        "updated_at": EPOCH + timedelta(seconds=n),
    }
    return Gizmo(**(fields | changes))


@pytest.fixture
async def billing(storage_url: str) -> AsyncIterator[Billing]:
    async with Billing(storage=storage_url) as instance:
        yield instance


# -- the log, on every backend ----------------------------------------------------------------
async def test_a_resources_events_round_trip_through_the_log(billing: Billing) -> None:
    customer = await billing.customers.create(email="ada@example.com")
    bus = EventBus()
    seen: list[tuple[str, str]] = []
    for pattern in ("gizmo.*", "gizmo.archived", "customer.*", "*"):
        bus.on(pattern, lambda event, pattern=pattern: seen.append((pattern, event.type)))
    units = Units(billing.storage, bus)
    created = _gizmo(1)
    renamed = created.model_copy(update={"label": "renamed", "updated_at": EPOCH + timedelta(1)})
    archived = renamed.model_copy(update={"active": False, "updated_at": EPOCH + timedelta(2)})
    async with units() as work:
        emitted = [
            await work.emit("gizmo.created", created),
            await work.emit("gizmo.updated", renamed, {"label": created.label}),
        ]
    async with units() as work:
        emitted.append(await work.emit("gizmo.archived", archived, {"active": True}))

    events = await billing.events.list()
    assert [e.type for e in events] == [
        "customer.created",
        "gizmo.created",
        "gizmo.updated",
        "gizmo.archived",
    ]
    first, *gizmo_events = events
    assert type(first) is Event
    assert isinstance(first.data, Customer)
    assert first.data == customer
    assert first.data.email == "ada@example.com"
    assert gizmo_events == emitted
    for event, record in zip(gizmo_events, (created, renamed, archived), strict=True):
        assert type(event) is Event[Gizmo]
        assert type(event.data) is Gizmo
        assert event.data == record
        assert event.created_at == record.updated_at
    assert gizmo_events[1].previous == {"label": "gïzmo 1"}
    assert gizmo_events[2].data.active is False

    assert await billing.events.get(emitted[2].id) == emitted[2]
    fetched = await billing.events.get(first.id)
    assert fetched is not None
    assert type(fetched) is Event
    assert fetched.data.email == "ada@example.com"
    after = await billing.events.list(after=first.id, limit=2)
    assert after == emitted[:2]
    assert [type(e.data) for e in after] == [Gizmo, Gizmo]

    assert seen == [
        ("gizmo.*", "gizmo.created"),
        ("*", "gizmo.created"),
        ("gizmo.*", "gizmo.updated"),
        ("*", "gizmo.updated"),
        ("gizmo.*", "gizmo.archived"),
        ("gizmo.archived", "gizmo.archived"),
        ("*", "gizmo.archived"),
    ]


async def test_a_rolled_back_resource_event_is_neither_stored_nor_dispatched(
    billing: Billing,
) -> None:
    bus = EventBus()
    seen: list[Event[Any]] = []
    bus.on("gizmo.*", seen.append)

    async def fail() -> None:
        async with Units(billing.storage, bus)() as work:
            await work.emit("gizmo.created", _gizmo(1))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await fail()
    assert seen == []
    assert await billing.events.list() == []


async def test_an_event_must_carry_its_resources_record(billing: Billing) -> None:
    units = Units(billing.storage, EventBus())
    async with units() as work:
        with pytest.raises(ValueError, match=r"gizmo\.deleted"):
            await work.emit("gizmo.deleted", _gizmo(1))  # gizmos are archived, not deleted
        with pytest.raises(TypeError, match="carries a Gizmo"):
            await work.emit("gizmo.created", _customer())
        with pytest.raises(ValueError, match=r"gadget\.created"):
            await work.emit("gadget.created", _gizmo(1))
    assert await billing.events.list() == []


# -- the bus ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "gizmo.*",
        "gizmo.created",
        "gizmo.updated",
        "gizmo.archived",
        "customer.*",
        *EVENT_TYPES,
    ],
)
def test_the_bus_takes_any_registered_resources_patterns(pattern: str) -> None:
    bus = EventBus()
    unsubscribe = bus.on(pattern, lambda event: None)
    unsubscribe()


@pytest.mark.parametrize(
    "pattern",
    [
        "gizmo.deleted",
        "gizmo",
        "gizmo.",
        "gizmo.created.*",
        "gadget.*",
        "gadget.created",
        "*.created",
        "customer.archived",
        "customer",
        "",
        "**",
    ],
)
def test_the_bus_refuses_other_patterns_as_before(pattern: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EventBus().on(pattern, lambda event: None)
    assert caught.value.errors == [
        {
            "field": "pattern",
            "code": "invalid_pattern",
            "message": f"unknown event type or pattern {pattern!r}",
        }
    ]


def test_billing_takes_a_registered_resources_patterns() -> None:
    billing = Billing(storage="memory://")

    @billing.on("gizmo.archived")
    def handler(event: Event[Any]) -> None: ...

    billing.off("gizmo.archived", handler)


# -- the registry and decoding ----------------------------------------------------------------
def test_the_registry_knows_each_resources_event_types() -> None:
    assert GIZMOS.event_types == ("gizmo.created", "gizmo.updated", "gizmo.archived")
    assert records.CUSTOMER.event_types == EVENT_TYPES
    assert records.for_event("gizmo.archived") is GIZMOS
    assert records.for_event("customer.deleted") is records.CUSTOMER
    for unknown in ("gizmo.deleted", "gizmo", "gadget.created", "customer.archived", ""):
        with pytest.raises(ValueError, match="no registered resource"):
            records.for_event(unknown)
    assert {"gizmo.archived", *EVENT_TYPES} <= set(records.event_types())
    events = ("created", "updated", "archived")
    same = records.register("gizmo", Gizmo, links_field="provider_gizmo_ids", events=events)
    assert same is GIZMOS
    with pytest.raises(ValueError, match="registered already"):
        records.register("gizmo", Gizmo, links_field="provider_gizmo_ids")
    for name, verbs, problem in (
        ("Bad", events, "not a resource name"),
        ("gadget", ("created", "a.b"), "not a resource name or event verb"),
        ("gadget", ("created", "created"), "distinct event verbs"),
        ("gadget", (), "distinct event verbs"),
    ):
        with pytest.raises(ValueError, match=problem):
            records.register(name, Gizmo, links_field="provider_gizmo_ids", events=verbs)
    with pytest.raises(ValueError, match="no resource named"):
        records.record_type("gadget")  # none of the refused registrations stuck


def test_events_decode_by_their_types_resource() -> None:
    gizmo_event = new_event(
        "gizmo.archived", _gizmo(2), id=event_ids.new(), previous=None, created_at=EPOCH
    )
    payload = gizmo_event.model_dump_json()
    for decoded in (decode_event(payload), decode_event(payload.encode(), "gizmo.archived")):
        assert type(decoded) is Event[Gizmo]
        assert decoded == gizmo_event
    customer_event = new_event(
        "customer.created", _customer(), id=event_ids.new(), previous=None, created_at=EPOCH
    )
    decoded_customer = decode_event(customer_event.model_dump_json())
    assert type(decoded_customer) is Event
    assert (
        decoded_customer
        == customer_event
        == Event.model_validate_json(customer_event.model_dump_json())
    )
    assert event_class("gizmo.created") is Event[Gizmo]
    assert event_class("customer.updated") is Event
    with pytest.raises(ValueError, match="gadget"):
        decode_event(payload.replace("gizmo.archived", "gadget.archived"))


# -- customers' events and the HTTP API's document are unchanged --------------------------------
def test_a_customer_event_is_shaped_as_before() -> None:
    assert EVENT_TYPES == ("customer.created", "customer.updated", "customer.deleted")
    schema = Event.model_json_schema()
    assert schema["title"] == "Event"
    assert schema["properties"]["data"] == {"$ref": "#/$defs/Customer"}
    assert schema["required"] == ["id", "type", "data", "created_at"]
    assert Event.model_json_schema(mode="serialization") == schema
    event = new_event("customer.created", _customer(), id="evt_1", previous=None, created_at=EPOCH)
    assert list(json.loads(event.model_dump_json())) == [
        "id",
        "type",
        "data",
        "previous",
        "created_at",
    ]


EVENT_COMPONENT = {
    "description": (
        "A committed change. ``previous`` holds, for ``customer.updated``, the old values of the"
        "\nfields that changed (plain JSON values: an address is a dict)."
    ),
    "properties": {
        "created_at": {"format": "date-time", "title": "Created At", "type": "string"},
        "data": {"$ref": "#/components/schemas/Customer"},
        "id": {"title": "Id", "type": "string"},
        "previous": {
            "anyOf": [{"additionalProperties": True, "type": "object"}, {"type": "null"}],
            "title": "Previous",
        },
        "type": {"title": "Type", "type": "string"},
    },
    "required": ["id", "type", "data", "created_at"],
    "title": "Event",
    "type": "object",
}

_DUMP_OPENAPI = """
import json
from qzpay import Billing
from qzpay.api import APIKeyAuth, create_app
app = create_app(Billing("memory://"), auth=APIKeyAuth("k" * 32))
print(json.dumps(app.openapi(), sort_keys=True))
"""


def test_the_openapi_document_does_not_depend_on_registered_resources() -> None:
    """The events API documents customers' events as it did, plus plans', prices',
    subscriptions' and the customers' entitlement changes; registering
    another resource (gizmo, here) changes nothing in it: a fresh interpreter, which knows no
    gizmo, writes the same."""
    app = create_app(Billing("memory://"), auth=APIKeyAuth("k" * 32))
    document = app.openapi()
    components = document["components"]["schemas"]
    assert components["Event"] == EVENT_COMPONENT  # a customer's event, as before plans existed
    assert components["EventList"]["properties"]["data"]["items"] == {
        "anyOf": [
            {"$ref": "#/components/schemas/Event"},
            {"$ref": "#/components/schemas/Event_Plan_"},
            {"$ref": "#/components/schemas/Event_Price_"},
            {"$ref": "#/components/schemas/Event_Subscription_"},
            {"$ref": "#/components/schemas/Event_EntitlementsChange_"},
        ]
    }
    assert not any("gizmo" in name.lower() for name in components)
    fresh = subprocess.run(
        [sys.executable, "-c", _DUMP_OPENAPI], capture_output=True, text=True, check=True
    )
    assert json.loads(fresh.stdout) == json.loads(json.dumps(document, sort_keys=True))


def _customer() -> Customer:
    return Customer(
        id="cus_00000000000000000001",
        email="ada@example.com",
        metadata={},
        provider_customer_ids={},
        created_at=EPOCH,
        updated_at=EPOCH,
    )
