"""create_app: where its key comes from, who opens and closes Billing; serve's refusals."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from qzpay import Billing
from qzpay.api import APIKeyAuth, MissingAPIKeyError, create_app
from qzpay.api.server import is_loopback, serve
from tests.api.live import API_KEY, serving


class TestAPIKeys:
    def test_create_app_requires_qzpay_api_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("QZPAY_API_KEY", raising=False)
        with pytest.raises(MissingAPIKeyError, match="QZPAY_API_KEY"):
            create_app(Billing("memory://"))

    def test_keys_from_the_environment_with_rotation(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        old, new = "old-key-0123456789abcdef", "new-key-0123456789abcdef"
        monkeypatch.setenv("QZPAY_API_KEY", f"{old}, {new}")
        app = create_app(Billing(f"sqlite:///{tmp_path / 'b.db'}"))
        with serving(app) as live:
            for key, status in ((old, 200), (new, 200), (API_KEY, 401)):
                with live.client(key) as client:
                    assert client.get("/customers").status_code == status

    @pytest.mark.parametrize(
        "keys", [[], "short", ["ok-key-0123456789abcdef", "has space here 0123"]]
    )
    def test_weak_or_malformed_keys_are_refused(self, keys: str | list[str]) -> None:
        with pytest.raises(ValueError, match="API key"):
            APIKeyAuth(keys)

    def test_accepts_only_listed_keys_and_never_shows_them(self) -> None:
        auth = APIKeyAuth([API_KEY, "second-key-0123456789"])
        assert auth.accepts(API_KEY)
        assert auth.accepts("second-key-0123456789")
        assert not auth.accepts(API_KEY[:-1])
        assert not auth.accepts(None)
        assert not auth.accepts("")
        assert not auth.accepts(API_KEY + "x")
        assert API_KEY not in repr(auth)


class TestLifespan:
    def test_the_app_opens_and_closes_billing(self, tmp_path: Path) -> None:
        billing = Billing(f"sqlite:///{tmp_path / 'b.db'}")
        calls: list[str] = []
        original_open, original_close = billing.open, billing.close

        async def record_open() -> None:
            calls.append("open")
            await original_open()

        async def record_close() -> None:
            calls.append("close")
            await original_close()

        billing.open = record_open  # type: ignore[method-assign]
        billing.close = record_close  # type: ignore[method-assign]
        with serving(create_app(billing, auth=None)) as live:
            assert calls == ["open"]
            assert httpx.get(live.base_url + "/health").status_code == 200
        assert calls == ["open", "close"]

    def test_manage_billing_false_leaves_it_alone(self, tmp_path: Path) -> None:
        billing = Billing(f"sqlite:///{tmp_path / 'b.db'}")
        calls: list[str] = []

        async def record_close() -> None:
            calls.append("close")

        billing.close = record_close  # type: ignore[method-assign]
        app = create_app(billing, auth=None, manage_billing=False)
        with serving(app) as live, live.client(None) as client:
            assert client.post("/customers", json={"email": "a@example.com"}).status_code == 201
        assert calls == []


class TestServe:
    @pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"])
    def test_loopback_hosts(self, host: str) -> None:
        assert is_loopback(host)

    @pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.com", ""])
    def test_other_hosts(self, host: str) -> None:
        assert not is_loopback(host)

    def test_refuses_to_run_without_auth_off_loopback(self) -> None:
        with pytest.raises(ValueError, match="loopback"):
            serve(Billing("memory://"), host="0.0.0.0", port=1, auth=None)
