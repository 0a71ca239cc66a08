"""A scratch PostgreSQL database for one benchmark run, created and dropped by the harness."""

from __future__ import annotations

import os
import secrets

import asyncpg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def default_admin_url() -> str:
    return os.environ.get("QZPAY_BENCH_POSTGRES_URL", DEFAULT_URL)


async def analyze(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


class PostgresScratch:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"qzpay_bench_{os.getpid()}_{secrets.token_hex(3)}"
        base, _, _ = admin_url.rpartition("/")
        self.url = f"{base}/{self.name}"

    async def create(self) -> None:
        connection = await asyncpg.connect(self.admin_url, timeout=5)
        try:
            await connection.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await connection.close()

    async def reset(self) -> None:
        """Empty every table but the schema version (the store starts empty, schema kept)."""
        connection = await asyncpg.connect(self.url)
        try:
            tables = await connection.fetch(
                "SELECT quote_ident(tablename) AS name FROM pg_tables "
                "WHERE schemaname = current_schema() AND tablename <> 'qzpay_schema_version'"
            )
            if tables:
                names = ", ".join(row["name"] for row in tables)
                await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await connection.close()

    async def drop(self) -> None:
        connection = await asyncpg.connect(self.admin_url, timeout=5)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await connection.close()
