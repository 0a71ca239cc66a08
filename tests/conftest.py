"""Shared fixtures: a backend per storage kind, and a fresh PostgreSQL database per test run.

PostgreSQL tests run against the server on 127.0.0.1:5432 (or QZPAY_TEST_POSTGRES_URL). Off CI
they are skipped with a message when no server answers; with CI=true a missing server fails.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from qzpay import Billing

pytest_plugins = ["tests.support.stripe_fixtures", "tests.support.mercadopago_fixtures"]

ADMIN_URL = os.environ.get(
    "QZPAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("memory", "sqlite", "postgres")


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


def _admin(statement: str) -> None:
    """Run one statement on the admin database, from any context (even inside a running
    event loop: a session fixture may be first requested by an async test)."""
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(ADMIN_URL, timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    failure: list[BaseException] = []

    def in_thread() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database created for this test run and dropped after it."""
    name = f"qzpay_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except (TimeoutError, OSError, ImportError) as exc:
        message = f"PostgreSQL is not reachable at {ADMIN_URL}: {exc!r}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI=true: the PostgreSQL tests must run)")
        pytest.skip(message)
    try:
        yield _with_database(ADMIN_URL, name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def reset_postgres(url: str) -> None:
    """Empty every qzpay table (keeping the schema and its recorded version)."""
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        tables = await connection.fetch(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) AS name "
            "FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename <> 'qzpay_schema_version'"
        )
        if tables:
            names = ", ".join(row["name"] for row in tables)
            await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def storage_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """A storage URL of the parametrized kind, empty at the start of the test."""
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'billing.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        yield url
        await reset_postgres(url)


@pytest.fixture
async def billing(storage_url: str) -> AsyncIterator[Billing]:
    async with Billing(storage=storage_url) as instance:
        yield instance
