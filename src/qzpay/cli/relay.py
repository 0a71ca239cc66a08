"""``qzpay relay``: run the event relay, or print its status with ``--status``.

Exit codes as in the rest of the CLI: 0 ok; 1 operational error (a message on stderr, a
traceback only with ``--debug``); 2 usage error. ``--json`` prints the status as JSON.
``python -m qzpay.relay`` runs it on its own (``qzpay.relay.cli``). The relay itself
(``qzpay.relay``, and nats-py) is imported only when the command runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import traceback
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer

from qzpay.billing import DEFAULT_STORAGE, Billing
from qzpay.cli.handling import EXIT_ERROR, fail
from qzpay.cli.options import (
    DATABASE_URL_ENV,
    Debug,
    JsonOutput,
    checked_database_url,
    option_groups,
)
from qzpay.errors import QZPayError

NATS_URL_ENV = "QZPAY_NATS_URL"

RelayDatabaseUrl = Annotated[  # no memory:// here: the relay is a process of its own
    str,
    typer.Option(
        "--database-url",
        envvar=DATABASE_URL_ENV,
        show_envvar=True,
        help="Storage URL: sqlite:///path.db, postgresql://...",
    ),
]


@dataclass(frozen=True)
class RelayTarget:
    """Which relay, for ``--status`` as for running it: the NATS server, the stream and its
    subjects, and the name keying the stored position and lease."""

    to: Annotated[
        str,
        typer.Option("--to", envvar=NATS_URL_ENV, show_envvar=True, help="NATS server URL."),
    ] = "nats://127.0.0.1:4222"
    stream: Annotated[str, typer.Option(help="JetStream stream (created if missing).")] = "QZPAY"
    subject_prefix: Annotated[str, typer.Option(help="Events go to <prefix>.<event type>.")] = (
        "qzpay"
    )
    name: Annotated[
        str | None,
        typer.Option(help="Relay name keying the stored position and lease (default: stream)."),
    ] = None

    async def status(self, billing: Billing) -> dict[str, Any]:
        from qzpay.relay.status import relay_status

        try:
            status = await relay_status(
                billing,
                stream=self.stream,
                name=self.name,
                nats_url=self.to,
                subject_prefix=self.subject_prefix,
            )
        finally:
            await billing.close()
        return status.as_dict()

    async def run(self, billing: Billing, **options: Any) -> None:
        """Relay until SIGINT or SIGTERM (or, with ``once``, the end of the log)."""
        from qzpay.relay.runner import run_relay

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        try:
            await run_relay(
                billing,
                self.to,
                stop=stop,
                stream=self.stream,
                subject_prefix=self.subject_prefix,
                name=self.name,
                **options,
            )
        finally:
            await billing.close()


@option_groups
def relay_command(
    *,
    target: RelayTarget,
    status: Annotated[
        bool, typer.Option("--status", help="Print position, lag and lease holder, then exit.")
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="Exit once the log is relayed to its end.")
    ] = False,
    retention: Annotated[
        Literal["limits", "interest", "workqueue"],
        typer.Option(help="Retention of a stream the relay creates."),
    ] = "limits",
    max_age: Annotated[
        float | None,
        typer.Option(min=0, help="Seconds a created stream keeps messages (default: forever)."),
    ] = None,
    lease_seconds: Annotated[
        float, typer.Option(min=0.5, help="Lease length; another relay takes over after it.")
    ] = 5.0,
    database_url: RelayDatabaseUrl = DEFAULT_STORAGE,
    as_json: JsonOutput = False,
    debug: Debug = False,
) -> None:
    """Deliver the durable event log to NATS JetStream, in order, at least once.

    Several relays may run: one publishes (it holds a lease in the database), the others wait
    and take over within the lease time when it stops. Stop with Ctrl-C or SIGTERM.
    """
    with checked_database_url():
        billing = Billing(database_url)
    if not status:
        logging.basicConfig(
            level=logging.DEBUG if debug else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    try:
        if status:
            _show_status(asyncio.run(target.status(billing)), as_json=as_json)
        else:
            run = target.run(
                billing,
                once=once,
                retention=retention,
                max_age=max_age,
                lease_seconds=lease_seconds,
            )
            asyncio.run(run)
    except (QZPayError, ImportError) as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        if isinstance(exc, QZPayError):
            fail(exc.message, EXIT_ERROR, as_json=as_json, details={"code": exc.code})
        fail(str(exc), EXIT_ERROR, as_json=as_json, details={"code": "missing_dependency"})


def _show_status(status: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(status, ensure_ascii=False))
        return
    lag = f"{status['lag_events']}{'+' if status['lag_capped'] else ''} events"
    lines = [
        f"relay {status['name']}",
        f"  position:  {status['position'] or '(nothing relayed yet)'}",
        f"  published: {status['published']}",
        f"  lag:       {lag}, {status['lag_seconds']:.1f}s",
        f"  holder:    {status['holder'] or '(none: no relay is running)'}",
    ]
    stream = status.get("stream")
    if stream is not None:
        if "error" in stream:
            lines.append(f"  stream:    {stream['name']}: {stream['error']}")
        elif not stream["exists"]:
            lines.append(f"  stream:    {stream['name']} does not exist yet")
        else:
            lines.append(
                f"  stream:    {stream['name']}: {stream['messages']} messages, "
                f"last sequence {stream['last_seq']}"
            )
            for difference in stream["differences"]:
                lines.append(f"             differs: {difference}")
    typer.echo("\n".join(lines))


def main() -> None:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command()(relay_command)
    app()
