"""``/plans`` and ``/prices`` through a real HTTP server, over memory, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.live import LiveServer
from tests.api.test_routes import assert_problem


def create_plan(client: httpx.Client, key: str = "pro", **fields: Any) -> dict[str, Any]:
    response = client.post("/plans", json={"key": key, "name": key.title(), **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def create_price(client: httpx.Client, plan_id: str, **fields: Any) -> dict[str, Any]:
    body = {"plan_id": plan_id, "currency": "usd", "unit_amount": 1999, "interval": "month"}
    response = client.post("/prices", json={**body, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


class TestPlans:
    def test_create_returns_201_with_location(self, client: httpx.Client) -> None:
        response = client.post(
            "/plans",
            json={
                "key": "pro",
                "name": " Pro ",
                "description": "For teams",
                "entitlements": ["api", "sso", "api"],
                "limits": {"seats": 5},
                "metadata": {"tier": "2"},
            },
        )
        assert response.status_code == 201, response.text
        plan = response.json()
        assert plan["id"].startswith("plan_")
        assert plan["name"] == "Pro"
        assert plan["entitlements"] == ["api", "sso"]
        assert plan["limits"] == {"seats": 5}
        assert plan["active"] is True
        assert response.headers["location"].endswith(f"/plans/{plan['id']}")
        assert client.get(response.headers["location"]).json() == plan
        assert client.get("/plans/by-key/pro").json() == plan

    def test_validation_conflict_and_not_found(self, client: httpx.Client) -> None:
        invalid = client.post(
            "/plans", json={"key": "Not A Slug", "name": " ", "limits": {"a": -1}}
        )
        body = assert_problem(invalid, 422, "validation_error")
        assert {"key", "name"} <= {e["field"] for e in body["errors"]}
        shape = client.post("/plans", json={"key": 5, "surprise": True})
        body = assert_problem(shape, 422, "validation_error")
        assert {e["field"]: e["code"] for e in body["errors"]} == {
            "key": "invalid_type",
            "name": "required",
            "surprise": "unknown_field",
        }
        create_plan(client)
        assert_problem(
            client.post("/plans", json={"key": "pro", "name": "X"}), 409, "plan_key_taken"
        )
        assert_problem(client.get("/plans/plan_unknown"), 404, "not_found")
        assert_problem(client.get("/plans/by-key/nope"), 404, "not_found")
        assert_problem(client.patch("/plans/plan_unknown", json={"name": "X"}), 404, "not_found")
        assert_problem(client.post("/plans/plan_unknown/archive"), 404, "not_found")

    def test_idempotency_key(self, client: httpx.Client) -> None:
        headers = {"Idempotency-Key": "create-pro"}
        body = {"key": "pro", "name": "Pro"}
        first = client.post("/plans", json=body, headers=headers)
        again = client.post("/plans", json=body, headers=headers)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        other = client.post("/plans", json={"key": "pro2", "name": "Pro"}, headers=headers)
        assert_problem(other, 409, "idempotency_key_reused")

    def test_list_update_archive(self, client: httpx.Client) -> None:
        pro = create_plan(client, "pro", metadata={"a": "1", "b": "2"})
        basic = create_plan(client, "basic")
        page = client.get("/plans", params={"limit": 1}).json()
        assert [p["id"] for p in page["data"]] == [basic["id"]]  # newest first
        assert (page["total"], page["limit"], page["offset"], page["has_more"]) == (2, 1, 0, True)

        updated = client.patch(
            f"/plans/{pro['id']}",
            json={"name": "Pro 2", "limits": {"seats": 9}, "metadata": {"a": None, "c": "3"}},
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["limits"] == {"seats": 9}
        assert updated.json()["metadata"] == {"b": "2", "c": "3"}
        assert client.patch(f"/plans/{pro['id']}", json={}).json() == updated.json()
        null_name = client.patch(f"/plans/{pro['id']}", json={"name": None})
        assert_problem(null_name, 422, "validation_error")

        price = create_price(client, pro["id"])
        archived = client.post(f"/plans/{pro['id']}/archive")
        assert archived.status_code == 200
        assert archived.json()["active"] is False
        assert client.get(f"/prices/{price['id']}").json()["active"] is False  # with its prices
        assert client.post(f"/plans/{pro['id']}/archive").json() == archived.json()
        refused = client.patch(f"/plans/{pro['id']}", json={"name": "Again"})
        assert_problem(refused, 409, "plan_archived")
        no_price = client.post(
            "/prices",
            json={"plan_id": pro["id"], "currency": "usd", "unit_amount": 1, "interval": "month"},
        )
        assert_problem(no_price, 409, "plan_archived")

        assert [p["id"] for p in client.get("/plans?active=true").json()["data"]] == [basic["id"]]
        assert [p["id"] for p in client.get("/plans?active=false").json()["data"]] == [pro["id"]]
        assert_problem(client.get("/plans?limit=0"), 422, "validation_error")


class TestPrices:
    def test_create_get_lookup_list(self, client: httpx.Client) -> None:
        plan = create_plan(client)
        response = client.post(
            "/prices",
            json={
                "plan_id": plan["id"],
                "currency": "usd",
                "unit_amount": 1999,
                "interval": "month",
                "trial_days": 14,
                "lookup_key": "pro_monthly",
                "metadata": {"v": "1"},
            },
            headers={"Idempotency-Key": "price-1"},
        )
        assert response.status_code == 201, response.text
        price = response.json()
        assert price["id"].startswith("price_")
        assert (price["currency"], price["unit_amount"], price["trial_days"]) == ("USD", 1999, 14)
        assert response.headers["location"].endswith(f"/prices/{price['id']}")
        assert client.get(response.headers["location"]).json() == price
        assert client.get("/prices/by-lookup-key/pro_monthly").json() == price

        other = create_plan(client, "basic")
        create_price(client, other["id"], currency="eur", unit_amount=500)
        mine = client.get("/prices", params={"plan_id": plan["id"]}).json()
        assert [p["id"] for p in mine["data"]] == [price["id"]]
        assert client.get("/prices", params={"currency": "EUR"}).json()["total"] == 1
        assert client.get("/prices").json()["total"] == 2
        assert_problem(client.get("/prices", params={"currency": "zz"}), 422, "validation_error")

    def test_validation_conflict_and_not_found(self, client: httpx.Client) -> None:
        plan = create_plan(client)
        invalid = client.post(
            "/prices",
            json={"plan_id": plan["id"], "currency": "usd", "unit_amount": -1, "interval": "month",
                  "trial_days": 0},
        )  # fmt: skip
        body = assert_problem(invalid, 422, "validation_error")
        assert {e["field"] for e in body["errors"]} == {"unit_amount", "trial_days"}
        bad_interval = client.post(
            "/prices",
            json={"plan_id": plan["id"], "currency": "usd", "unit_amount": 1, "interval": "hour"},
        )
        assert_problem(bad_interval, 422, "validation_error")
        unknown = client.post(
            "/prices",
            json={"plan_id": "plan_nope", "currency": "usd", "unit_amount": 1, "interval": "day"},
        )
        assert_problem(unknown, 404, "not_found")
        create_price(client, plan["id"], lookup_key="pro_monthly")
        taken = client.post(
            "/prices",
            json={"plan_id": plan["id"], "currency": "usd", "unit_amount": 2, "interval": "month",
                  "lookup_key": "pro_monthly"},
        )  # fmt: skip
        assert_problem(taken, 409, "lookup_key_taken")
        assert_problem(client.get("/prices/price_nope"), 404, "not_found")
        assert_problem(client.get("/prices/by-lookup-key/nope"), 404, "not_found")
        assert_problem(client.post("/prices/price_nope/archive"), 404, "not_found")

    def test_update_moves_lookup_key_and_archive(self, client: httpx.Client) -> None:
        plan = create_plan(client)
        old = create_price(client, plan["id"], lookup_key="pro_monthly")
        new = create_price(client, plan["id"], unit_amount=2499)
        moved = client.patch(f"/prices/{new['id']}", json={"lookup_key": "pro_monthly"})
        assert moved.status_code == 200, moved.text
        assert moved.json()["lookup_key"] == "pro_monthly"
        assert client.get(f"/prices/{old['id']}").json()["lookup_key"] is None
        assert client.get("/prices/by-lookup-key/pro_monthly").json()["unit_amount"] == 2499
        fixed_fields = client.patch(f"/prices/{new['id']}", json={"unit_amount": 5})
        body = assert_problem(fixed_fields, 422, "validation_error")
        assert body["errors"][0]["code"] == "unknown_field"
        merged = client.patch(
            f"/prices/{new['id']}", json={"lookup_key": None, "metadata": {"a": "b"}}
        )
        assert (merged.json()["lookup_key"], merged.json()["metadata"]) == (None, {"a": "b"})

        archived = client.post(f"/prices/{old['id']}/archive")
        assert archived.status_code == 200
        assert archived.json()["active"] is False
        active = client.get("/prices", params={"active": "true"}).json()
        assert [p["id"] for p in active["data"]] == [new["id"]]


def test_the_catalog_routes_need_the_api_key(server: LiveServer) -> None:
    with server.client(None) as anonymous:
        for method, path in (("GET", "/plans"), ("POST", "/prices"), ("GET", "/plans/by-key/x")):
            assert_problem(anonymous.request(method, path), 401, "unauthorized")
