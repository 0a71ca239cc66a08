"""Runs every ```python block of docs/http-and-cli.md in order, in one namespace."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from tests.support.localstripe import API_KEY
from tests.support.stripe_fixtures import WEBHOOK_SECRET

DOC = Path(__file__).resolve().parents[2] / "docs" / "http-and-cli.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_the_python_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, localstripe_url: str
) -> None:
    monkeypatch.chdir(tmp_path)  # the examples use relative SQLite paths
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("STRIPE_API_BASE", localstripe_url)
    monkeypatch.delenv("QZPAY_PROVIDER_SYNC_ERRORS", raising=False)
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 3
    namespace: dict[str, object] = {"__name__": "docs"}
    for number, source in enumerate(blocks, start=1):
        code = compile(source, f"{DOC.name} block {number}", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            await result
