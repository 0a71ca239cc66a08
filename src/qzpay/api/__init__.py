"""The qzpay HTTP API (FastAPI): ``create_router`` to mount in your app, ``create_app`` to run
it standalone. Needs the ``api`` extra: ``pip install "qzpay[api]"``."""

from qzpay.api.auth import APIKeyAuth, MissingAPIKeyError
from qzpay.api.router import create_router, create_webhook_router
from qzpay.api.server import create_app

__all__ = [
    "APIKeyAuth",
    "MissingAPIKeyError",
    "create_app",
    "create_router",
    "create_webhook_router",
]
