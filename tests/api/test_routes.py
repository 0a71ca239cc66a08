"""Every route through a real HTTP server on 127.0.0.1, over memory, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.live import LiveServer

PROBLEM = "application/problem+json"


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/customers", json={"email": "user@example.com", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(":" + code)
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == response.request.url.path
    return body


class TestCreate:
    def test_returns_201_with_the_customer_and_its_location(self, client: httpx.Client) -> None:
        response = client.post(
            "/customers",
            json={
                "email": "user@example.com",
                "name": " John Doe ",
                "phone": "+1 415 555 2671",
                "address": {"line1": "1 Market St", "country": "us"},
                "metadata": {"userId": "usr_123"},
            },
        )
        assert response.status_code == 201
        body = response.json()
        assert body["id"].startswith("cus_")
        assert body["name"] == "John Doe"
        assert body["phone"] == "+14155552671"
        assert body["address"]["country"] == "US"
        assert body["metadata"] == {"userId": "usr_123"}
        assert body["deleted_at"] is None
        assert response.headers["location"].endswith(f"/customers/{body['id']}")
        assert client.get(response.headers["location"]).json() == body

    def test_reports_every_library_validation_error(self, client: httpx.Client) -> None:
        response = client.post(
            "/customers",
            json={"email": "not-an-email", "phone": "12", "address": {"country": "XX"}},
        )
        body = assert_problem(response, 422, "validation_error")
        assert {e["field"]: e["code"] for e in body["errors"]} == {
            "email": "invalid_email",
            "phone": "invalid_phone",
            "address.country": "invalid_country",
        }
        assert client.get("/customers").json()["total"] == 0

    def test_request_shape_errors_have_the_same_shape(self, client: httpx.Client) -> None:
        response = client.post(
            "/customers", json={"email": 5, "metadata": {"n": 1}, "surprise": True}
        )
        body = assert_problem(response, 422, "validation_error")
        assert {e["field"]: e["code"] for e in body["errors"]} == {
            "email": "invalid_type",
            "metadata.n": "invalid_type",
            "surprise": "unknown_field",
        }
        assert all(set(e) == {"field", "code", "message"} for e in body["errors"])

    def test_missing_email_and_malformed_json(self, client: httpx.Client) -> None:
        missing = assert_problem(client.post("/customers", json={}), 422, "validation_error")
        assert missing["errors"][0]["field"] == "email"
        assert missing["errors"][0]["code"] == "required"
        broken = client.post(
            "/customers", content=b"{not json", headers={"content-type": "application/json"}
        )
        body = assert_problem(broken, 422, "validation_error")
        assert body["errors"][0]["field"] == "body"
        assert body["errors"][0]["code"] == "invalid_json"

    def test_idempotency_key_header_makes_retries_safe(self, client: httpx.Client) -> None:
        headers = {"Idempotency-Key": "signup-42"}
        payload = {"email": "retry@example.com"}
        first = client.post("/customers", json=payload, headers=headers)
        again = client.post("/customers", json=payload, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert client.get("/customers").json()["total"] == 1
        other = client.post("/customers", json={"email": "x@example.com"}, headers=headers)
        assert_problem(other, 409, "idempotency_key_reused")


class TestGet:
    def test_by_id_and_unknown_id(self, client: httpx.Client) -> None:
        customer = create(client)
        assert client.get(f"/customers/{customer['id']}").json() == customer
        body = assert_problem(client.get("/customers/cus_unknown"), 404, "not_found")
        assert "cus_unknown" in body["detail"]

    def test_a_deleted_customer_is_still_returned(self, client: httpx.Client) -> None:
        customer = create(client)
        assert client.delete(f"/customers/{customer['id']}").status_code == 204
        assert client.get(f"/customers/{customer['id']}").json()["deleted_at"] is not None

    def test_by_provider_id(self, server: LiveServer, client: httpx.Client) -> None:
        assert server.billing is not None
        first = create(client)
        second = create(client, email="second@example.com")
        server.run(
            server.billing.customers.link(first["id"], provider="stripe", provider_customer_id="x1")
        )
        found = client.get("/customers/by-provider-id/x1")
        assert found.status_code == 200
        assert found.json()["provider_customer_ids"] == {"stripe": "x1"}
        at_stripe = client.get("/customers/by-provider-id/x1", params={"provider": "stripe"})
        assert at_stripe.json()["id"] == first["id"]
        assert_problem(
            client.get("/customers/by-provider-id/x1", params={"provider": "mercadopago"}),
            404,
            "not_found",
        )
        assert_problem(client.get("/customers/by-provider-id/nope"), 404, "not_found")
        bad = client.get("/customers/by-provider-id/x1", params={"provider": "Bad Name"})
        assert assert_problem(bad, 422, "validation_error")["errors"][0]["field"] == "provider"
        # The same id at two providers is ambiguous without ?provider=.
        server.run(
            server.billing.customers.link(
                second["id"], provider="mercadopago", provider_customer_id="x1"
            )
        )
        ambiguous = client.get("/customers/by-provider-id/x1")
        assert_problem(ambiguous, 409, "ambiguous_provider_id")


class TestList:
    def test_filters_pages_and_cursor(self, client: httpx.Client) -> None:
        ids = [
            create(
                client, email=f"u{i}@example.com", metadata={"plan": "pro" if i % 2 else "free"}
            )["id"]
            for i in range(7)
        ]
        newest_first = ids[::-1]

        page = client.get("/customers", params={"limit": 3}).json()
        assert [c["id"] for c in page["data"]] == newest_first[:3]
        assert (page["total"], page["has_more"], page["limit"], page["offset"]) == (7, True, 3, 0)
        assert page["next_cursor"] == newest_first[2]

        offset = client.get("/customers", params={"limit": 3, "offset": 6}).json()
        assert [c["id"] for c in offset["data"]] == newest_first[6:]
        assert (offset["has_more"], offset["next_cursor"]) == (False, None)

        walked: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["starting_after"] = cursor
            body = client.get("/customers", params=params).json()
            assert body["total"] == 7
            walked += [c["id"] for c in body["data"]]
            cursor = body["next_cursor"]
            assert cursor is None or body["has_more"]
            if cursor is None:
                break
        assert walked == newest_first

        email = client.get("/customers", params={"email": "U3@EXAMPLE.com"}).json()
        assert [c["id"] for c in email["data"]] == [ids[3]]
        pro = client.get("/customers", params={"metadata[plan]": "pro", "limit": 2}).json()
        assert pro["total"] == 3
        assert [c["id"] for c in pro["data"]] == [ids[5], ids[3]]
        after = client.get(
            "/customers",
            params={"metadata[plan]": "pro", "limit": 2, "starting_after": pro["next_cursor"]},
        ).json()
        assert [c["id"] for c in after["data"]] == [ids[1]]
        assert (after["total"], after["has_more"], after["next_cursor"]) == (3, False, None)
        both = client.get("/customers", params=[("metadata[plan]", "pro"), ("metadata[x]", "1")])
        assert both.json()["total"] == 0

    def test_deleted_customers_only_on_request(self, client: httpx.Client) -> None:
        customer = create(client)
        client.delete(f"/customers/{customer['id']}")
        assert client.get("/customers").json()["total"] == 0
        listed = client.get("/customers", params={"include_deleted": "true"}).json()
        assert [c["id"] for c in listed["data"]] == [customer["id"]]

    def test_bad_parameters_are_422_with_every_error(self, client: httpx.Client) -> None:
        response = client.get("/customers", params={"limit": 0, "offset": -1, "metadata[a]b]": "x"})
        body = assert_problem(response, 422, "validation_error")
        assert {e["field"] for e in body["errors"]} == {"limit", "offset"}
        bad_key = client.get("/customers", params={"metadata[a]b]": "x"})
        errors = assert_problem(bad_key, 422, "validation_error")["errors"]
        assert errors[0]["code"] == "invalid_key"
        cases: list[list[tuple[str, str | int | float | bool | None]]] = [
            [("metadata", "x")],
            [("metadata[a", "x")],
            [("metadata[a]", "1"), ("metadata[a]", "2")],
            [("offset", "0"), ("starting_after", "cus_x")],
            [("limit", "101")],
            [("limit", "ten")],
        ]
        for params in cases:
            assert_problem(client.get("/customers", params=params), 422, "validation_error")


class TestUpdate:
    def test_absent_is_kept_null_clears_metadata_merges(self, client: httpx.Client) -> None:
        customer = create(
            client,
            name="John",
            phone="+14155552671",
            address={"city": "SF"},
            metadata={"userId": "usr_1", "plan": "free"},
        )
        url = f"/customers/{customer['id']}"
        renamed = client.patch(url, json={"name": "Jane", "metadata": {"plan": "pro"}})
        assert renamed.status_code == 200
        body = renamed.json()
        assert body["name"] == "Jane"
        assert body["phone"] == "+14155552671"  # absent: unchanged
        assert body["address"] == customer["address"]
        assert body["metadata"] == {"userId": "usr_1", "plan": "pro"}

        cleared = client.patch(
            url, json={"phone": None, "address": None, "metadata": {"plan": None}}
        ).json()
        assert (cleared["phone"], cleared["address"]) == (None, None)
        assert cleared["name"] == "Jane"
        assert cleared["metadata"] == {"userId": "usr_1"}
        assert client.patch(url, json={"name": None}).json()["name"] is None

        unchanged = client.patch(url, json={})
        assert unchanged.status_code == 200
        assert unchanged.json()["updated_at"] == client.get(url).json()["updated_at"]

    def test_errors(self, client: httpx.Client) -> None:
        customer = create(client)
        url = f"/customers/{customer['id']}"
        for payload, field in (
            ({"email": None}, "email"),
            ({"email": "nope"}, "email"),
            ({"metadata": None}, "metadata"),
            ({"id": "cus_other"}, "id"),
            ({"name": "   "}, "name"),
        ):
            body = assert_problem(client.patch(url, json=payload), 422, "validation_error")
            assert [e["field"] for e in body["errors"]] == [field], payload
        assert_problem(client.patch("/customers/cus_unknown", json={}), 404, "not_found")
        client.delete(url)
        assert_problem(client.patch(url, json={"name": "x"}), 409, "customer_deleted")


class TestDelete:
    def test_soft_delete_twice_and_unknown(self, client: httpx.Client) -> None:
        customer = create(client)
        url = f"/customers/{customer['id']}"
        first = client.delete(url)
        assert (first.status_code, first.content) == (204, b"")
        assert client.delete(url).status_code == 204
        assert client.get(url).json()["deleted_at"] is not None
        assert_problem(client.delete("/customers/cus_unknown"), 404, "not_found")


class TestEvents:
    def test_reads_the_log_in_commit_order(self, client: httpx.Client) -> None:
        customer = create(client)
        client.patch(f"/customers/{customer['id']}", json={"name": "N"})
        client.delete(f"/customers/{customer['id']}")
        log = client.get("/events").json()
        assert [e["type"] for e in log["data"]] == [
            "customer.created",
            "customer.updated",
            "customer.deleted",
        ]
        assert log["data"][1]["previous"] == {"name": None}
        assert log["next_after"] == log["data"][-1]["id"]

        first = client.get("/events", params={"limit": 1}).json()
        rest = client.get("/events", params={"after": first["next_after"]}).json()
        assert first["data"] + rest["data"] == log["data"]
        empty = client.get("/events", params={"after": log["next_after"]}).json()
        assert empty == {"data": [], "next_after": log["next_after"]}

    def test_errors(self, client: httpx.Client) -> None:
        assert client.get("/events").json() == {"data": [], "next_after": None}
        assert_problem(client.get("/events", params={"after": "evt_unknown"}), 404, "not_found")
        assert_problem(client.get("/events", params={"limit": 1001}), 422, "validation_error")


class TestHealthAndAuth:
    def test_health_needs_no_key(self, server: LiveServer) -> None:
        with server.client(key=None) as anonymous:
            response = anonymous.get("/health")
        assert (response.status_code, response.json()) == (200, {"status": "ok"})

    @pytest.mark.parametrize(
        "authorization",
        [
            None,
            "Bearer wrong-key-0123456789abcdef",
            "Basic dGVzdDp0ZXN0",
            "Bearer",
            "test-key-0123456789abcdef",
        ],
    )
    def test_every_other_route_needs_a_valid_key(
        self, server: LiveServer, authorization: str | None
    ) -> None:
        headers = {} if authorization is None else {"Authorization": authorization}
        with httpx.Client(base_url=server.base_url, headers=headers) as anonymous:
            for method, path in (
                ("GET", "/customers"),
                ("POST", "/customers"),
                ("GET", "/customers/cus_x"),
                ("GET", "/customers/by-provider-id/x"),
                ("PATCH", "/customers/cus_x"),
                ("DELETE", "/customers/cus_x"),
                ("GET", "/events"),
            ):
                response = anonymous.request(method, path, json={"email": "a@example.com"})
                assert_problem(response, 401, "unauthorized")
                assert response.headers["www-authenticate"].startswith("Bearer")

    def test_unknown_route_and_method_are_problems(self, client: httpx.Client) -> None:
        assert_problem(client.get("/nowhere"), 404, "not_found")
        assert_problem(client.put("/customers"), 405, "method_not_allowed")
