"""Runs every ```python block of the README in order, in one namespace, with top-level await."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from tests.conftest import reset_postgres
from tests.support.fake_mercadopago import ACCESS_TOKEN as MP_ACCESS_TOKEN
from tests.support.fake_mercadopago import WEBHOOK_SECRET as MP_WEBHOOK_SECRET
from tests.support.fake_mercadopago import FakeMercadoPago
from tests.support.localstripe import API_KEY, wipe_localstripe
from tests.support.stripe_fixtures import WEBHOOK_SECRET

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 10


async def test_readme_examples_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    localstripe_url: str,
    postgres_url: str,
    isolated_mercadopago: FakeMercadoPago,
) -> None:
    monkeypatch.chdir(tmp_path)  # the examples use relative SQLite paths
    # The Stripe examples read their settings from the environment, as an app would.
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("STRIPE_API_BASE", localstripe_url)
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("MERCADOPAGO_ACCESS_TOKEN", MP_ACCESS_TOKEN)
    monkeypatch.setenv("MERCADOPAGO_WEBHOOK_SECRET", MP_WEBHOOK_SECRET)
    monkeypatch.setenv("MERCADOPAGO_API_BASE", isolated_mercadopago.url)
    await wipe_localstripe(localstripe_url)  # reconcile compares the whole Stripe account
    namespace: dict[str, object] = {"__name__": "readme"}
    try:
        for number, source in enumerate(python_blocks(), start=1):
            code = compile(
                source, f"README.md block {number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            )
            result = eval(code, namespace)
            if inspect.iscoroutine(result):
                await result
    finally:
        await reset_postgres(postgres_url)
