"""Payment providers from environment variables: one place, used by the server and the CLI.

=============================  ==============================================================
``STRIPE_API_KEY``             enables Stripe (a secret key, ``sk_...``, or a restricted key)
``STRIPE_WEBHOOK_SECRET``      the endpoint's signing secret (``whsec_...``); without it,
                               ``POST /webhooks/stripe`` cannot verify and answers 500
``STRIPE_API_BASE``            another Stripe-compatible server (a local test double)
``MERCADOPAGO_ACCESS_TOKEN``   enables MercadoPago (``APP_USR-...`` / ``TEST-...``)
``MERCADOPAGO_WEBHOOK_SECRET`` the application's secret signature for ``x-signature``
``MERCADOPAGO_API_BASE``       another MercadoPago-compatible server (a local test double)
``QZPAY_PROVIDER_SYNC_ERRORS`` ``raise`` (default) or ``log``: see ``Billing``
``QZPAY_MAX_BODY_BYTES``       the HTTP API's largest request body (default 1 MiB): see
                               ``max_body_bytes_from_env``
=============================  ==============================================================

An empty variable counts as unset. Values are never printed: errors and warnings name the
variable only (``QZPAY_PROVIDER_SYNC_ERRORS`` and ``QZPAY_MAX_BODY_BYTES``, which hold no
secret, are the exceptions).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from qzpay.customers.service import SyncErrors
from qzpay.providers.base import PaymentProvider

STRIPE_API_KEY_ENV: Final = "STRIPE_API_KEY"
STRIPE_WEBHOOK_SECRET_ENV: Final = "STRIPE_WEBHOOK_SECRET"
STRIPE_API_BASE_ENV: Final = "STRIPE_API_BASE"
SYNC_ERRORS_ENV: Final = "QZPAY_PROVIDER_SYNC_ERRORS"
MAX_BODY_BYTES_ENV: Final = "QZPAY_MAX_BODY_BYTES"

MERCADOPAGO_ACCESS_TOKEN_ENV: Final = "MERCADOPAGO_ACCESS_TOKEN"
MERCADOPAGO_WEBHOOK_SECRET_ENV: Final = "MERCADOPAGO_WEBHOOK_SECRET"
MERCADOPAGO_API_BASE_ENV: Final = "MERCADOPAGO_API_BASE"


def _stripe(key: str, secret: str | None, base: str | None) -> PaymentProvider:
    from qzpay.providers.stripe import StripeProvider

    return StripeProvider(key, webhook_secret=secret, api_base=base)


def _mercadopago(key: str, secret: str | None, base: str | None) -> PaymentProvider:
    from qzpay.providers.mercadopago import MercadoPagoProvider

    return MercadoPagoProvider(access_token=key, webhook_secret=secret, api_base=base)


@dataclass(frozen=True)
class _Spec:
    name: str
    title: str
    key_env: str
    secret_env: str
    base_env: str
    build: Callable[[str, str | None, str | None], PaymentProvider]


# In the order providers are called.
_SPECS: Final = (
    _Spec(
        "stripe",
        "Stripe",
        STRIPE_API_KEY_ENV,
        STRIPE_WEBHOOK_SECRET_ENV,
        STRIPE_API_BASE_ENV,
        _stripe,
    ),
    _Spec(
        "mercadopago",
        "MercadoPago",
        MERCADOPAGO_ACCESS_TOKEN_ENV,
        MERCADOPAGO_WEBHOOK_SECRET_ENV,
        MERCADOPAGO_API_BASE_ENV,
        _mercadopago,
    ),
)

PROVIDER_ENV: Final[Mapping[str, str]] = {spec.name: spec.key_env for spec in _SPECS}
ENVIRONMENT_VARIABLES: Final = (
    SYNC_ERRORS_ENV,
    MAX_BODY_BYTES_ENV,
    *(name for spec in _SPECS for name in (spec.key_env, spec.secret_env, spec.base_env)),
)
"""Every variable this module reads (tests clear them so no test reaches a real provider)."""
"""Each supported provider and the variable that enables it (for messages and docs)."""


class ConfigError(ValueError):
    """A provider variable is missing, malformed or unusable. The message names the
    variable, never its value."""


@dataclass
class ProviderConfig:
    """What the environment asks for. ``providers`` is empty when none is enabled; the
    caller owns them (``Billing`` closes the providers it is given)."""

    providers: list[PaymentProvider] = field(default_factory=list)
    sync_errors: SyncErrors = "raise"
    warnings: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [provider.name for provider in self.providers]


def providers_from_env(environ: Mapping[str, str] | None = None) -> ProviderConfig:
    """Build the payment providers the environment (``os.environ`` by default) enables.

    Raises ConfigError on a variable that is set wrong: a provider setting without its key
    variable, an ``..._API_BASE`` that is not an http(s) URL, an unknown
    ``QZPAY_PROVIDER_SYNC_ERRORS``, or a provider whose SDK is not installed.
    """
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    config = ProviderConfig()
    mode = get(SYNC_ERRORS_ENV) or "raise"
    if mode not in ("raise", "log"):
        raise ConfigError(f"{SYNC_ERRORS_ENV} must be 'raise' or 'log', not {mode!r}")
    config.sync_errors = "log" if mode == "log" else "raise"

    for spec in _SPECS:
        key, secret, base = get(spec.key_env), get(spec.secret_env), get(spec.base_env)
        if key is None:
            for name, value in ((spec.secret_env, secret), (spec.base_env, base)):
                if value is not None:
                    raise ConfigError(f"{name} is set but {spec.key_env} is not")
            continue
        if base is not None:
            _check_base_url(spec.base_env, base)
        try:
            provider = spec.build(key, secret, base)
        except ImportError:
            raise ConfigError(
                f"{spec.key_env} is set but the {spec.title} SDK is not installed: "
                f"pip install 'qzpay[{spec.name}]'"
            ) from None
        if secret is None:
            config.warnings.append(
                f"{spec.secret_env} is not set: {spec.title} webhooks cannot be verified"
            )
        config.providers.append(provider)
    return config


def max_body_bytes_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """``QZPAY_MAX_BODY_BYTES``: the largest request body the HTTP API accepts, in bytes (a
    positive integer), or None when it is unset (the API's default, 1 MiB, applies). Raises
    ConfigError on anything else."""
    env = os.environ if environ is None else environ
    raw = env.get(MAX_BODY_BYTES_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_BODY_BYTES_ENV} must be a positive number of bytes, not {raw!r}")
    return value


def _check_base_url(name: str, value: str) -> None:
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(f"{name} must be an http:// or https:// URL")


__all__ = [
    "ENVIRONMENT_VARIABLES",
    "MAX_BODY_BYTES_ENV",
    "MERCADOPAGO_ACCESS_TOKEN_ENV",
    "MERCADOPAGO_API_BASE_ENV",
    "MERCADOPAGO_WEBHOOK_SECRET_ENV",
    "PROVIDER_ENV",
    "STRIPE_API_BASE_ENV",
    "STRIPE_API_KEY_ENV",
    "STRIPE_WEBHOOK_SECRET_ENV",
    "SYNC_ERRORS_ENV",
    "ConfigError",
    "ProviderConfig",
    "max_body_bytes_from_env",
    "providers_from_env",
]
