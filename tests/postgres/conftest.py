"""Fixtures for the PostgreSQL-only tests: the run's database, emptied after each test, an
admin connection to it, and scratch databases for migration tests."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from qzpay import Billing
from tests.conftest import reset_postgres

Admin = asyncpg.Connection


def database_url(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture
async def pg_url(postgres_url: str) -> AsyncIterator[str]:
    """The run's database (schema kept), emptied after the test."""
    try:
        yield postgres_url
    finally:
        await reset_postgres(postgres_url)


@pytest.fixture
async def admin(pg_url: str) -> AsyncIterator[Admin]:
    """A plain connection to the test database, outside any pool under test."""
    connection = await asyncpg.connect(pg_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def billing(pg_url: str) -> AsyncIterator[Billing]:
    async with Billing(storage=pg_url) as instance:
        yield instance


@pytest.fixture
async def scratch_database(postgres_url: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Makes empty databases on the same server; drops them after the test."""
    made: list[str] = []

    async def make() -> str:
        name = f"qzpay_scratch_{secrets.token_hex(6)}"
        connection = await asyncpg.connect(postgres_url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        made.append(name)
        return database_url(postgres_url, name)

    try:
        yield make
    finally:
        connection = await asyncpg.connect(postgres_url)
        try:
            for name in made:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


async def terminate_other_backends(admin: Admin) -> int:
    """Kill every other session on the test database (a server restart, as clients see it)."""
    # The timeout makes the call wait until each backend has exited.
    pids = await admin.fetch(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend'"
    )
    return len(pids)
