"""Error mapping (by type, never by message), no leaks on 5xx, and the router in a host app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException

from qzpay import Billing
from qzpay.api import APIKeyAuth, create_app, create_router
from qzpay.errors import (
    ConflictError,
    NotFoundError,
    ProviderSyncError,
    QZPayError,
    StorageError,
    UnknownArgumentError,
    ValidationError,
    WebhookSignatureError,
)
from tests.api.live import API_KEY

SECRET = "postgresql://admin:hunter2@10.0.0.5/prod"  # what must never reach a client


@pytest.fixture
async def memory_billing() -> AsyncIterator[Billing]:
    async with Billing("memory://") as billing:
        yield billing


def asgi_client(app: FastAPI, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
    )


def failing_get(exc: Exception) -> Any:
    async def get(customer_id: str) -> None:
        raise exc

    return get


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (ValidationError([{"field": "f", "code": "c", "message": "m"}]), 422, "validation_error"),
        (
            UnknownArgumentError([{"field": "f", "code": "c", "message": "m"}]),
            422,
            "validation_error",
        ),
        (NotFoundError("no such thing"), 404, "not_found"),
        (ConflictError("taken", code="provider_id_taken"), 409, "provider_id_taken"),
        (WebhookSignatureError("bad signature"), 400, "webhook_signature_invalid"),
        (
            ProviderSyncError(
                f"stripe said {SECRET}",
                provider="stripe",
                operation="create_customer",
                cause=RuntimeError(SECRET),
            ),
            502,
            "provider_sync_failed",
        ),
        (StorageError(f"cannot reach {SECRET}", code="storage_busy"), 503, "storage_busy"),
        (QZPayError(f"something in {SECRET}"), 500, "qzpay_error"),
        (RuntimeError(f"boom {SECRET}"), 500, "internal_error"),
        (KeyError(SECRET), 500, "internal_error"),
    ],
)
async def test_each_error_type_maps_to_its_status_and_code(
    memory_billing: Billing,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    exc: Exception,
    status: int,
    code: str,
) -> None:
    monkeypatch.setattr(memory_billing.customers, "get", failing_get(exc))
    app = create_app(memory_billing, auth=APIKeyAuth(API_KEY))
    caplog.set_level(logging.WARNING, logger="qzpay.api")
    async with asgi_client(app, authorization=f"Bearer {API_KEY}") as client:
        response = await client.get("/customers/cus_1")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"] == f"tag:qzpay,2025:problem:{code}"
    assert body["instance"] == "/customers/cus_1"
    if status >= 500:
        assert SECRET not in response.text
        assert "hunter2" not in response.text
        assert "Traceback" not in response.text
    if status == 502:
        assert (body["provider"], body["operation"], body["ambiguous"]) == (
            "stripe",
            "create_customer",
            False,
        )
    if status == 503:
        assert response.headers["retry-after"] == "1"
    if status in (500, 502, 503):
        assert caplog.records, "server-side failures are logged"


async def test_a_subclass_maps_by_its_nearest_mapped_type(
    memory_billing: Billing, monkeypatch: pytest.MonkeyPatch
) -> None:
    class VanishedError(NotFoundError):
        code = "vanished"

    monkeypatch.setattr(memory_billing.customers, "get", failing_get(VanishedError("gone")))
    app = create_app(memory_billing, auth=None)
    async with asgi_client(app) as client:
        response = await client.get("/customers/cus_1")
    assert (response.status_code, response.json()["code"]) == (404, "vanished")


async def test_health_is_503_when_storage_fails(
    memory_billing: Billing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory_billing.customers, "get", failing_get(StorageError(SECRET)))
    async with asgi_client(create_app(memory_billing, auth=None)) as client:
        response = await client.get("/health")
    assert (response.status_code, response.json()["code"]) == (503, "storage_error")
    assert SECRET not in response.text


class TestMountedRouter:
    """create_router in someone else's app: prefix, their auth, no exception handlers."""

    async def test_works_under_a_prefix_with_its_own_errors(self, memory_billing: Billing) -> None:
        host = FastAPI()

        @host.get("/")
        async def home() -> dict[str, str]:
            return {"app": "host"}

        host.include_router(
            create_router(memory_billing, auth=APIKeyAuth(API_KEY)), prefix="/billing"
        )
        async with asgi_client(host, authorization=f"Bearer {API_KEY}") as client:
            assert (await client.get("/")).json() == {"app": "host"}
            created = await client.post("/billing/customers", json={"email": "a@example.com"})
            assert created.status_code == 201
            assert created.headers["location"].endswith(
                f"/billing/customers/{created.json()['id']}"
            )
            missing = await client.get("/billing/customers/cus_unknown")
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"
            invalid = await client.post("/billing/customers", json={"email": 1})
            assert invalid.status_code == 422
            assert invalid.json()["errors"][0]["field"] == "email"
            unauthorized = await client.get("/billing/customers", headers={"authorization": ""})
            assert unauthorized.status_code == 401
            assert unauthorized.headers["content-type"] == "application/problem+json"
            spec = (await client.get("/openapi.json")).json()
        assert "/billing/customers/{customer_id}" in spec["paths"]
        get_op = spec["paths"]["/billing/customers/{customer_id}"]["get"]
        assert "application/problem+json" in get_op["responses"]["404"]["content"]
        assert spec["components"]["securitySchemes"]["APIKey"]["scheme"] == "bearer"

    async def test_auth_none_leaves_auth_to_the_host(self, memory_billing: Billing) -> None:
        async def tenant(x_tenant: str = Header()) -> None:
            if x_tenant != "acme":
                raise HTTPException(403, "wrong tenant")

        host = FastAPI()
        host.include_router(
            create_router(memory_billing, auth=None), dependencies=[Depends(tenant)]
        )
        async with asgi_client(host) as client:
            assert (await client.get("/customers", headers={"x-tenant": "acme"})).status_code == 200
            denied = await client.get("/customers", headers={"x-tenant": "evil"})
            # The host's own HTTPException is still answered in the router's format.
            assert denied.status_code == 403
            assert denied.json()["detail"] == "wrong tenant"
            assert denied.json()["code"] == "forbidden"
