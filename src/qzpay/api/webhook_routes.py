"""``create_webhook_router``: ``POST /webhooks/{provider}``, authenticated by the provider's
signature instead of an API key."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from qzpay.api.routing import problem_router, problems, route_class
from qzpay.api.schemas import WebhookReceipt
from qzpay.billing import Billing
from qzpay.errors import NotFoundError, ValidationError
from qzpay.limits import DEFAULT_MAX_BODY_BYTES, MAX_WEBHOOK_PROVIDER_SEGMENT

logger = logging.getLogger("qzpay.api")

MAX_PROVIDER_NAME = MAX_WEBHOOK_PROVIDER_SEGMENT
MAX_WEBHOOK_BODY = DEFAULT_MAX_BODY_BYTES
"""The webhook route's default body limit: the same as every route's (``create_router(...,
max_body_bytes=...)`` changes both); provider events are a few KB."""
WEBHOOK_BODY: dict[str, Any] = {
    "required": True,
    "description": (
        "The provider's delivery, exactly as it sent it: the signature (e.g. Stripe's "
        "`Stripe-Signature` header) is checked over these raw bytes."
    ),
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def _webhook_problems() -> dict[int | str, dict[str, Any]]:
    responses = problems(400, 404, 413, 422, 502)
    descriptions = {
        400: "The signature is missing, malformed, wrong or outside the tolerance "
        "(`webhook_signature_invalid`), or the signed body cannot be read or stored "
        "(`webhook_payload_invalid`); permanent, nothing changed (problem details).",
        404: "No provider of that name is configured (problem details).",
        422: "The provider name is not valid (problem details).",
        502: "Re-fetching the customer from the provider failed; the provider's retry "
        "processes the delivery again (problem details).",
    }
    for status, description in descriptions.items():
        responses[status] = {**responses[status], "description": description}
    return responses


def create_webhook_router(
    billing: Billing, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> APIRouter:
    """Only ``POST /webhooks/{provider}``, without any API key (the provider's signature is
    the authentication). ``create_router`` includes it unless given ``webhooks=False``; mount
    this one yourself when the rest of the API sits behind your own authentication.

    A delivery over ``max_body_bytes`` (1 MiB by default) is a 413, and is not read."""
    router = problem_router(route_class(max_body_bytes), tags=["webhooks"])

    @router.post(
        "/webhooks/{provider}",
        name="qzpay_receive_webhook",
        response_model=WebhookReceipt,
        summary="Receive a payment provider's webhook (no API key: the signature is checked)",
        description=(
            "Point the provider's webhook endpoint here (`/webhooks/stripe`). The delivery is "
            "verified over the raw body, de-duplicated by event id, and the customer it names "
            "is re-fetched from the provider and applied. Any 2xx means done: `applied`, "
            "`ignored` (not about a customer qzpay knows) or `duplicate` (delivered before). "
            "A bad signature or a body qzpay cannot read or store is a 400: permanent, it "
            "changes nothing; an unconfigured provider is a 404; a 5xx leaves the delivery "
            "unrecorded, so the provider's retry processes it."
        ),
        responses=_webhook_problems(),
        openapi_extra={"requestBody": WEBHOOK_BODY},
    )
    async def receive_webhook(
        request: Request,
        provider: Annotated[
            str,
            Path(
                min_length=1,
                max_length=MAX_PROVIDER_NAME,
                description="The provider that sends it: `stripe`.",
            ),
        ],
    ) -> WebhookReceipt:
        body = await request.body()  # at most max_body_bytes: the route class caps it
        try:
            result = await billing.webhooks.handle(
                provider, body, dict(request.headers), query=dict(request.query_params)
            )
        except ValidationError as exc:
            if [error["code"] for error in exc.errors] == ["unknown_provider"]:
                raise NotFoundError(f"no payment provider {provider!r} is configured") from exc
            raise
        # A rejected delivery (WebhookSignatureError, 400) was logged by billing.webhooks.
        logger.info(
            "%s webhook %s (%s): %s", provider, result.event_id, result.event_type, result.status
        )
        return WebhookReceipt(status=result.status, event_id=result.event_id)

    return router


__all__ = ["MAX_WEBHOOK_BODY", "create_webhook_router"]
