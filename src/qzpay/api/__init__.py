"""The qzpay HTTP API (FastAPI): ``create_router`` to mount in your app, ``create_app`` to run
it standalone. Needs the ``api`` extra: ``pip install "qzpay[api]"``."""

from qzpay.api.auth import APIKeyAuth, MissingAPIKeyError
from qzpay.api.router import create_router
from qzpay.api.server import RedactCredentials, create_app, redact_credentials_in_logs
from qzpay.api.webhook_routes import create_webhook_router
from qzpay.limits import DEFAULT_MAX_BODY_BYTES

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "APIKeyAuth",
    "MissingAPIKeyError",
    "RedactCredentials",
    "create_app",
    "create_router",
    "create_webhook_router",
    "redact_credentials_in_logs",
]
