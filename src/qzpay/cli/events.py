"""``qzpay events list``."""

from __future__ import annotations

from typing import Annotated

import typer

from qzpay.billing import DEFAULT_STORAGE
from qzpay.cli.handling import handled
from qzpay.cli.options import DatabaseUrl, Debug, JsonOutput, sync_billing
from qzpay.cli.rendering import show_events
from qzpay.limits import DEFAULT_EVENT_PAGE, MAX_EVENT_PAGE


def events_list(
    after: Annotated[str | None, typer.Option(help="Events after this event id.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_EVENT_PAGE, help="At most this many.")
    ] = DEFAULT_EVENT_PAGE,
    database_url: DatabaseUrl = DEFAULT_STORAGE,
    as_json: JsonOutput = False,
    debug: Debug = False,
) -> None:
    """List events in commit order (what another process would consume)."""
    with handled(debug=debug, as_json=as_json), sync_billing(database_url) as billing:
        show_events(billing.events.list(after=after, limit=limit), as_json=as_json)
