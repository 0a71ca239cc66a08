"""Choosing a backend from a URL or an object."""

from __future__ import annotations

from pathlib import Path

import pytest

from qzpay import Billing
from qzpay.storage import MemoryStorage, SQLiteStorage, open_storage


class TestOpenStorage:
    def test_memory(self) -> None:
        assert isinstance(open_storage("memory://"), MemoryStorage)

    def test_sqlite_relative_and_absolute(self) -> None:
        relative = open_storage("sqlite:///data/billing.db")
        assert isinstance(relative, SQLiteStorage)
        assert relative.path == Path("data/billing.db")
        absolute = open_storage("sqlite:////tmp/x/billing.db")
        assert isinstance(absolute, SQLiteStorage)
        assert absolute.path == Path("/tmp/x/billing.db")

    def test_sqlite_options(self) -> None:
        storage = open_storage("sqlite:///b.db?synchronous=normal")
        assert isinstance(storage, SQLiteStorage)
        assert storage.synchronous == "NORMAL"
        with pytest.raises(ValueError, match="unknown sqlite URL option"):
            open_storage("sqlite:///b.db?journal=off")
        with pytest.raises(ValueError, match="synchronous"):
            open_storage("sqlite:///b.db?synchronous=sometimes")

    @pytest.mark.parametrize(
        "url", ["billing.db", "sqlite://host/b.db", "sqlite:///", "mysql://x/y", ""]
    )
    def test_bad_urls(self, url: str) -> None:
        with pytest.raises(ValueError, match="URL"):
            open_storage(url)

    def test_postgresql_options(self) -> None:
        from qzpay.storage.postgres import PostgresStorage

        storage = open_storage(
            "postgresql://u@127.0.0.1:5432/db?sslmode=disable&qzpay_pool_size=3"
            "&qzpay_connect_timeout=2.5"
        )
        assert isinstance(storage, PostgresStorage)
        assert storage.dsn == "postgresql://u@127.0.0.1:5432/db?sslmode=disable"
        assert (storage.max_size, storage.connect_timeout) == (3, 2.5)
        with pytest.raises(ValueError, match="URL option"):
            open_storage("postgresql://u@h/db?qzpay_pool=3")
        with pytest.raises(ValueError, match="URL option"):
            open_storage("postgresql://u@h/db?qzpay_pool_size=many")

    def test_postgresql_recent_versions(self) -> None:
        from qzpay.storage.postgres import PostgresStorage
        from qzpay.storage.postgres.recent import RECENT_VERSIONS

        storage = open_storage("postgresql://u@h/db?qzpay_recent_versions=0")
        assert isinstance(storage, PostgresStorage)
        assert storage.dsn == "postgresql://u@h/db"
        assert storage.recent_versions == 0
        default = open_storage("postgresql://u@h/db")
        assert isinstance(default, PostgresStorage)
        assert default.recent_versions == RECENT_VERSIONS == 4_096
        for bad in ("-1", "lots"):
            with pytest.raises(ValueError, match="URL option"):
                open_storage(f"postgresql://u@h/db?qzpay_recent_versions={bad}")

    def test_storage_object_is_used_as_is(self) -> None:
        storage = MemoryStorage()
        assert Billing(storage=storage).storage is storage

    def test_other_objects_are_rejected(self) -> None:
        with pytest.raises(TypeError):
            open_storage(42)  # type: ignore[arg-type]

    async def test_creates_missing_parent_directories(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'a' / 'b' / 'billing.db'}"
        async with Billing(storage=url) as billing:
            await billing.customers.create(email="a@example.com")
        assert (tmp_path / "a" / "b" / "billing.db").exists()
