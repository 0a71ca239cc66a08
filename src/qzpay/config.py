"""Payment providers from environment variables: one place, used by the server and the CLI.

=============================  ==============================================================
``STRIPE_API_KEY``             enables Stripe (a secret key, ``sk_...``, or a restricted key)
``STRIPE_WEBHOOK_SECRET``      the endpoint's signing secret (``whsec_...``); without it,
                               ``POST /webhooks/stripe`` cannot verify and answers 500
``STRIPE_API_BASE``            another Stripe-compatible server (a local test double)
``QZPAY_PROVIDER_SYNC_ERRORS`` ``raise`` (default) or ``log``: see ``Billing``
=============================  ==============================================================

An empty variable counts as unset. Values are never printed: errors and warnings name the
variable only (``QZPAY_PROVIDER_SYNC_ERRORS``, which holds no secret, is the one exception).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from qzpay.customers.service import SyncErrors
from qzpay.providers.base import PaymentProvider

STRIPE_API_KEY_ENV: Final = "STRIPE_API_KEY"
STRIPE_WEBHOOK_SECRET_ENV: Final = "STRIPE_WEBHOOK_SECRET"
STRIPE_API_BASE_ENV: Final = "STRIPE_API_BASE"
SYNC_ERRORS_ENV: Final = "QZPAY_PROVIDER_SYNC_ERRORS"

PROVIDER_ENV: Final[Mapping[str, str]] = {"stripe": STRIPE_API_KEY_ENV}
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

    Raises ConfigError on a variable that is set wrong: a Stripe setting without
    ``STRIPE_API_KEY``, an ``STRIPE_API_BASE`` that is not an http(s) URL, an unknown
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

    # -- Stripe ------------------------------------------------------------------------
    stripe_key = get(STRIPE_API_KEY_ENV)
    stripe_secret = get(STRIPE_WEBHOOK_SECRET_ENV)
    stripe_base = get(STRIPE_API_BASE_ENV)
    if stripe_key is None:
        for name, value in (
            (STRIPE_WEBHOOK_SECRET_ENV, stripe_secret),
            (STRIPE_API_BASE_ENV, stripe_base),
        ):
            if value is not None:
                raise ConfigError(f"{name} is set but {STRIPE_API_KEY_ENV} is not")
    else:
        if stripe_base is not None:
            _check_base_url(STRIPE_API_BASE_ENV, stripe_base)
        try:
            from qzpay.providers.stripe import StripeProvider
        except ImportError:
            raise ConfigError(
                f"{STRIPE_API_KEY_ENV} is set but the Stripe SDK is not installed: "
                "pip install 'qzpay[stripe]'"
            ) from None
        if stripe_secret is None:
            config.warnings.append(
                f"{STRIPE_WEBHOOK_SECRET_ENV} is not set: Stripe webhooks cannot be verified"
            )
        config.providers.append(
            StripeProvider(stripe_key, webhook_secret=stripe_secret, api_base=stripe_base)
        )

    # -- MercadoPago (not wired yet) ---------------------------------------------------
    # It goes here, after Stripe (providers are called in this order), built the same way:
    # MERCADOPAGO_ACCESS_TOKEN enables it, MERCADOPAGO_WEBHOOK_SECRET and
    # MERCADOPAGO_API_BASE are optional, for
    # MercadoPagoProvider(access_token, webhook_secret=..., api_base=...). Add it to
    # PROVIDER_ENV too.
    return config


def _check_base_url(name: str, value: str) -> None:
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(f"{name} must be an http:// or https:// URL")


__all__ = [
    "PROVIDER_ENV",
    "STRIPE_API_BASE_ENV",
    "STRIPE_API_KEY_ENV",
    "STRIPE_WEBHOOK_SECRET_ENV",
    "SYNC_ERRORS_ENV",
    "ConfigError",
    "ProviderConfig",
    "providers_from_env",
]
