"""Fixtures: the admin console on a real uvicorn server, driven by Debian's headless Chromium.

Chromium comes from the distribution (``apt-get install chromium``), never from
``playwright install``. Off CI the browser tests skip when ``/usr/bin/chromium`` is missing;
with ``CI=true`` they fail instead. Screenshots go to ``test-artifacts/admin/`` (ignored by git).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qzpay import Billing
from qzpay.api import APIKeyAuth, create_app
from qzpay.providers.stripe import StripeProvider
from tests.api.live import API_KEY, LiveServer, serving
from tests.support.localstripe import API_KEY as STRIPE_KEY

CHROMIUM = Path(os.environ.get("QZPAY_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SESSION_SECRET = "admin-test-session-secret-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin"
AXE = Path(__file__).resolve().parents[1] / "support" / "axe" / "axe.min.js"


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: apt-get install -y chromium"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh Chromium (and profile) per test: Playwright's sync API holds an event loop on
    this thread while it runs, which would break every asyncio test after it."""
    _need_chromium()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,  # the profile directory is passed as --user-data-dir
            bypass_csp=True,  # lets the tests inject axe-core; the pages still send their CSP
            viewport={"width": 1200, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    browser.clear_cookies()
    tab = browser.new_page()
    tab.set_default_timeout(20_000)
    try:
        yield tab
    finally:
        tab.close()


@pytest.fixture
def admin_server(tmp_path: Path, localstripe_url: str) -> Iterator[LiveServer]:
    """``create_app`` (what ``qzpay serve`` runs) over SQLite with Stripe at localstripe."""
    stripe = StripeProvider(STRIPE_KEY, api_base=localstripe_url)
    billing = Billing(f"sqlite:///{tmp_path / 'admin.db'}", provider=stripe)
    app = create_app(billing, auth=APIKeyAuth(API_KEY))
    with serving(app, billing) as live:
        yield live


@pytest.fixture
def shoot(request: pytest.FixtureRequest) -> Any:
    """``shoot(page, label)`` saves a full-page screenshot as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)

    def take(tab: Any, label: str) -> Path:
        target = ARTIFACTS / f"{stem}-{label}.png"
        tab.screenshot(path=str(target), full_page=True)
        return target

    return take


def axe_violations(tab: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now."""
    if not tab.evaluate("() => typeof window.axe !== 'undefined'"):
        tab.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = tab.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [v for v in violations if v.get("impact") in ("serious", "critical")]


def assert_accessible(tab: Any) -> None:
    found = axe_violations(tab)
    summary = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in found]
    assert not found, f"axe-core on {tab.url}: {summary}"
