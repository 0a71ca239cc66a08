"""``qzpay db upgrade``."""

from __future__ import annotations

import asyncio

import typer

from qzpay.billing import Billing
from qzpay.cli.options import Common, checked_database_url, command, redact
from qzpay.cli.rendering import print_json


@command
def db_upgrade(*, common: Common) -> None:
    """Create or upgrade the schema (for deployments that run with migrate=False)."""

    async def upgrade(billing: Billing) -> int:
        try:
            return await billing.storage.upgrade()
        finally:
            await billing.close()

    with checked_database_url():
        billing = Billing(common.database_url, migrate=False)
    version = asyncio.run(upgrade(billing))
    if common.as_json:
        print_json({"schema_version": version})
    else:
        typer.echo(f"{redact(common.database_url)}: schema at version {version}")
