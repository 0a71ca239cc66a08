"""The OpenAPI document is complete, and schemathesis finds no 5xx and no non-conformance."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.core.result import Ok

from qzpay import Billing
from qzpay.api import APIKeyAuth, create_app
from tests.api.live import API_KEY, LiveServer, serving
from tests.conftest import reset_postgres
from tests.support.hostile_text import with_lone_surrogate

CATALOG_OPERATIONS = {
    ("post", "/plans"),
    ("get", "/plans"),
    ("get", "/plans/{plan_id}"),
    ("get", "/plans/by-key/{key}"),
    ("patch", "/plans/{plan_id}"),
    ("post", "/plans/{plan_id}/archive"),
    ("post", "/prices"),
    ("get", "/prices"),
    ("get", "/prices/{price_id}"),
    ("get", "/prices/by-lookup-key/{lookup_key}"),
    ("patch", "/prices/{price_id}"),
    ("post", "/prices/{price_id}/archive"),
}
SUBSCRIPTION_OPERATIONS = {
    ("post", "/subscriptions"),
    ("get", "/subscriptions"),
    ("get", "/subscriptions/{subscription_id}"),
    ("post", "/subscriptions/{subscription_id}/cancel"),
    ("post", "/subscriptions/{subscription_id}/uncancel"),
    ("post", "/subscriptions/{subscription_id}/change_price"),
    ("post", "/subscriptions/{subscription_id}/pause"),
    ("post", "/subscriptions/{subscription_id}/resume"),
    ("get", "/customers/{customer_id}/entitlements"),
    ("get", "/customers/{customer_id}/entitlements/{key}"),
    ("get", "/customers/{customer_id}/limits/{key}"),
}
OPERATIONS = {
    ("get", "/health"),
    ("post", "/customers"),
    ("get", "/customers"),
    ("get", "/customers/{customer_id}"),
    ("patch", "/customers/{customer_id}"),
    ("delete", "/customers/{customer_id}"),
    ("get", "/customers/by-provider-id/{provider_customer_id}"),
    ("get", "/events"),
    ("post", "/webhooks/{provider}"),
    *CATALOG_OPERATIONS,
    *SUBSCRIPTION_OPERATIONS,
}
PUBLIC = {("get", "/health"), ("post", "/webhooks/{provider}")}  # no API key


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("openapi") / "billing.db"
    with serving(create_app(Billing(f"sqlite:///{path}"), auth=APIKeyAuth(API_KEY))) as server:
        yield server


@pytest.fixture(scope="module")
def live_postgres(postgres_url: str) -> Iterator[LiveServer]:
    billing = Billing(postgres_url)
    try:
        with serving(create_app(billing, auth=APIKeyAuth(API_KEY))) as server:
            yield server
    finally:
        asyncio.run(reset_postgres(postgres_url))


@pytest.fixture(scope="module")
def spec(live: LiveServer) -> dict[str, Any]:
    with live.client(None) as client:
        document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


class TestDocument:
    def test_has_every_operation(self, spec: dict[str, Any]) -> None:
        assert spec == DOCUMENT
        assert {(m, p) for m, p, _ in operations(spec)} == OPERATIONS
        assert {o["operationId"] for _, _, o in operations(spec)} == {
            "health",
            "create_customer",
            "list_customers",
            "get_customer",
            "get_customer_by_provider_id",
            "update_customer",
            "delete_customer",
            "list_events",
            "receive_webhook",
            "create_plan",
            "list_plans",
            "get_plan",
            "get_plan_by_key",
            "update_plan",
            "archive_plan",
            "create_price",
            "list_prices",
            "get_price",
            "get_price_by_lookup_key",
            "update_price",
            "archive_price",
            "create_subscription",
            "list_subscriptions",
            "get_subscription",
            "cancel_subscription",
            "uncancel_subscription",
            "change_subscription_price",
            "pause_subscription",
            "resume_subscription",
            "list_entitlements",
            "check_entitlement",
            "get_limit",
        }

    def test_errors_are_documented_as_problem_json(self, spec: dict[str, Any]) -> None:
        for method, path, operation in operations(spec):
            responses = operation["responses"]
            assert {"500", "503"} <= set(responses), (method, path)
            for status, response in responses.items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], status
                    schema = response["content"]["application/problem+json"]["schema"]
                    assert {"type", "title", "status", "detail", "code"} <= set(schema["required"])
                    assert "errors" in schema["properties"]
            if (method, path) in PUBLIC:
                assert "security" not in operation, path
                assert "401" not in responses, path
            else:
                assert operation["security"] == [{"APIKey": []}], path
                assert "401" in responses, path
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in responses, path

    def test_schemas(self, spec: dict[str, Any]) -> None:
        schemas = spec["components"]["schemas"]
        for name in ("Customer", "CustomerCreate", "CustomerUpdate", "CustomerList", "EventList"):
            assert name in schemas
        for name in ("Plan", "PlanCreate", "PlanUpdate", "PlanList"):
            assert name in schemas
        for name in ("Price", "PriceCreate", "PriceUpdate", "PriceList"):
            assert name in schemas
        for name in (
            "Subscription",
            "SubscriptionCreate",
            "SubscriptionCancel",
            "SubscriptionPriceChange",
            "SubscriptionList",
            "Entitlements",
            "EntitlementCheck",
            "LimitValue",
        ):
            assert name in schemas
        assert "HTTPValidationError" not in schemas  # FastAPI's default error body is not used
        update = schemas["CustomerUpdate"]
        assert update["additionalProperties"] is False
        assert update["properties"]["email"] == {
            "type": "string",
            "title": "Email",
            "description": "A valid email address; cannot be null.",
        }
        assert {"type": "null"} in update["properties"]["name"]["anyOf"]
        assert spec["components"]["securitySchemes"]["APIKey"] == {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: `Authorization: Bearer <key>`.",
        }
        metadata = [
            p for p in spec["paths"]["/customers"]["get"]["parameters"] if p["name"] == "metadata"
        ]
        assert metadata[0]["style"] == "deepObject"

    def test_webhook_route(self, spec: dict[str, Any]) -> None:
        operation = spec["paths"]["/webhooks/{provider}"]["post"]
        assert set(operation["responses"]) == {
            "200",
            "400",
            "404",
            "413",
            "422",
            "500",
            "502",
            "503",
        }
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/WebhookReceipt"}
        receipt = spec["components"]["schemas"]["WebhookReceipt"]
        assert receipt["required"] == ["status", "event_id"]
        assert receipt["properties"]["status"]["enum"] == ["applied", "ignored", "duplicate"]
        body = operation["requestBody"]
        assert body["required"] is True
        assert "raw bytes" in body["description"]
        assert operation["tags"] == ["webhooks"]


# The document is static, so it is loaded once at import time (schemathesis' lazy fixture
# loader does not support pytest 9); the test sends its requests to the live server.
DOCUMENT = create_app(Billing("memory://"), auth=APIKeyAuth(API_KEY)).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# The catalog's operations (plans, prices) get fewer examples, to keep the run short; the
# rest keep the full count.
CATALOG_TAGS = ["plans", "prices"]
core_schema = schema.exclude(tag=CATALOG_TAGS)
catalog_schema = schema.include(tag=CATALOG_TAGS)


def test_schemathesis_runs_every_operation() -> None:
    """The two runs below together cover every documented operation (subscriptions and
    entitlements are in the full-count run, not excluded with the catalog's tags)."""
    selected = []
    for run in (core_schema, catalog_schema):
        for result in run.get_all_operations():
            assert isinstance(result, Ok), result.err()
            selected.append((result.ok().method.lower(), result.ok().path))
    assert len(selected) == len(set(selected))
    assert set(selected) == OPERATIONS


@catalog_schema.hook
@core_schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """One body in four gets a lone surrogate in one of its strings or keys (or a new key made
    of one): valid JSON (``"\\ud800"``) that schemathesis never generates by itself, and that no
    database can store. It must be a 4xx, never a 5xx."""
    return st.integers(min_value=0, max_value=3).flatmap(
        lambda draw: with_lone_surrogate(body) if draw == 0 else st.just(body)
    )


@core_schema.parametrize()
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_schemathesis(case: schemathesis.Case[Any], live: LiveServer) -> None:
    """Positive and negative data for every operation: never a 5xx, always as documented."""
    _check(case, live)


@catalog_schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_schemathesis_catalog(case: schemathesis.Case[Any], live: LiveServer) -> None:
    """The same for the plans and prices operations, with fewer examples each."""
    _check(case, live)


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
@pytest.mark.postgres
def test_schemathesis_postgres(case: schemathesis.Case[Any], live_postgres: LiveServer) -> None:
    """The same on PostgreSQL, whose text cannot hold NUL (it once answered 503 to those)."""
    _check(case, live_postgres)


def _check(case: schemathesis.Case[Any], live: LiveServer) -> None:
    case.call_and_validate(
        base_url=live.base_url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        checks=[
            checks.not_a_server_error,
            checks.response_schema_conformance,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.ignored_auth,
        ],
    )
