"""``qzpay db upgrade``."""

from __future__ import annotations

import asyncio

import typer

from qzpay.billing import DEFAULT_STORAGE, Billing
from qzpay.cli.handling import handled
from qzpay.cli.options import DatabaseUrl, Debug, JsonOutput, redact
from qzpay.cli.rendering import print_json


def db_upgrade(
    database_url: DatabaseUrl = DEFAULT_STORAGE, as_json: JsonOutput = False, debug: Debug = False
) -> None:
    """Create or upgrade the schema (for deployments that run with migrate=False)."""

    async def upgrade(billing: Billing) -> int:
        try:
            return await billing.storage.upgrade()
        finally:
            await billing.close()

    with handled(debug=debug, as_json=as_json):
        try:
            billing = Billing(database_url, migrate=False)
        except (ValueError, TypeError) as exc:
            raise typer.BadParameter(str(exc), param_hint="'--database-url'") from None
        version = asyncio.run(upgrade(billing))
        if as_json:
            print_json({"schema_version": version})
        else:
            typer.echo(f"{redact(database_url)}: schema at version {version}")
