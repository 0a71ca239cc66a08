"""``qzpay events list``."""

from __future__ import annotations

from typing import Annotated

import typer

from qzpay.cli.options import Common, command
from qzpay.cli.rendering import show_events
from qzpay.limits import DEFAULT_EVENT_PAGE, MAX_EVENT_PAGE


@command
def events_list(
    after: Annotated[str | None, typer.Option(help="Events after this event id.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_EVENT_PAGE, help="At most this many.")
    ] = DEFAULT_EVENT_PAGE,
    *,
    common: Common,
) -> None:
    """List events in commit order (what another process would consume)."""
    with common.billing() as billing:
        show_events(billing.events.list(after=after, limit=limit), as_json=common.as_json)
