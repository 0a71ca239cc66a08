"""``/subscriptions`` and a customer's entitlements and limits through a real HTTP server, over
memory, SQLite and PostgreSQL. The catalog is made through the plans and prices routes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from qzpay import Billing
from qzpay.api import APIKeyAuth, create_app
from qzpay.limits import MAX_ID_LENGTH, MAX_QUANTITY, MAX_TRIAL_DAYS
from tests.api.live import API_KEY, LiveServer
from tests.api.test_catalog_routes import create_plan, create_price
from tests.api.test_routes import assert_problem
from tests.api.test_routes import create as create_customer


@dataclass(frozen=True)
class Catalog:
    """``free_plan`` (api, reports; projects 3, seats 5) with a free weekly price ``free``;
    ``team_plan`` (api, sso; projects 10) with a free monthly price ``team_free`` and a paid
    one, ``paid``."""

    free_plan: dict[str, Any]
    free: dict[str, Any]
    team_plan: dict[str, Any]
    team_free: dict[str, Any]
    paid: dict[str, Any]


@pytest.fixture
def catalog(client: httpx.Client) -> Catalog:
    free_plan = create_plan(
        client, "free", entitlements=["reports", "api"], limits={"projects": 3, "seats": 5}
    )
    team_plan = create_plan(client, "team", entitlements=["sso", "api"], limits={"projects": 10})
    free = create_price(client, free_plan["id"], unit_amount=0, interval="week")
    team_free = create_price(client, team_plan["id"], unit_amount=0)
    paid = create_price(client, team_plan["id"], unit_amount=1999, trial_days=14)
    return Catalog(free_plan, free, team_plan, team_free, paid)


def subscribe(client: httpx.Client, customer_id: str, price_id: str, **fields: Any) -> Any:
    response = client.post(
        "/subscriptions", json={"customer_id": customer_id, "price_id": price_id, **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


def post(client: httpx.Client, path: str, **options: Any) -> Any:
    response = client.post(path, **options)
    assert response.status_code == 200, response.text
    return response.json()


def entitlements(client: httpx.Client, customer_id: str) -> list[str]:
    response = client.get(f"/customers/{customer_id}/entitlements")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == customer_id
    keys: list[str] = body["entitlements"]
    return keys


def fields_of(problem: dict[str, Any]) -> dict[str, str]:
    return {error["field"]: error["code"] for error in problem["errors"]}


class TestCreate:
    def test_a_free_price_is_active_at_once(self, client: httpx.Client, catalog: Catalog) -> None:
        customer = create_customer(client)
        response = client.post(
            "/subscriptions",
            json={
                "customer_id": customer["id"],
                "price_id": catalog.free["id"],
                "quantity": 2,
                "metadata": {"source": "signup"},
            },
        )
        assert response.status_code == 201, response.text
        sub = response.json()
        assert sub["id"].startswith("sub_")
        assert (sub["customer_id"], sub["price_id"], sub["plan_id"]) == (
            customer["id"],
            catalog.free["id"],
            catalog.free_plan["id"],
        )
        assert (sub["status"], sub["quantity"], sub["metadata"]) == (
            "active",
            2,
            {"source": "signup"},
        )
        assert (sub["provider"], sub["trial_end"]) == (None, None)
        assert sub["cancel_at_period_end"] is False
        assert response.headers["location"].endswith(f"/subscriptions/{sub['id']}")
        assert client.get(response.headers["location"]).json() == sub
        assert entitlements(client, customer["id"]) == ["api", "reports"]

        # The event log documents both events the create wrote.
        log = client.get("/events", params={"limit": 1000})
        assert log.status_code == 200, log.text
        created, changed = log.json()["data"][-2:]
        assert (created["type"], created["data"]) == ("subscription.created", sub)
        assert changed["type"] == "customer.entitlements_changed"
        assert changed["data"]["customer_id"] == customer["id"]
        assert (changed["data"]["before"], changed["data"]["after"]) == ([], ["api", "reports"])

    def test_a_paid_price_needs_a_provider(self, client: httpx.Client, catalog: Catalog) -> None:
        customer = create_customer(client)
        refused = client.post(
            "/subscriptions", json={"customer_id": customer["id"], "price_id": catalog.paid["id"]}
        )
        assert_problem(refused, 409, "provider_required")
        assert client.get("/subscriptions").json()["total"] == 0
        assert entitlements(client, customer["id"]) == []

    def test_refusals_create_nothing(self, client: httpx.Client, catalog: Catalog) -> None:
        customer = create_customer(client)
        unknown_customer = {"customer_id": "cus_nope", "price_id": catalog.free["id"]}
        assert_problem(client.post("/subscriptions", json=unknown_customer), 404, "not_found")
        unknown_price = {"customer_id": customer["id"], "price_id": "price_nope"}
        assert_problem(client.post("/subscriptions", json=unknown_price), 404, "not_found")
        unconfigured = {
            "customer_id": customer["id"],
            "price_id": catalog.free["id"],
            "provider": "stripe",
        }
        body = assert_problem(
            client.post("/subscriptions", json=unconfigured), 422, "validation_error"
        )
        assert fields_of(body) == {"provider": "unknown_provider"}
        assert client.post(f"/prices/{catalog.team_free['id']}/archive").status_code == 200
        archived = {"customer_id": customer["id"], "price_id": catalog.team_free["id"]}
        assert_problem(client.post("/subscriptions", json=archived), 409, "price_archived")
        assert client.delete(f"/customers/{customer['id']}").status_code == 204
        deleted = {"customer_id": customer["id"], "price_id": catalog.free["id"]}
        assert_problem(client.post("/subscriptions", json=deleted), 409, "customer_deleted")
        assert client.get("/subscriptions").json()["total"] == 0

    def test_idempotency_key_replays_the_first_create(
        self, client: httpx.Client, catalog: Catalog
    ) -> None:
        customer = create_customer(client)
        body = {"customer_id": customer["id"], "price_id": catalog.free["id"]}
        headers = {"Idempotency-Key": "subscribe-1"}
        first = client.post("/subscriptions", json=body, headers=headers)
        again = client.post("/subscriptions", json=body, headers=headers)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        other = client.post("/subscriptions", json={**body, "quantity": 2}, headers=headers)
        assert_problem(other, 409, "idempotency_key_reused")
        assert client.get("/subscriptions").json()["total"] == 1
        too_long = client.post(
            "/subscriptions", json=body, headers={"Idempotency-Key": "k" * (MAX_ID_LENGTH + 1)}
        )
        assert fields_of(assert_problem(too_long, 422, "validation_error")) == {
            "Idempotency-Key": "too_long"
        }


class TestValidation:
    def test_shape_errors_name_every_field(self, client: httpx.Client) -> None:
        response = client.post(
            "/subscriptions",
            json={"customer_id": 5, "quantity": "many", "metadata": [], "surprise": True},
        )
        body = assert_problem(response, 422, "validation_error")
        assert fields_of(body) == {
            "customer_id": "invalid_type",
            "price_id": "required",
            "quantity": "invalid_type",
            "metadata": "invalid_type",
            "surprise": "unknown_field",
        }
        not_an_object = client.post("/subscriptions", json=["cus_1"])
        assert_problem(not_an_object, 422, "validation_error")
        broken = client.post(
            "/subscriptions", content=b"{", headers={"content-type": "application/json"}
        )
        assert 400 <= broken.status_code < 500

    def test_the_library_reports_every_rule_at_once(
        self, client: httpx.Client, catalog: Catalog
    ) -> None:
        customer = create_customer(client)
        response = client.post(
            "/subscriptions",
            json={
                "customer_id": customer["id"],
                "price_id": "p" * (MAX_ID_LENGTH + 1),
                "quantity": MAX_QUANTITY + 1,
                "trial_days": MAX_TRIAL_DAYS + 1,
                "provider": "Not A Provider",
                "metadata": {"bad[key]": "v"},
            },
        )
        body = assert_problem(response, 422, "validation_error")
        assert set(fields_of(body)) == {
            "price_id",
            "quantity",
            "trial_days",
            "provider",
            "metadata.bad[key]",
        }
        assert fields_of(body)["quantity"] == "out_of_range"
        zero = client.post(
            "/subscriptions",
            json={"customer_id": customer["id"], "price_id": catalog.free["id"], "quantity": 0},
        )
        assert fields_of(assert_problem(zero, 422, "validation_error")) == {
            "quantity": "out_of_range"
        }
        assert client.get("/subscriptions").json()["total"] == 0

    def test_change_bodies_and_filters(self, client: httpx.Client, catalog: Catalog) -> None:
        customer = create_customer(client)
        sub = subscribe(client, customer["id"], catalog.free["id"])
        url = f"/subscriptions/{sub['id']}"
        bad_cancel = client.post(f"{url}/cancel", json={"at_period_end": "maybe", "x": 1})
        body = assert_problem(bad_cancel, 422, "validation_error")
        assert set(fields_of(body)) == {"at_period_end", "x"}
        # The proration is checked by the route's schema (an enum, as a price's interval is),
        # the quantity's range by the library.
        bad_proration = client.post(
            f"{url}/change_price",
            json={"price_id": catalog.team_free["id"], "proration": "sometimes"},
        )
        body = assert_problem(bad_proration, 422, "validation_error")
        assert set(fields_of(body)) == {"proration"}
        bad_quantity = client.post(
            f"{url}/change_price", json={"price_id": catalog.team_free["id"], "quantity": 0}
        )
        body = assert_problem(bad_quantity, 422, "validation_error")
        assert fields_of(body) == {"quantity": "out_of_range"}
        no_price = client.post(f"{url}/change_price", json={})
        assert fields_of(assert_problem(no_price, 422, "validation_error")) == {
            "price_id": "required"
        }
        for params, field in (
            ({"status": "sleeping"}, "status"),
            ({"limit": 0}, "limit"),
            ({"limit": 101}, "limit"),
            ({"offset": -1}, "offset"),
            ({"customer_id": ""}, "customer_id"),
            ({"plan_id": "p" * (MAX_ID_LENGTH + 1)}, "plan_id"),
        ):
            listed = client.get("/subscriptions", params=params)
            assert set(fields_of(assert_problem(listed, 422, "validation_error"))) == {field}
        assert client.get(url).json() == sub  # nothing changed


class TestReads:
    def test_list_filters_and_pages(self, client: httpx.Client, catalog: Catalog) -> None:
        ann = create_customer(client)
        bob = create_customer(client)
        first = subscribe(client, ann["id"], catalog.free["id"])
        second = subscribe(client, ann["id"], catalog.team_free["id"])
        third = subscribe(client, bob["id"], catalog.free["id"])
        post(client, f"/subscriptions/{third['id']}/pause")

        def ids(**params: Any) -> list[str]:
            response = client.get("/subscriptions", params=params)
            assert response.status_code == 200, response.text
            return [s["id"] for s in response.json()["data"]]

        assert ids() == [third["id"], second["id"], first["id"]]  # newest first
        assert ids(customer_id=ann["id"]) == [second["id"], first["id"]]
        assert ids(status="paused") == [third["id"]]
        assert ids(status="active", customer_id=ann["id"]) == [second["id"], first["id"]]
        assert ids(plan_id=catalog.team_plan["id"]) == [second["id"]]
        assert ids(price_id=catalog.free["id"]) == [third["id"], first["id"]]
        assert ids(customer_id="cus_nobody") == []
        page = client.get("/subscriptions", params={"limit": 1, "offset": 1}).json()
        assert [s["id"] for s in page["data"]] == [second["id"]]
        assert (page["total"], page["limit"], page["offset"], page["has_more"]) == (3, 1, 1, True)

    def test_unknown_subscriptions_are_404(self, client: httpx.Client) -> None:
        assert_problem(client.get("/subscriptions/sub_nope"), 404, "not_found")
        for action in ("cancel", "uncancel", "pause", "resume"):
            assert_problem(client.post(f"/subscriptions/sub_nope/{action}"), 404, "not_found")
        change = client.post("/subscriptions/sub_nope/change_price", json={"price_id": "price_x"})
        assert_problem(change, 404, "not_found")
        too_long = client.get("/subscriptions/" + "s" * (MAX_ID_LENGTH + 1))
        assert fields_of(assert_problem(too_long, 422, "validation_error")) == {
            "subscription_id": "too_long"
        }


class TestChanges:
    def test_cancel_at_period_end_then_uncancel(
        self, client: httpx.Client, catalog: Catalog
    ) -> None:
        customer = create_customer(client)
        sub = subscribe(client, customer["id"], catalog.free["id"])
        url = f"/subscriptions/{sub['id']}"
        canceling = post(client, f"{url}/cancel")  # no body: at period end
        assert (canceling["status"], canceling["cancel_at_period_end"]) == ("active", True)
        assert canceling["canceled_at"] is not None
        assert post(client, f"{url}/cancel", json={"at_period_end": True}) == canceling
        assert entitlements(client, customer["id"]) == ["api", "reports"]  # until period end
        kept = post(client, f"{url}/uncancel")
        assert (kept["cancel_at_period_end"], kept["canceled_at"]) == (False, None)
        assert post(client, f"{url}/uncancel") == kept
        assert client.get(url).json() == kept

    def test_cancel_now_ends_it(self, client: httpx.Client, catalog: Catalog) -> None:
        customer = create_customer(client)
        sub = subscribe(client, customer["id"], catalog.free["id"])
        url = f"/subscriptions/{sub['id']}"
        ended = post(client, f"{url}/cancel", json={"at_period_end": False})
        assert ended["status"] == "canceled"
        assert ended["ended_at"] is not None
        assert entitlements(client, customer["id"]) == []
        assert post(client, f"{url}/cancel", json={"at_period_end": False}) == ended
        for action in ("uncancel", "pause", "resume"):
            assert_problem(client.post(f"{url}/{action}"), 409, "subscription_ended")
        assert client.get("/subscriptions", params={"status": "canceled"}).json()["total"] == 1

    def test_pause_and_resume(self, client: httpx.Client, catalog: Catalog) -> None:
        customer = create_customer(client)
        sub = subscribe(client, customer["id"], catalog.free["id"])
        url = f"/subscriptions/{sub['id']}"
        assert post(client, f"{url}/resume") == sub  # not paused: unchanged
        paused = post(client, f"{url}/pause")
        assert paused["status"] == "paused"
        assert entitlements(client, customer["id"]) == []
        assert post(client, f"{url}/pause") == paused
        resumed = post(client, f"{url}/resume")
        assert resumed["status"] == "active"
        assert entitlements(client, customer["id"]) == ["api", "reports"]

    def test_change_price(self, client: httpx.Client, catalog: Catalog) -> None:
        customer = create_customer(client)
        sub = subscribe(client, customer["id"], catalog.free["id"], quantity=2)
        url = f"/subscriptions/{sub['id']}"
        moved = post(
            client,
            f"{url}/change_price",
            json={"price_id": catalog.team_free["id"], "quantity": 4, "proration": "none"},
        )
        assert (moved["price_id"], moved["plan_id"], moved["quantity"]) == (
            catalog.team_free["id"],
            catalog.team_plan["id"],
            4,
        )
        assert entitlements(client, customer["id"]) == ["api", "sso"]
        back = post(client, f"{url}/change_price", json={"price_id": catalog.free["id"]})
        assert (back["price_id"], back["quantity"]) == (catalog.free["id"], 4)  # quantity kept
        paid = client.post(f"{url}/change_price", json={"price_id": catalog.paid["id"]})
        assert_problem(paid, 409, "provider_required")
        unknown = client.post(f"{url}/change_price", json={"price_id": "price_nope"})
        assert_problem(unknown, 404, "not_found")
        assert client.get(url).json() == back


class TestEntitlements:
    def test_entitlements_and_limits(self, client: httpx.Client, catalog: Catalog) -> None:
        customer = create_customer(client)
        cid = customer["id"]
        assert entitlements(client, cid) == []
        subscribe(client, cid, catalog.free["id"])
        subscribe(client, cid, catalog.team_free["id"])
        assert entitlements(client, cid) == ["api", "reports", "sso"]  # the union, sorted

        def check(key: str) -> bool:
            response = client.get(f"/customers/{cid}/entitlements/{key}")
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["customer_id"], body["key"]) == (cid, key)
            allowed: bool = body["allowed"]
            return allowed

        def limit(key: str) -> int | None:
            response = client.get(f"/customers/{cid}/limits/{key}")
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["customer_id"], body["key"]) == (cid, key)
            value: int | None = body["limit"]
            return value

        assert (check("sso"), check("api"), check("billing")) == (True, True, False)
        assert (limit("projects"), limit("seats"), limit("storage")) == (10, 5, None)

    def test_an_unknown_customer_may_use_nothing(self, client: httpx.Client) -> None:
        assert entitlements(client, "cus_nobody") == []
        check = client.get("/customers/cus_nobody/entitlements/api").json()
        assert check == {"customer_id": "cus_nobody", "key": "api", "allowed": False}
        limit = client.get("/customers/cus_nobody/limits/seats").json()
        assert limit == {"customer_id": "cus_nobody", "key": "seats", "limit": None}

    def test_a_key_must_be_a_slug(self, client: httpx.Client) -> None:
        for path in ("/customers/cus_1/entitlements/Not%20A%20Slug", "/customers/cus_1/limits/A"):
            body = assert_problem(client.get(path), 422, "validation_error")
            assert set(fields_of(body)) == {"key"}
        too_long = client.get("/customers/cus_1/limits/" + "k" * 65)
        assert fields_of(assert_problem(too_long, 422, "validation_error")) == {"key": "too_long"}


def test_the_subscription_routes_need_the_api_key(server: LiveServer) -> None:
    with server.client(None) as anonymous:
        for method, path in (
            ("GET", "/subscriptions"),
            ("POST", "/subscriptions"),
            ("GET", "/subscriptions/sub_1"),
            ("POST", "/subscriptions/sub_1/cancel"),
            ("GET", "/customers/cus_1/entitlements"),
            ("GET", "/customers/cus_1/entitlements/api"),
            ("GET", "/customers/cus_1/limits/seats"),
        ):
            assert_problem(anonymous.request(method, path), 401, "unauthorized")


def test_the_openapi_document_states_the_limits() -> None:
    document = create_app(Billing("memory://"), auth=APIKeyAuth(API_KEY)).openapi()
    schemas = document["components"]["schemas"]
    create = schemas["SubscriptionCreate"]
    assert create["additionalProperties"] is False
    assert create["required"] == ["customer_id", "price_id"]
    assert create["properties"]["customer_id"]["maxLength"] == MAX_ID_LENGTH
    assert create["properties"]["quantity"]["maximum"] == MAX_QUANTITY
    assert create["properties"]["trial_days"]["maximum"] == MAX_TRIAL_DAYS
    change = schemas["SubscriptionPriceChange"]
    assert change["properties"]["proration"]["enum"] == ["create_prorations", "none"]
    assert change["properties"]["quantity"]["minimum"] == 1
    cancel = document["paths"]["/subscriptions/{subscription_id}/cancel"]["post"]
    assert cancel["requestBody"].get("required") is not True  # the body may be left out
    listed = document["paths"]["/subscriptions"]["get"]["parameters"]
    status = next(p for p in listed if p["name"] == "status")
    assert "paused" in status["schema"]["anyOf"][0]["enum"]
    for name in ("Subscription", "SubscriptionList", "Entitlements", "EntitlementCheck"):
        assert name in schemas


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"customer_id": "cus_\ud800"}, "customer_id"),
        ({"price_id": "price_\ud800"}, "price_id"),
        ({"metadata": {"k": "v\ud800"}}, "metadata.k"),
    ],
)
def test_a_lone_surrogate_is_a_422_with_nothing_written(
    client: httpx.Client, catalog: Catalog, fields: dict[str, Any], field: str
) -> None:
    customer = create_customer(client)
    document = {"customer_id": customer["id"], "price_id": catalog.free["id"], **fields}
    response = client.post(
        "/subscriptions",
        content=json.dumps(document).encode("ascii"),
        headers={"content-type": "application/json"},
    )
    body = assert_problem(response, 422, "validation_error")
    assert fields_of(body) == {field: "invalid_unicode"}
    assert client.get("/subscriptions").json()["total"] == 0
