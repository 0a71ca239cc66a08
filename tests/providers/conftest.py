"""Makes the localstripe fixtures available here until tests/conftest.py registers the plugin."""

from tests.support.stripe_fixtures import (
    fault_proxy,
    localstripe,
    localstripe_url,
    make_stripe_provider,
    proxied_stripe_provider,
    stripe_provider,
    webhook_receiver,
)

__all__ = [
    "fault_proxy",
    "localstripe",
    "localstripe_url",
    "make_stripe_provider",
    "proxied_stripe_provider",
    "stripe_provider",
    "webhook_receiver",
]
